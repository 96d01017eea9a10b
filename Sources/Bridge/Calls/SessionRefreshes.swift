import Logging
import NIOCore
import SIPCore

/// Session timers (RFC 4028) run by the bridge per leg, as FreeSWITCH does: each leg's `SessionTimer` is the
/// bridge's with that leg's peer, never relayed through to the other leg. After every refresh of a leg (a 2xx to a
/// re-INVITE or UPDATE in its dialog, relayed or the bridge's own) its next event is scheduled on the call's loop:
/// a refresh the bridge sends itself, or the end of a session whose refresher went quiet. Loop-bound, owned by
/// the `B2BUA`.
final class SessionRefreshes {
    private let loop: EventLoop
    private let timers: SIPTimers
    private let client: SIPClient
    private let uac: UACLegs
    private let logger: Logger
    /// Hands news to the call's flow (the B2BUA drives it).
    private let report: (Call, CallFlow.Event) -> Void

    init(loop: EventLoop, timers: SIPTimers, client: SIPClient, uac: UACLegs, logger: Logger,
         report: @escaping (Call, CallFlow.Event) -> Void) {
        self.loop = loop
        self.timers = timers
        self.client = client
        self.uac = uac
        self.logger = logger
        self.report = report
    }

    /// The leg's session was just refreshed (or agreed): its timer starts again from now.
    func arm(_ call: Call, leg index: LegID) {
        guard let leg = call.sip[index], call.flow.phase != .ended else { return }
        leg.sessionTask?.cancel()
        guard let (delay, event) = leg.sessionTimer.nextEvent, let interval = leg.sessionTimer.interval else {
            leg.sessionTask = nil
            return
        }
        leg.sessionEnds = loop.now + .seconds(Int64(interval))
        schedule(event, after: TimeAmount(delay), call: call, leg: index)
    }

    private func schedule(_ event: SessionTimer.Event, after delay: TimeAmount, call: Call, leg index: LegID) {
        call.sip[index]?.sessionTask = loop.assumeIsolated().scheduleTask(in: delay) { [self] in
            guard call.flow.phase != .ended else { return }
            switch event {
            case .refresh:
                refresh(call, leg: index)
            case .expire:
                logger.notice("session timer expired", metadata: ["call.id": "\(call.id)", "sip.call_id": "\(call.sip[index]?.sipCallId ?? "-")"])
                report(call, .sessionExpired(leg: index))
            }
        }
    }

    /// RFC 4028 §7.4: the refresher sends a session refresh request, an UPDATE without a body when the peer
    /// allows it, else a re-INVITE offering the SDP the leg last got, unchanged (the session does not change, so
    /// neither does its version). A leg with a request of ours in flight is tried again a little later (T2): that
    /// request's 2xx, if it comes, refreshes the leg first.
    private func refresh(_ call: Call, leg index: LegID) {
        guard let leg = call.sip[index], var dialog = leg.dialog else { return }
        guard !leg.busy, leg.relaying == nil else {
            schedule(.refresh, after: TimeAmount(timers.t2), call: call, leg: index)
            return
        }
        guard leg.peerAllowsUpdate else {
            let sdp = call.stamp(call.flow.legs[index]?.sentSDP, to: index, answer: false)
            let reinvite = dialog.makeRequest(.invite, via: client.makeVia(), body: sdp ?? [], contentType: sdp == nil ? nil : "application/sdp")
            leg.dialog = dialog
            // Its 2xx is ACKed and restarts the leg's timer in `UACLegs`.
            uac.sendReinvite(reinvite, call: call, leg: index) { [self] response in
                if !response.isSuccess { refreshFailed(response, method: .invite, call: call, leg: index) }
            }
            return
        }
        var update = dialog.makeRequest(.update, via: client.makeVia())
        leg.dialog = dialog
        for header in leg.sessionTimer.requestHeaders() { update.headers.add(header.name, header.value) }
        leg.busy = true
        uac.sendInDialog(update, leg: leg) { [self] outcome in
            guard let leg = call.sip[index] else { return }
            switch outcome {
            case .response(let response) where response.isProvisional:
                return
            case .response(let response) where response.isSuccess:
                leg.busy = false
                uac.refreshTarget(leg, with: response)
                leg.sessionTimer.received2xx(response)
                arm(call, leg: index)
            case .response(let response):
                leg.busy = false
                refreshFailed(response, method: .update, call: call, leg: index)
            case .timeout, .transportError:
                leg.busy = false
                // RFC 5057 §5.1: no answer to a request in the dialog means it is gone.
                report(call, .lost(leg: index))
            }
        }
    }

    /// A refresh answered with a failure: 422 is tried again at once asking for the peer's Min-SE (§7.3); an
    /// UPDATE the peer advertised but refuses is sent as a re-INVITE from now on; 481 and 408 mean the dialog is
    /// gone (RFC 5057 §5.1); any other failure (a 491 glare, a busy 500 or 503) is tried again before the session
    /// ends (`retry`).
    private func refreshFailed(_ response: SIPResponse, method: SIPMethod, call: Call, leg index: LegID) {
        guard let leg = call.sip[index] else { return }
        switch response.status {
        case 422 where leg.sessionTimer.received422(response) != nil:
            refresh(call, leg: index)
        case 405 where method == .update, 501 where method == .update:
            leg.peerAllowsUpdate = false
            refresh(call, leg: index)
        case 408, 481:
            report(call, .lost(leg: index))
        default:
            retry(after: response, call: call, leg: index)
        }
    }

    /// RFC 4028 §10: a session whose refresh failed stands only until it ends, so the refresh goes again after
    /// RFC 3261 §14.1's back-off for a 491, else after the Retry-After asked for and at least T2; when that would
    /// be too late, the call ends with the session (`session_expired`), as the peer would end it.
    private func retry(after response: SIPResponse, call: Call, leg index: LegID) {
        guard let leg = call.sip[index], let ends = leg.sessionEnds else { return }
        var random = SystemRandomNumberGenerator()
        let retryAfter = response.headers["Retry-After"].flatMap { Int64($0.prefix(while: \.isNumber)) }.map(TimeAmount.seconds)
        let delay = if response.status == 491, let dialog = leg.dialog {
            TimeAmount(dialog.glareRetryDelay(using: &random))
        } else {
            max(TimeAmount(timers.t2), retryAfter ?? .zero)
        }
        let left = ends - loop.now
        logger.info("session refresh failed", metadata: ["call.id": "\(call.id)", "sip.status": "\(response.status)",
                                                         "retry_in_ms": "\(delay.nanoseconds / 1_000_000)"])
        if delay < left {
            schedule(.refresh, after: delay, call: call, leg: index)
        } else {
            schedule(.expire, after: max(left, .zero), call: call, leg: index)
        }
    }
}
