/// The non-INVITE server transaction of RFC 3261 §17.2.2 (Figure 8).
///
/// A pure state machine like ``ServerInviteTransaction``: events return actions, the owner runs Timer J.
///
/// ```swift
/// var transaction = ServerNonInviteTransaction(reliable: true)
/// perform(transaction.sendFinal(SIPResponse(replyingTo: options, status: 200)))
/// ```
public struct ServerNonInviteTransaction: Sendable {
    /// The states of Figure 8.
    public enum State: Sendable, Hashable {
        /// Request received, nothing sent yet.
        case trying
        /// A provisional response was sent.
        case proceeding
        /// A final response was sent; absorbing request retransmissions until Timer J.
        case completed
        /// Over.
        case terminated
    }

    /// Whether the transport is reliable: Timer J is zero.
    public let reliable: Bool
    /// The timer values.
    public let timers: SIPTimers
    /// The current state.
    public private(set) var state: State = .trying
    /// The last response sent, repeated on retransmissions.
    public private(set) var lastResponse: SIPResponse?

    /// Creates the transaction in the trying state for a received request; the owner keeps the request as long
    /// as it answers it, the transaction only its last response (for the 64*T1 it absorbs retransmissions).
    public init(reliable: Bool, timers: SIPTimers = SIPTimers()) {
        self.reliable = reliable
        self.timers = timers
    }

    /// The request came again (RFC 3261 §17.2.2): discarded while trying, answered with the last response in
    /// proceeding and completed.
    public mutating func receivedRetransmission() -> [TransactionAction] {
        switch state {
        case .proceeding, .completed:
            return lastResponse.map { [.send($0)] } ?? []
        case .trying, .terminated:
            return []
        }
    }

    /// The TU sends a 1xx (RFC 3261 §17.2.2): trying and proceeding pass it on and move to proceeding.
    public mutating func sendProvisional(_ response: SIPResponse) -> [TransactionAction] {
        precondition(response.isProvisional, "sendProvisional needs a 1xx, got \(response.status)")
        switch state {
        case .trying, .proceeding:
            state = .proceeding
            lastResponse = response
            return [.send(response)]
        case .completed, .terminated:
            return []
        }
    }

    /// The TU sends a final response (RFC 3261 §17.2.2): moves to completed with Timer J, or terminates at once
    /// on a reliable transport where Timer J is zero. Later final responses are discarded.
    public mutating func sendFinal(_ response: SIPResponse) -> [TransactionAction] {
        precondition((200...699).contains(response.status), "sendFinal needs a final status, got \(response.status)")
        switch state {
        case .trying, .proceeding:
            lastResponse = response
            let timerJ = timers.timerJ(reliable: reliable)
            if timerJ == .zero {
                state = .terminated
                return [.send(response), .terminated(.normal)]
            }
            state = .completed
            return [.send(response), .startTimer(.timerJ, after: timerJ)]
        case .completed, .terminated:
            return []
        }
    }

    /// A timer fired (RFC 3261 §17.2.2): Timer J in completed terminates; anything else is stale and ignored.
    public mutating func timerFired(_ timer: TransactionTimerID) -> [TransactionAction] {
        switch (state, timer) {
        case (.completed, .timerJ):
            state = .terminated
            return [.terminated(.normal)]
        case (.trying, _), (.proceeding, _), (.completed, _), (.terminated, _):
            return []
        }
    }

    /// The transport failed to send (RFC 3261 §17.2.4): the transaction ends and the TU is told.
    public mutating func transportError() -> [TransactionAction] {
        switch state {
        case .trying, .proceeding, .completed:
            state = .terminated
            return [.terminated(.transportError)]
        case .terminated:
            return []
        }
    }
}
