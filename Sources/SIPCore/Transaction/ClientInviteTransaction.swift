/// The INVITE client transaction of RFC 3261 §17.1.1, with the Accepted state RFC 6026 §8.4 adds for 2xx.
///
/// A pure state machine like ``ServerInviteTransaction``: each event returns the actions for the owner to carry
/// out. The transaction sends the INVITE, retransmits it on Timer A over unreliable transports, and acknowledges
/// 300-699 responses itself (§17.1.1.3). The ACK to a 2xx belongs to the TU
/// (``Dialog/makeACK(for:via:body:contentType:)``), which is why 2xx retransmissions are delivered again in the
/// accepted state. Responses in a state that does not expect them are absorbed and return `[]`.
///
/// ```swift
/// var transaction = ClientInviteTransaction(request: invite, reliable: false)
/// perform(transaction.start())              // sends the INVITE, starts Timers A and B
/// perform(transaction.receive(ringing))     // .deliver(ringing)
/// perform(transaction.receive(busy))        // sends the ACK, .deliver(busy), starts Timer D
/// ```
public struct ClientInviteTransaction: Sendable {
    /// The states of Figure 5 in RFC 3261 and Figure 4 in RFC 6026.
    public enum State: Sendable, Hashable {
        /// The INVITE was sent; retransmitting it until a response comes.
        case calling
        /// A provisional response came; waiting for the final one.
        case proceeding
        /// A 300-699 came and was acknowledged; absorbing its retransmissions.
        case completed
        /// A 2xx came; passing its retransmissions to the TU, which acknowledges each (RFC 6026).
        case accepted
        /// Over.
        case terminated
    }

    /// The INVITE the transaction sends; nil once a final response came, as nothing resends it then (the
    /// transaction lingers 32 s after it, and keeps no message it does not need).
    public var request: SIPRequest? { state == .calling || state == .proceeding ? message : nil }
    /// Whether the transport is reliable (TCP, TLS, SCTP): no Timer A, Timer D is zero.
    public let reliable: Bool
    /// The timer values.
    public let timers: SIPTimers
    /// The current state.
    public private(set) var state: State = .calling
    private var started = false
    private var timerAInterval: Duration
    /// The one message the transaction may send again: the INVITE until the final response, then the ACK of a
    /// 300-699, sent again for each of its retransmissions (one slot: transactions are many, and linger).
    private var message: SIPRequest?
    /// The TU sent a CANCEL: the final response is awaited 64*T1 at most.
    private var cancelled = false

    /// Creates the transaction in the calling state; ``start()`` sends the INVITE.
    public init(request: SIPRequest, reliable: Bool, timers: SIPTimers = SIPTimers()) {
        precondition(request.method == .invite, "ClientInviteTransaction needs an INVITE, got \(request.method)")
        message = request
        self.reliable = reliable
        self.timers = timers
        timerAInterval = timers.timerA
    }

    /// Sends the INVITE (RFC 3261 §17.1.1.2): starts Timer A on unreliable transports and Timer B. Call it once.
    public mutating func start() -> [ClientTransactionAction] {
        precondition(!started, "start() was called twice")
        started = true
        var actions: [ClientTransactionAction] = request.map { [.send($0)] } ?? []
        if !reliable { actions.append(.startTimer(.timerA, after: timerAInterval)) }
        actions.append(.startTimer(.timerB, after: timers.timerB))
        return actions
    }

    /// A response matched the transaction (RFC 3261 §17.1.1.2, RFC 6026 §8.4). Before any final response, a 1xx
    /// moves to proceeding and stops retransmitting; a 2xx moves to accepted with Timer M; a 300-699 is
    /// acknowledged and moves to completed with Timer D, or terminates at once on a reliable transport. Every
    /// one of these is delivered. Afterwards completed re-sends the ACK for retransmitted 300-699 and accepted
    /// delivers each 2xx again; everything else is absorbed.
    public mutating func receive(_ response: SIPResponse) -> [ClientTransactionAction] {
        switch state {
        case .calling, .proceeding:
            var actions = stopCallingTimers()
            if response.isProvisional {
                state = .proceeding
                return actions + [.deliver(response)]
            }
            if cancelled { actions.append(.cancelTimer(.cancelled)) }
            guard let request = message else { return actions }
            message = nil
            if response.isSuccess {
                state = .accepted
                return actions + [.deliver(response), .startTimer(.timerM, after: timers.timerM)]
            }
            // §17.1.1.3: the INVITE's transaction fields with the To of the response, whose tag the INVITE lacked.
            let ack = SIPRequest(sameTransactionAs: request, method: .ack, to: response.headers["To"])
            message = ack
            actions += [.send(ack), .deliver(response)]
            let timerD = timers.timerD(reliable: reliable)
            if timerD == .zero {
                state = .terminated
                actions.append(.terminated(.normal))
            } else {
                state = .completed
                actions.append(.startTimer(.timerD, after: timerD))
            }
            return actions
        case .completed:
            guard !response.isProvisional, !response.isSuccess, let ack = message else { return [] }
            return [.send(ack)]
        case .accepted:
            return response.isSuccess ? [.deliver(response)] : []
        case .terminated:
            return []
        }
    }

