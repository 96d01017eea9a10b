/// The RAck header field of a PRACK (RFC 3262 §7.2): the RSeq of the reliable provisional it acknowledges and
/// the CSeq number and method of that provisional.
///
/// ```swift
/// let rack = RAck("776656 1 INVITE")    // RAck(rseq: 776656, sequence: 1, method: .invite)
/// prack.headers.add("RAck", rack.description)
/// ```
public struct RAck: Sendable, Hashable, CustomStringConvertible {
    public var rseq: UInt32
    public var sequence: UInt32
    public var method: SIPMethod

    public init(rseq: UInt32, sequence: UInt32, method: SIPMethod) {
        self.rseq = rseq
        self.sequence = sequence
        self.method = method
    }

    /// Parses `response-num CSeq-num Method`; nil for anything else.
    public init?(_ value: String) {
        let parts = value.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard parts.count == 3, let rseq = UInt32(parts[0]), let sequence = UInt32(parts[1]),
              let method = SIPMethod(rawValue: String(parts[2])) else { return nil }
        self.init(rseq: rseq, sequence: sequence, method: method)
    }

    public var description: String { "\(rseq) \(sequence) \(method.rawValue)" }
}

/// The UAS side of reliable provisional responses to one INVITE (RFC 3262 §3).
///
/// A pure state machine shaped like `UAS2xxRetransmission`: each event returns the actions for the owner to
/// carry out on the INVITE's server transaction and its one timer. A provisional goes out with `Require: 100rel`
/// and the next RSeq, and again after T1, 2·T1, 4·T1, ... until its PRACK; no PRACK within 64·T1 is `.timedOut`
/// (the INVITE is to be rejected with a 5xx). Only one is unacknowledged at a time: later provisionals wait in
/// order. A final 2xx waits for the PRACK of an unacknowledged provisional that carried a body (its SDP is the
/// answer, which the 2xx must not overtake); any other final response goes at once and stops the retransmission.
///
/// ```swift
/// var reliable = ReliableProvisionals(firstRSeq: 1, timers: timers)
/// perform(reliable.provisional(ringing))        // [.send(ringing with RSeq 1), .startTimer(after: T1)]
/// perform(reliable.prack(rack) ?? reply481())   // [.cancelTimer] (and the next queued provisional)
/// perform(reliable.final(ok))                   // [.send(ok)]
/// ```
public struct ReliableProvisionals: Sendable {
    public enum Action: Sendable, Hashable {
        /// Pass the response to the INVITE server transaction.
        case send(SIPResponse)
        /// Start (or restart) the retransmission timer; fire it back with ``timerFired()``.
        case startTimer(after: Duration)
        case cancelTimer
        /// 64·T1 passed without the PRACK: reject the INVITE with a 5xx (§3); nothing more is sent.
        case timedOut
    }

    public let timers: SIPTimers
    /// The RSeq of the next reliable provisional: one up for each (§3).
    public private(set) var nextRSeq: UInt32
    /// The reliable provisional sent and not yet PRACKed.
    private var unacknowledged: SIPResponse?
    private var unacknowledgedRSeq: UInt32 = 0
    /// Provisionals waiting for the PRACK of the one out (§3: no second before the first is acknowledged).
    private var queued: [SIPResponse] = []
    /// A 2xx waiting for the PRACK of a provisional with a body.
    private var held: SIPResponse?
    /// The final response was sent or the wait timed out: nothing more goes out.
    private var finished = false
    private var interval: Duration
    private var waited: Duration = .zero

    /// A 2xx is waiting for a PRACK: no final response went out yet.
    public var holdsFinal: Bool { held != nil }

    /// `firstRSeq` is random in 1...2^31-1 (§3), so a restarted UAS does not repeat one.
    public init(firstRSeq: UInt32, timers: SIPTimers = SIPTimers()) {
        nextRSeq = firstRSeq
        self.timers = timers
        interval = timers.t1
    }

    /// A provisional (101-199) to send reliably: now, or once the one out is PRACKed.
    public mutating func provisional(_ response: SIPResponse) -> [Action] {
        guard !finished else { return [] }
        guard unacknowledged == nil else {
            queued.append(response)
            return []
        }
        return sendReliably(response)
    }

    private mutating func sendReliably(_ response: SIPResponse) -> [Action] {
        var response = response
        response.headers.add("Require", "100rel")
        response.headers.add("RSeq", "\(nextRSeq)")
        unacknowledged = response
        unacknowledgedRSeq = nextRSeq
        nextRSeq += 1
        interval = timers.t1
        waited = .zero
        return [.send(response), .startTimer(after: interval)]
    }

    /// A PRACK with `rack`: nil when it matches no unacknowledged provisional (the owner answers 481, §3), else
    /// the actions (the owner answers 200): the retransmission stops, and a held 2xx or the next queued
    /// provisional goes out. A PRACK of the provisional out when the final response went still matches.
    public mutating func prack(_ rack: RAck) -> [Action]? {
        guard let out = unacknowledged, rack.rseq == unacknowledgedRSeq, rack.sequence == out.cseq?.sequence,
              rack.method == out.cseq?.method else { return nil }
        unacknowledged = nil
        guard !finished else { return [] }
        if let held {
            self.held = nil
            finished = true
            return [.cancelTimer, .send(held)]
        }
        guard !queued.isEmpty else { return [.cancelTimer] }
        return [.cancelTimer] + sendReliably(queued.removeFirst())
    }

    /// The retransmission timer fired: the provisional goes again and the interval doubles, the last one cut so
    /// that the wait ends 64·T1 after the first send.
    public mutating func timerFired() -> [Action] {
        guard !finished, let out = unacknowledged else { return [] }
        waited += interval
        if waited >= timers.timerH {
            finished = true
            unacknowledged = nil
            queued = []
            held = nil
            return [.timedOut]
        }
        interval = min(interval * 2, timers.timerH - waited)
        return [.send(out), .startTimer(after: interval)]
    }

    /// The final response to the INVITE. Queued provisionals are dropped; a 2xx is held while a provisional with
    /// a body is unacknowledged, anything else goes now.
    public mutating func final(_ response: SIPResponse) -> [Action] {
        guard !finished else { return [] }
        queued = []
        if response.isSuccess, let out = unacknowledged, !out.body.isEmpty {
            held = response
            return []
        }
        finished = true
        return unacknowledged == nil ? [.send(response)] : [.cancelTimer, .send(response)]
    }
}
