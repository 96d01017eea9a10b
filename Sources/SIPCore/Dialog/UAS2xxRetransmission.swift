/// The UAS core's retransmission of a 2xx to an INVITE until its ACK (RFC 3261 §13.3.1.4; RFC 6026 §7.1 leaves
/// it to the TU, since the INVITE server transaction ends or stops retransmitting once a 2xx is sent).
///
/// A pure state machine shaped like the transactions: each event returns the actions for the owner to carry
/// out; the owner runs the one retransmission timer and fires it back, so time is the owner's clock. The 2xx
/// goes to the transport at once, then after T1, 2·T1, 4·T1, ... capped at T2; an ACK with the INVITE's CSeq
/// number stops it. Once 64·T1 have passed without one the session SHOULD be ended with BYE (§13.3.1.4): the
/// machine terminates with `.timeout` and the owner does that.
///
/// ```swift
/// var answer = UAS2xxRetransmission(response: ok, timers: timers)
/// perform(answer.start())                                  // [.send(ok), .startTimer(after: T1)]
/// perform(answer.receivedACK(sequence: ack.cseq!.sequence)) // [.cancelTimer, .terminated(.normal)]
/// ```
public struct UAS2xxRetransmission: Sendable {
    public enum State: Sendable, Hashable {
        /// The 2xx was sent; retransmitting it until the ACK.
        case waitingForACK
        /// The ACK came (the dialog is confirmed, §13.3.1.4).
        case confirmed
        /// 64·T1 passed without the ACK: the session is to be ended.
        case abandoned
    }

    public enum Action: Sendable, Hashable {
        /// Pass the 2xx to the transport (through the INVITE server transaction, which lets a 2xx through).
        case send(SIPResponse)
        /// Start (or restart) the retransmission timer; fire it back with ``timerFired()``.
        case startTimer(after: Duration)
        case cancelTimer
        /// Over: `.normal` when the ACK came, `.timeout` when it never did (end the session with BYE).
        case terminated(TransactionTerminationReason)
    }

    /// The 2xx being retransmitted.
    public let response: SIPResponse
    public let timers: SIPTimers
    public private(set) var state: State = .waitingForACK
    /// The CSeq number of the INVITE, which its ACK repeats (RFC 3261 §13.2.2.4).
    public let sequence: UInt32
    private var interval: Duration
    private var waited: Duration = .zero

    public init(response: SIPResponse, timers: SIPTimers = SIPTimers()) {
        precondition(response.isSuccess, "UAS2xxRetransmission needs a 2xx, got \(response.status)")
        self.response = response
        self.timers = timers
        sequence = response.cseq?.sequence ?? 0
        interval = timers.timerG
    }

    /// The 2xx leaves now, and again after T1 unless the ACK comes first (§13.3.1.4).
    public mutating func start() -> [Action] {
        switch state {
        case .waitingForACK:
            return [.send(response), .startTimer(after: interval)]
        case .confirmed, .abandoned:
            return []
        }
    }

    /// An ACK arrived in the dialog: the one for this 2xx carries the INVITE's CSeq number; an ACK for an
    /// earlier INVITE of the dialog (a late retransmission) stops nothing.
    public mutating func receivedACK(sequence: UInt32) -> [Action] {
        switch state {
        case .waitingForACK where sequence == self.sequence:
            state = .confirmed
            return [.cancelTimer, .terminated(.normal)]
        case .waitingForACK, .confirmed, .abandoned:
            return []
        }
    }

    /// The retransmission timer fired: the 2xx goes again and the interval doubles up to T2, unless 64·T1
    /// (Timer H's value) have passed since the first send, which abandons the wait.
    public mutating func timerFired() -> [Action] {
        switch state {
        case .waitingForACK:
            waited += interval
            if waited >= timers.timerH {
                state = .abandoned
                return [.terminated(.timeout)]
            }
            interval = timers.nextTimerG(after: interval)
            return [.send(response), .startTimer(after: interval)]
        case .confirmed, .abandoned:
            return []
        }
    }

    /// The owner ends the dialog (BYE) before the ACK: nothing more to send.
    public mutating func stop() -> [Action] {
        switch state {
        case .waitingForACK:
            state = .abandoned
            return [.cancelTimer]
        case .confirmed, .abandoned:
            return []
        }
    }
}
