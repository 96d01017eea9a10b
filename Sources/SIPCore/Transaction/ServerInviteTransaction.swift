/// The INVITE server transaction of RFC 3261 §17.2.1, with the Accepted state RFC 6026 §7.1 adds for 2xx.
///
/// A pure state machine: each event returns the actions for the owner to carry out; timers are started and
/// fired back by the owner. The TU should send 100 Trying through ``sendProvisional(_:)`` unless it answers
/// within 200 ms (§17.2.1). TU calls that make no sense in the current state (a provisional after the final
/// response, say) are ignored and return `[]`: they are races the transaction absorbs, not crashes.
///
/// ```swift
/// var transaction = ServerInviteTransaction(reliable: false)
/// perform(transaction.sendProvisional(SIPResponse(replyingTo: invite, status: 100)))
/// perform(transaction.sendFinal(SIPResponse(replyingTo: invite, status: 486, toTag: tag)))
/// ```
public struct ServerInviteTransaction: Sendable {
    /// The states of Figure 7 in RFC 3261 and Figure 5 in RFC 6026.
    public enum State: Sendable, Hashable {
        /// Waiting for the TU's final response.
        case proceeding
        /// A 300-699 was sent; retransmitting it until the ACK comes.
        case completed
        /// The ACK came; absorbing its retransmissions.
        case confirmed
        /// A 2xx was sent; absorbing INVITE retransmissions, the TU retransmits the 2xx (RFC 6026).
        case accepted
        /// Over.
        case terminated
    }

    /// Whether the transport is reliable (TCP, TLS, SCTP): no retransmissions, Timer I is zero.
    public let reliable: Bool
    /// The timer values.
    public let timers: SIPTimers
    /// The current state.
    public private(set) var state: State = .proceeding
    /// The last response sent, repeated on retransmissions; nil again once a 2xx was sent, which the TU
    /// retransmits itself (RFC 6026 §7.1), so the accepted state keeps no message for its 64*T1.
    public private(set) var lastResponse: SIPResponse?
    private var timerGInterval: Duration

    /// Creates the transaction in the proceeding state for a received INVITE; the owner keeps the INVITE
    /// as long as it answers it.
    public init(reliable: Bool, timers: SIPTimers = SIPTimers()) {
        self.reliable = reliable
        self.timers = timers
        timerGInterval = timers.timerG
    }

    /// The INVITE came again (RFC 3261 §17.2.1): proceeding resends the last provisional response, completed
    /// the final one; confirmed and accepted absorb it (RFC 6026 §7.1).
    public mutating func receivedRetransmission() -> [TransactionAction] {
        switch state {
        case .proceeding, .completed:
            return lastResponse.map { [.send($0)] } ?? []
        case .confirmed, .accepted, .terminated:
            return []
        }
    }

    /// The TU sends a 1xx (RFC 3261 §17.2.1): passed to the transport while proceeding.
    public mutating func sendProvisional(_ response: SIPResponse) -> [TransactionAction] {
        precondition(response.isProvisional, "sendProvisional needs a 1xx, got \(response.status)")
        switch state {
        case .proceeding:
            lastResponse = response
            return [.send(response)]
        case .completed, .confirmed, .accepted, .terminated:
            return []
        }
    }

    /// The TU sends a final response. A 2xx moves to accepted with Timer L (RFC 6026 §7.1); a 300-699 moves to
    /// completed with Timer G on unreliable transports and Timer H (RFC 3261 §17.2.1). In accepted, further 2xx
    /// from the TU (its own retransmissions) are passed to the transport.
    public mutating func sendFinal(_ response: SIPResponse) -> [TransactionAction] {
        precondition((200...699).contains(response.status), "sendFinal needs a final status, got \(response.status)")
        switch state {
        case .proceeding:
            if response.isSuccess {
                lastResponse = nil
                state = .accepted
                return [.send(response), .startTimer(.timerL, after: timers.timerL)]
            }
            lastResponse = response
            state = .completed
            var actions: [TransactionAction] = [.send(response)]
            if !reliable { actions.append(.startTimer(.timerG, after: timerGInterval)) }
            actions.append(.startTimer(.timerH, after: timers.timerH))
            return actions
        case .accepted:
            return response.isSuccess ? [.send(response)] : []
        case .completed, .confirmed, .terminated:
            return []
        }
    }

    /// An ACK matched the transaction (RFC 3261 §17.2.1): completed moves to confirmed, stops G and H and starts
    /// Timer I, or terminates at once on a reliable transport where Timer I is zero. Elsewhere it is absorbed.
    public mutating func receivedACK() -> [TransactionAction] {
        switch state {
        case .completed:
            var actions: [TransactionAction] = reliable ? [] : [.cancelTimer(.timerG)]
            actions.append(.cancelTimer(.timerH))
            let timerI = timers.timerI(reliable: reliable)
            if timerI == .zero {
                state = .terminated
                actions.append(.terminated(.normal))
            } else {
                state = .confirmed
                actions.append(.startTimer(.timerI, after: timerI))
            }
            return actions
        case .proceeding, .confirmed, .accepted, .terminated:
            return []
        }
    }

    /// A timer fired (RFC 3261 §17.2.1, RFC 6026 §7.1). G retransmits the final response and restarts with the
    /// interval doubled up to T2; H terminates with `.timeout`; I and L terminate. A timer that fires in a state
    /// that no longer runs it raced its cancellation and is ignored.
    public mutating func timerFired(_ timer: TransactionTimerID) -> [TransactionAction] {
        switch (state, timer) {
        case (.completed, .timerG):
            guard let lastResponse else { return [] }
            timerGInterval = timers.nextTimerG(after: timerGInterval)
            return [.send(lastResponse), .startTimer(.timerG, after: timerGInterval)]
        case (.completed, .timerH):
            state = .terminated
            return [.terminated(.timeout)]
        case (.confirmed, .timerI), (.accepted, .timerL):
            state = .terminated
            return [.terminated(.normal)]
        case (.proceeding, _), (.completed, _), (.confirmed, _), (.accepted, _), (.terminated, _):
            return []
        }
    }

    /// The transport failed to send (RFC 3261 §17.2.4): the transaction ends and the TU is told.
    public mutating func transportError() -> [TransactionAction] {
        switch state {
        case .proceeding, .completed, .confirmed, .accepted:
            state = .terminated
            return [.terminated(.transportError)]
        case .terminated:
            return []
        }
    }
}
