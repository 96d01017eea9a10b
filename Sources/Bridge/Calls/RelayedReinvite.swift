import SIPCore

/// A re-INVITE one leg of a connected call sent, relayed by the bridge to the other leg (RFC 7092's
/// signaling-only B2BUA): the requester's INVITE server transaction on one side, the bridge's INVITE client
/// transaction on the far side, and the offer/answer that crosses between them. A pure state machine like the
/// transactions: each event returns the actions for the owner (`UASLegs`) to carry out.
///
/// - A CANCEL from the requester is passed on (RFC 3261 §9.2 ends the requester's side, §9.1 the far side's:
///   the CANCEL goes once the far side sent a provisional), and the requester gets the far side's final
///   response, as a proxy would relay it (§16.10). So when the far side answers 2xx although cancelled (the
///   CANCEL crossed the 2xx), the requester gets that 2xx too, ACKs it, and both ends keep the new session.
///   The other choice, a carrier SBC's, is to answer 487 at once and, when the far 2xx comes anyway, ACK it
///   and re-INVITE the far side back to the previous SDP; that takes a second offer/answer and leaves a window
///   where the two ends disagree on the session, where relaying the final response keeps them in step with
///   nothing more than the exchange a proxy would make.
/// - An offerless re-INVITE (RFC 3261 §14.1, delayed offer; RFC 3725's flows): the far 2xx carries the offer,
///   which goes to the requester in its 2xx; the requester's ACK carries the answer, which goes to the far side
///   in the ACK of its 2xx (§13.2.2.4), so the far 2xx waits unacknowledged until then.
/// - Timer C (§16.6 item 11, `InviteTimerC`): a far side that sent a provisional and then no final response for
///   more than 3 minutes gets a CANCEL, and the requester its 487 (or a 408 should the far side never answer the
///   INVITE at all), rather than a transaction held for ever.
///
/// ```swift
/// var relay = RelayedReinvite(offer: reinvite.body, timers: timers)
/// perform(relay.start())                   // [.startTimerC(after: 181 s)]
/// perform(relay.farResponse(trying))       // []
/// perform(relay.requesterCancelled())      // [.cancelFar]
/// perform(relay.farResponse(terminated))   // [.cancelTimerC, .relayFinal(terminated)]
/// ```
struct RelayedReinvite: Sendable {
    enum State: Sendable, Equatable {
        /// Relayed; nothing back from the far side yet.
        case calling
        /// The far side sent a provisional: a CANCEL may go now (RFC 3261 §9.1).
        case proceeding
        /// Offerless: the far 2xx (its offer) went to the requester, whose ACK brings the answer for the far ACK.
        case awaitingACK(SIPResponse)
        /// The requester has its final response, and a far 2xx is ACKed.
        case completed
    }

    /// Which end of the relay made the offer of a completed offer/answer.
    enum Offerer: Sendable, Equatable {
        case requester, far
    }

    enum Action: Sendable, Equatable {
        /// Start, or restart, Timer C; fire it back with ``timerCFired()``.
        case startTimerC(after: Duration)
        case cancelTimerC
        /// CANCEL the far re-INVITE.
        case cancelFar
        /// The far side's final response goes to the requester (its status, reason and body); a 2xx is sent again
        /// until its ACK (RFC 3261 §13.3.1.4).
        case relayFinal(SIPResponse)
        /// The requester gets a final response of the bridge's own: no far response to relay.
        case respond(status: Int)
        /// ACK this far 2xx (or its retransmission), with the requester's answer when the re-INVITE had no offer.
        case ackFar(SIPResponse, body: [UInt8])
        /// An offer/answer completed: the session between the legs is now described by `sdp`, the offer.
        case offerAccepted(offerer: Offerer, sdp: [UInt8])
        /// The far side's dialog is gone (RFC 5057 §5.1: 481, 408 or no answer to a request in it): end the call.
        case farEndGone
    }

    private(set) var state: State = .calling
    /// The requester's offer; nil for an offerless re-INVITE.
    let offer: [UInt8]?
    /// The requester CANCELled; the CANCEL goes to the far side with its first provisional.
    private(set) var cancelRequested = false
    private var cancelSent = false
    private var timerC: InviteTimerC
    /// Timer C fired and CANCELled the far re-INVITE.
    private var timerCExpired = false
    /// The body of the far ACK, repeated for every retransmission of the far 2xx (RFC 3261 §13.2.2.4).
    private var ackBody: [UInt8] = []

    init(offer: [UInt8]?, timers: SIPTimers) {
        self.offer = offer.flatMap { $0.isEmpty ? nil : $0 }
        timerC = InviteTimerC(timers: timers)
    }

