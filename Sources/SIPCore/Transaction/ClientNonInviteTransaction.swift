/// The non-INVITE client transaction of RFC 3261 §17.1.2 (Figure 6), for BYE, CANCEL, OPTIONS, INFO and the rest.
///
/// A pure state machine like ``ClientInviteTransaction``: events return actions, the owner runs Timers E, F and
/// K. Each provisional response and the first final response are delivered; final retransmissions are absorbed.
///
/// ```swift
/// var transaction = ClientNonInviteTransaction(request: bye, reliable: true)
/// perform(transaction.start())          // sends the BYE, starts Timer F
/// perform(transaction.receive(ok))      // .deliver(ok), .terminated(.normal)
/// ```
public struct ClientNonInviteTransaction: Sendable {
    /// The states of Figure 6.
    public enum State: Sendable, Hashable {
        /// The request was sent; retransmitting it with a doubling interval.
        case trying
        /// A provisional response came; retransmitting every T2.
        case proceeding
        /// A final response came; absorbing its retransmissions until Timer K.
        case completed
        /// Over.
        case terminated
    }

    /// The request the transaction sends.
    public let request: SIPRequest
    /// Whether the transport is reliable: no Timer E, Timer K is zero.
    public let reliable: Bool
    /// The timer values.
    public let timers: SIPTimers
    /// The current state.
    public private(set) var state: State = .trying
    private var started = false
    private var timerEInterval: Duration

    /// Creates the transaction in the trying state; ``start()`` sends the request.
    public init(request: SIPRequest, reliable: Bool, timers: SIPTimers = SIPTimers()) {
        precondition(request.method != .invite && request.method != .ack, "not a non-INVITE request: \(request.method)")
        self.request = request
        self.reliable = reliable
        self.timers = timers
        timerEInterval = timers.timerE
    }

    /// Sends the request (RFC 3261 §17.1.2.2): starts Timer E on unreliable transports and Timer F. Call it once.
    public mutating func start() -> [ClientTransactionAction] {
        precondition(!started, "start() was called twice")
        started = true
        var actions: [ClientTransactionAction] = [.send(request)]
        if !reliable { actions.append(.startTimer(.timerE, after: timerEInterval)) }
        actions.append(.startTimer(.timerF, after: timers.timerF))
        return actions
    }

    /// A response matched the transaction (RFC 3261 §17.1.2.2). A 1xx in trying or proceeding is delivered and
    /// moves to proceeding; a final response is delivered, stops E and F and moves to completed with Timer K, or
    /// terminates at once on a reliable transport. In completed, retransmissions are absorbed.
    public mutating func receive(_ response: SIPResponse) -> [ClientTransactionAction] {
        switch state {
        case .trying, .proceeding:
            if response.isProvisional {
                state = .proceeding
                return [.deliver(response)]
            }
            var actions: [ClientTransactionAction] = reliable ? [] : [.cancelTimer(.timerE)]
            actions += [.cancelTimer(.timerF), .deliver(response)]
            let timerK = timers.timerK(reliable: reliable)
            if timerK == .zero {
                state = .terminated
                actions.append(.terminated(.normal))
            } else {
                state = .completed
                actions.append(.startTimer(.timerK, after: timerK))
            }
            return actions
        case .completed, .terminated:
            return []
        }
    }

    /// A timer fired (RFC 3261 §17.1.2.2). E retransmits the request and restarts, doubled up to T2 in trying and
    /// at T2 in proceeding; F terminates with `.timeout`; K terminates. Stale timers are ignored.
    public mutating func timerFired(_ timer: ClientTimerID) -> [ClientTransactionAction] {
        switch (state, timer) {
        case (.trying, .timerE):
            timerEInterval = timers.nextTimerE(after: timerEInterval)
            return [.send(request), .startTimer(.timerE, after: timerEInterval)]
        case (.proceeding, .timerE):
            return [.send(request), .startTimer(.timerE, after: timers.t2)]
        case (.trying, .timerF), (.proceeding, .timerF):
            state = .terminated
            return [.terminated(.timeout)]
        case (.completed, .timerK):
            state = .terminated
            return [.terminated(.normal)]
        case (.trying, _), (.proceeding, _), (.completed, _), (.terminated, _):
            return []
        }
    }

    /// The transport failed to send (RFC 3261 §17.1.4): the transaction ends and the TU is told.
    public mutating func transportError() -> [ClientTransactionAction] {
        switch state {
        case .trying, .proceeding, .completed:
            state = .terminated
            return [.terminated(.transportError)]
        case .terminated:
            return []
        }
    }
}