    /// The TU sent a CANCEL for this INVITE (RFC 3261 §9.1). Should no final response come within 64*T1 the
    /// transaction ends with `.timeout`, as the RFC asks: a callee or proxy that answered the CANCEL but never
    /// the INVITE would otherwise hold the transaction, and the call waiting on it, for ever (UAC transactions
    /// have no Timer C). Once a final response came it changes nothing.
    public mutating func cancelSent() -> [ClientTransactionAction] {
        guard state == .calling || state == .proceeding, !cancelled else { return [] }
        cancelled = true
        return [.startTimer(.cancelled, after: timers.timerB)]
    }

    /// A timer fired (RFC 3261 §17.1.1.2, RFC 6026 §8.4). A retransmits the INVITE and restarts with the interval
    /// doubled; B, and the CANCEL guard of ``cancelSent()``, terminate with `.timeout`; D and M terminate. A timer that fires in a state that no longer runs
    /// it raced its cancellation and is ignored.
    public mutating func timerFired(_ timer: ClientTimerID) -> [ClientTransactionAction] {
        switch (state, timer) {
        case (.calling, .timerA):
            guard let request else { return [] }
            timerAInterval *= 2
            return [.send(request), .startTimer(.timerA, after: timerAInterval)]
        case (.calling, .timerB), (.calling, .cancelled), (.proceeding, .cancelled):
            state = .terminated
            return [.terminated(.timeout)]
        case (.completed, .timerD), (.accepted, .timerM):
            state = .terminated
            return [.terminated(.normal)]
        case (.calling, _), (.proceeding, _), (.completed, _), (.accepted, _), (.terminated, _):
            return []
        }
    }

    /// The transport failed to send (RFC 3261 §17.1.4): the transaction ends and the TU is told.
    public mutating func transportError() -> [ClientTransactionAction] {
        switch state {
        case .calling, .proceeding, .completed, .accepted:
            state = .terminated
            return [.terminated(.transportError)]
        case .terminated:
            return []
        }
    }

    /// Timers A and B run only in calling; the first response of any kind stops them.
    private func stopCallingTimers() -> [ClientTransactionAction] {
        guard state == .calling else { return [] }
        return reliable ? [.cancelTimer(.timerB)] : [.cancelTimer(.timerA), .cancelTimer(.timerB)]
    }
}

extension SIPRequest {
    /// Builds the CANCEL for an INVITE this UA sent (RFC 3261 §9.1): the same Request-URI, Call-ID, To, From
    /// (tags included) and CSeq number with method CANCEL, the INVITE's top Via only, so the CANCEL shares its
    /// branch, and its Route headers. Send it in a ``ClientNonInviteTransaction`` of its own, and only once a
    /// provisional response has come.
    ///
    /// ```swift
    /// let cancel = SIPRequest(cancelling: invite)
    /// var transaction = ClientNonInviteTransaction(request: cancel, reliable: false)
    /// ```
    public init(cancelling invite: SIPRequest) {
        self.init(sameTransactionAs: invite, method: .cancel, to: invite.headers["To"])
    }

    /// A request that travels in the INVITE's transaction, as CANCEL and the ACK to a non-2xx do: the INVITE's
    /// Request-URI, top Via, From, Call-ID, CSeq number and Route, the given To, and a fresh Max-Forwards.
    fileprivate init(sameTransactionAs invite: SIPRequest, method: SIPMethod, to: String?) {
        var headers = SIPHeaders()
        let fields = [
            ("Via", invite.headers["Via"]), ("Max-Forwards", "70"), ("From", invite.headers["From"]), ("To", to),
            ("Call-ID", invite.callID),
            ("CSeq", invite.cseq.map { CSeq(sequence: $0.sequence, method: method).description }),
        ]
        for case let (name, value?) in fields { headers.add(name, value) }
        for route in invite.headers.values("Route") { headers.add("Route", route) }
        self.init(method: method, uri: invite.uri, headers: headers)
    }
}