    /// The re-INVITE goes to the far side now: Timer C starts.
    mutating func start() -> [Action] {
        timerCActions(timerC.start())
    }

    /// A response from the far side: provisionals let a wanted CANCEL go; the final one is relayed; a 2xx
    /// retransmission gets the same ACK again once it has been ACKed.
    mutating func farResponse(_ response: SIPResponse) -> [Action] {
        if response.isProvisional {
            guard state == .calling || state == .proceeding else { return [] }
            state = .proceeding
            return timerCActions(timerC.received(status: response.status)) + (cancelRequested ? sendCancel() : [])
        }
        switch state {
        case .calling, .proceeding:
            let stopTimerC = timerCActions(timerC.received(status: response.status))
            if !response.isSuccess {
                state = .completed
                let gone = response.status == 481 || response.status == 408
                return stopTimerC + [.relayFinal(response)] + (gone ? [.farEndGone] : [])
            }
            guard let offer else {
                // Delayed offer: the far ACK waits for the requester's answer.
                state = .awaitingACK(response)
                return stopTimerC + [.relayFinal(response)]
            }
            state = .completed
            return stopTimerC + [.relayFinal(response), .ackFar(response, body: []), .offerAccepted(offerer: .requester, sdp: offer)]
        case .awaitingACK:
            // A retransmission of the far 2xx: its ACK still waits for the requester's answer.
            return []
        case .completed:
            return response.isSuccess ? [.ackFar(response, body: ackBody)] : []
        }
    }

    /// The requester's ACK for the relayed 2xx: with a delayed offer it carries the answer for the far ACK.
    mutating func requesterACK(body: [UInt8]) -> [Action] {
        guard case .awaitingACK(let ok) = state else { return [] }
        state = .completed
        ackBody = body
        return [.ackFar(ok, body: body)] + (ok.body.isEmpty ? [] : [.offerAccepted(offerer: .far, sdp: ok.body)])
    }

    /// The requester CANCELled its re-INVITE (the CANCEL itself was answered 200, RFC 3261 §9.2): the CANCEL
    /// goes on to the far side now if it sent a provisional, else with its first one (§9.1). Once the requester
    /// has a final response the CANCEL changes nothing.
    mutating func requesterCancelled() -> [Action] {
        guard state == .calling || state == .proceeding, !cancelRequested else { return [] }
        cancelRequested = true
        return state == .proceeding ? sendCancel() : []
    }

    /// The far INVITE client transaction timed out: Timer B (no response at all), or no final response within
    /// 64·T1 of our CANCEL (§9.1). A re-INVITE its requester cancelled gets the 487 it asked for, one Timer C
    /// cancelled a 408, and the call goes on (the far side answered nothing that needs undoing, and its
    /// provisional showed its dialog alive); otherwise the far dialog is taken as gone (RFC 5057).
    mutating func farTimedOut() -> [Action] {
        guard state == .calling || state == .proceeding else { return [] }
        state = .completed
        let stopTimerC = timerCActions(timerC.transactionEnded())
        if cancelRequested { return stopTimerC + [.respond(status: 487)] }
        return stopTimerC + (timerCExpired ? [.respond(status: 408)] : [.respond(status: 408), .farEndGone])
    }

    /// The far re-INVITE could not be sent.
    mutating func farTransportError() -> [Action] {
        guard state == .calling || state == .proceeding else { return [] }
        state = .completed
        return timerCActions(timerC.transactionEnded()) + [.respond(status: 503)]
    }

    /// Timer C fired (RFC 3261 §16.8): the far re-INVITE is CANCELled if it had a provisional, whose 487 the
    /// requester then gets; without one it is taken as a 408.
    mutating func timerCFired() -> [Action] {
        guard state == .calling || state == .proceeding else { return [] }
        let actions = timerC.fired()
        if actions.contains(.cancel) { timerCExpired = true }
        if actions.contains(.timeout) { return farTimedOut() }
        return timerCActions(actions)
    }

    private mutating func timerCActions(_ actions: [InviteTimerC.Action]) -> [Action] {
        var mapped: [Action] = []
        for action in actions {
            switch action {
            case .startTimer(let delay): mapped.append(.startTimerC(after: delay))
            case .cancelTimer: mapped.append(.cancelTimerC)
            case .cancel: mapped += sendCancel()
            case .timeout: break
            }
        }
        return mapped
    }

    private mutating func sendCancel() -> [Action] {
        guard !cancelSent else { return [] }
        cancelSent = true
        return [.cancelFar]
    }
}
