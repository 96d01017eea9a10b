import BusSchema
import Foundation
import Logging
import Metrics
import NIOCore
import SIPCore

/// The B2BUA: admits bridged and originated calls, runs each one's `CallFlow` and dispatches its actions
/// to the legs' SIP (`UACLegs` for the legs it places, `UASLegs` for its answers as UAS), routes the
/// requests that arrive in its dialogs, and ends the calls a previous run left up. It answers the caller
/// only through the server transactions' narrow `ServerResponder`.
///
/// Loop-bound: everything runs on the SIP event loop; commands arrive there through `execute(_:)`.
final class B2BUA {
    struct Limits {
        /// Calls the bridge holds at once (inbound bridged and originated); beyond it new ones are refused.
        var maxCalls = 10_000
        /// Originated calls one account may have live at once; 0 means no limit.
        var maxOriginatesPerAccount = 10
        var defaultRingTimeout: Duration = .seconds(30)
        var maxRingTimeout: Duration = .seconds(300)
        /// A connected call is ended (cause `limit`) after this long: a party that vanished without a
        /// BYE (a crash, a lost packet) must not hold a call, and its billing, for ever.
        var maxCallDuration: Duration = .seconds(4 * 3600)
    }

    /// A dialog of ours by Call-ID and our tag: two strings shared with the leg's, where a joined key would
    /// be a new allocation per leg.
    struct DialogKey: Hashable {
        let callID: String
        let localTag: String
    }

    private let configuration: BridgeConfiguration
    private let loop: EventLoop
    private let bus: BridgeBus
    private let client: SIPClient
    private let transactions: ServerResponder
    private let store: DialogStore?
    /// Anchors calls' media in rtpengine; nil when the bridge has none (`media_rtpengine` unset).
    let media: MediaService?
    private let logger: Logger
    let limits: Limits
    /// Every URI a command or a worker decision names passes it before the bridge dials or redirects.
    let destinations: DestinationGuard
    private(set) var calls: [String: Call] = [:]
    /// Decides where a phone's REFER goes (the decision gate, once built).
    weak var transferDecider: TransferDecider?
    /// Decides a bridged call's next step after its route failed (the decision gate, once built).
    weak var nextStepDecider: NextStepDecider?
    /// The leg an attended transfer moves into a call, with the SDP origin its peer knows, between taking it from
    /// its call and `.adopt`.
    private var adopting: (sip: LegSIP, origin: Call.LegOrigin?)?
    /// Ended calls whose caller has not ACKed our 2xx yet: its ACK still finds them, and the BYE follows.
    private var awaitingACK: [String: Call] = [:]
    /// Call-ID + our tag → the call and leg of that dialog.
    private var dialogs: [DialogKey: (call: String, leg: LegID)] = [:]
    private var idempotency = IdempotencyCache()
    private var nextOriginate: UInt64 = 0
    private let callPrefix: String
    private var stopping = false
    private lazy var uac: UACLegs = UACLegs(configuration: configuration, loop: loop, client: client, bus: bus, destinations: destinations, logger: logger,
                                   report: { [unowned self] call, event in drive(call, event) },
                                   register: { [unowned self] leg, call, index in
                                       dialogs[DialogKey(callID: leg.sipCallId, localTag: leg.localTag)] = (call.id, index)
                                   },
                                   refreshed: { [unowned self] call, leg in sessions.arm(call, leg: leg) })
    private lazy var uas: UASLegs = UASLegs(loop: loop, timers: configuration.timers, transactions: transactions, client: client, uac: uac,
                                   logger: logger, report: { [unowned self] call, event in drive(call, event) },
                                   refreshed: { [unowned self] call, leg in sessions.arm(call, leg: leg) },
                                   register: { [unowned self] call, tag in
                                       if let leg = call.sip[.first] { dialogs[DialogKey(callID: leg.sipCallId, localTag: tag)] = (call.id, .first) }
                                   },
                                   anchor: { [unowned self] call, exchange, sdp, done in
                                       guard let media else { return done(nil) }
                                       media.rewrite(call, exchange, sdp: sdp, completion: done)
                                   })
    private lazy var referrals: Referrals = Referrals(loop: loop, transactions: transactions, client: client, uac: uac, uas: uas, destinations: destinations,
                                           logger: logger, report: { [unowned self] call, event in drive(call, event) },
                                           ask: { [unowned self] in transferDecider },
                                           dialog: { [unowned self] callID, tag in
                                               dialogs[DialogKey(callID: callID, localTag: tag)].flatMap { entry in calls[entry.call].map { ($0, entry.leg) } }
                                           },
                                           join: { [unowned self] call, referrer, other, replaced in
                                               joinReplaced(call, referrer: referrer, other, replaced: replaced)
                                           })
    private lazy var sessions: SessionRefreshes = SessionRefreshes(loop: loop, timers: configuration.timers, client: client, uac: uac, logger: logger,
                                                 report: { [unowned self] call, event in drive(call, event) })

    private let callsGauge = Gauge(label: "switchboard_calls_active")
    private let callsEnded = Counter(label: "switchboard_calls_ended_total")
    private let refused = Counter(label: "switchboard_calls_refused_total")

    init(configuration: BridgeConfiguration, loop: EventLoop, bus: BridgeBus, client: SIPClient, transactions: ServerResponder,
         store: DialogStore?, media: MediaService? = nil, callPrefix: String, logger: Logger) {
        self.configuration = configuration
        self.loop = loop
        self.bus = bus
        self.client = client
        self.transactions = transactions
        self.store = store
        self.media = media
        self.callPrefix = callPrefix
        self.logger = logger
        limits = configuration.callLimits
        destinations = DestinationGuard(configuration: configuration, logger: logger)
        // One sweep ends the calls past the maximum duration, rather than a timer per call that would sit
        // in the loop's queue (and memory) for hours.
        sweepOverlongCalls(every: min(TimeAmount(limits.maxCallDuration), .seconds(10)))
    }

    private func sweepOverlongCalls(every interval: TimeAmount) {
        loop.assumeIsolated().scheduleTask(in: interval) { [weak self] in
            guard let self else { return }
            let now = ContinuousClock.now
            let maximum = limits.maxCallDuration
            for call in calls.values where call.flow.connectedAt.map({ now - $0 >= maximum }) ?? false {
                drive(call, .durationLimit)
            }
            sweepOverlongCalls(every: interval)
        }
    }

    // MARK: - Admission

    /// Whether a new call may start now; logs and counts the refusal when not.
    func admits() -> Bool {
        guard calls.count < limits.maxCalls, !stopping else {
            refused.increment()
            logger.warning("call refused: bridge at its call limit", metadata: ["calls.active": "\(calls.count)", "calls.max": "\(limits.maxCalls)"])
            return false
        }
        return true
    }

    func ringTimeoutProblem(_ milliseconds: Int?) -> String? {
        guard let milliseconds else { return nil }
        let maximum = Int(limits.maxRingTimeout.components.seconds * 1000)
        return milliseconds > maximum ? "ring_timeout_ms \(milliseconds) exceeds this bridge's maximum of \(maximum)" : nil
    }

    /// A worker decided to bridge the caller's INVITE (already answered 100 by the decision gate). `offer` is kept for
    /// the failure steps a route with `on_failure: ask` may take.
    func startInbound(callId: String, invite: SIPRequest, serverKey: TransactionKey, toTag: String, route: BridgeRoute,
                      offer: CallOffer? = nil) {
        guard let call = admitInbound(callId: callId, invite: invite, serverKey: serverKey, toTag: toTag) else { return }
        if route.onFailure == .ask { call.offer = offer }
        guard route.media == .anchor, let media else {
            if route.media == .anchor {
                logger.warning("media anchoring asked of a bridge without rtpengine: the call's SDP is relayed", metadata: ["call.id": "\(callId)"])
            }
            return drive(call, .decided(route))
        }
        media.anchor(call)
        // An INVITE without an offer gets one from B, which the flow's exchanges anchor as it goes.
        guard let sdp = call.flow.callerOffer else { return drive(call, .decided(route)) }
        hold(call) { resume in
            media.rewrite(call, .callerOffer, sdp: sdp) { rewritten in
                if let rewritten { call.flow.anchorCallerOffer(rewritten) } else { call.media = nil }
                resume(.decided(route))
            }
        }
    }

    /// An `answer` decision: the bridge answers the caller itself, with its media anchored (an IVR's). Without
    /// rtpengine, or a caller's offer to anchor, the caller gets 503 or 488.
    func answerInbound(callId: String, invite: SIPRequest, serverKey: TransactionKey, toTag: String) {
        guard let call = admitInbound(callId: callId, invite: invite, serverKey: serverKey, toTag: toTag) else { return }
        guard let media else {
            logger.warning("answer decision on a bridge without rtpengine (media_rtpengine): the caller gets 503", metadata: ["call.id": "\(callId)"])
            return drive(call, .selfAnswerFailed(status: 503, reason: "Media Unavailable"))
        }
        guard let sdp = call.flow.callerOffer else {
            // The bridge has no offer of its own to make: rtpengine answers offers.
            logger.notice("answer decision for an INVITE without an offer: the caller gets 488", metadata: ["call.id": "\(callId)"])
            return drive(call, .selfAnswerFailed(status: 488, reason: "Not Acceptable Here"))
        }
        media.anchor(call)
        hold(call) { [self] resume in
            media.rewrite(call, .callerOffer, sdp: sdp) { rewritten in
                guard let rewritten else { return resume(.selfAnswerFailed(status: 503, reason: "Media Unavailable")) }
                media.answerItself(call, offered: rewritten) { result in
                    switch result {
                    case .success(let answer): resume(.selfAnswered(sdp: answer))
                    case .failure(let error):
                        self.logger.warning("answer decision failed at rtpengine: the caller gets 503", metadata: ["call.id": "\(callId)", "media.error": "\(error)"])
                        resume(.selfAnswerFailed(status: 503, reason: "Media Unavailable"))
                    }
                }
            }
        }
    }

    /// The caller's leg of a new inbound call, registered; nil when the INVITE cannot make a dialog (answered 400).
    private func admitInbound(callId: String, invite: SIPRequest, serverKey: TransactionKey, toTag: String) -> Call? {
        let flow = CallFlow(inbound: MessageBody.sdp(of: invite), callerURI: invite.from?.uri.description ?? "",
                            at: .now, defaultRingTimeout: limits.defaultRingTimeout)
        // The decision gate answered 483 to an INVITE with no hop left, so this is at least 0.
        let call = Call(id: callId, flow: flow, account: invite.headers["X-Switchboard-Auth-User"],
                        maxForwards: (invite.maxForwards ?? 70) - 1,
                        callerIdentity: invite.headers.filter { Call.identityHeaders.contains($0.name.lowercased()) })
        let dialog = Dialog(uas: invite, localTag: toTag, localContact: uac.localContact)
        // Requests to the caller follow its route set (Kamailio's Record-Route), else its Contact.
        guard let dialog else {
            transactions.respond(serverKey, SIPResponse(replyingTo: invite, status: 400, reason: "Missing Contact", toTag: toTag))
            return nil
        }
        guard let destination = uac.destination(in: dialog) else {
            // A hostname with no outbound proxy to resolve it (UACLegs.destination): the BYE would have nowhere to go.
            transactions.respond(serverKey, SIPResponse(replyingTo: invite, status: 400, reason: "Next Hop Not An IP Address", toTag: toTag))
            return nil
        }
        let leg = LegSIP(sipCallId: invite.callID ?? "", localTag: toTag, serverKey: serverKey, destination: destination,
                         sessionTimer: SessionTimer(role: .uas, configuration: configuration.sessionTimer))
        leg.dialog = dialog
        leg.peerAllowsUpdate = LegSIP.allowsUpdate(invite)
        call.sip[.first] = leg
        calls[callId] = call
        dialogs[DialogKey(callID: leg.sipCallId, localTag: toTag)] = (callId, .first)
        callsGauge.record(calls.count)
        return call
    }

    /// Originates a Click2Call; returns the call id (an earlier one for a repeated idempotency key).
    func originate(_ originate: Originate) -> CommandOutcome {
        let scopedKey = originate.idempotencyKey.map { "\(originate.account ?? "")|\($0)" }
        if let scopedKey, let existing = idempotency.call(for: scopedKey) {
            return .originated(callId: existing, existing: true)
        }
        if stopping { return .failed(ErrorReply(code: .shuttingDown, message: "the bridge is shutting down")) }
        if let problem = ringTimeoutProblem(originate.a.ringTimeoutMs) ?? ringTimeoutProblem(originate.b.ringTimeoutMs) {
            return .failed(ErrorReply(code: .badCommand, message: problem))
        }
        for (field, party) in [("a.uri", originate.a), ("b.uri", originate.b)] {
            if let denial = destinations.check(party.uri, place: .originate, callId: nil) {
                return .failed(destinations.commandError(denial, field: field))
            }
        }
        guard admits() else {
            return .failed(ErrorReply(code: .limitExceeded, message: "the bridge holds its maximum of \(limits.maxCalls) calls"))
        }
        if let account = originate.account, limits.maxOriginatesPerAccount > 0 {
            let live = calls.values.filter { $0.flow.kind == .originate && $0.account == account }.count
            if live >= limits.maxOriginatesPerAccount {
                refused.increment()
                return .failed(ErrorReply(code: .accountLimit,
                                           message: "account \(account) has \(live) originated calls live, its limit is \(limits.maxOriginatesPerAccount)"))
            }
        }
        nextOriginate += 1
        let callId = "\(callPrefix)-o\(nextOriginate)"
        if let scopedKey { idempotency.remember(scopedKey, call: callId) }
        let call = Call(id: callId, flow: CallFlow(originateAt: .now, defaultRingTimeout: limits.defaultRingTimeout), account: originate.account)
        calls[callId] = call
        callsGauge.record(calls.count)
        bus.publish(callId: callId, .callOriginated(originate))
        drive(call, .originate(originate))
        return .originated(callId: callId, existing: false)
    }

    // MARK: - Driving the flow

    /// Feeds the call's flow one event and carries out its actions. An anchored call's SDP goes through rtpengine
    /// first; the events that come meanwhile wait their turn, so the flow sees every event in the order it came.
    func drive(_ call: Call, _ event: CallFlow.Event) {
        if call.heldEvents != nil {
            call.heldEvents?.append(event)
            return
        }
        if let media, call.media != nil, let exchange = call.flow.sdpExchange(for: event), let sdp = event.sdp {
            hold(call) { resume in
                media.rewrite(call, exchange, sdp: sdp) { rewritten in resume(rewritten.map(event.replacingSDP) ?? event) }
            }
            return
        }
        apply(call, event)
    }

    private func apply(_ call: Call, _ event: CallFlow.Event) {
        let actions = call.flow.handle(event, at: .now)
        for action in actions { perform(action, in: call) }
    }

    /// Holds the call's events while `work` waits for rtpengine; `work` resumes with the event the flow gets first (its
    /// SDP rtpengine's already), then the held ones follow in order.
    private func hold(_ call: Call, _ work: (@escaping (CallFlow.Event) -> Void) -> Void) {
        call.heldEvents = []
        work { [self] event in
            let held = call.heldEvents ?? []
            call.heldEvents = nil
            apply(call, event)
            for later in held { drive(call, later) }
        }
    }

    private func perform(_ action: CallFlow.Action, in call: Call) {
        switch action {
        case .invite(let leg, let uri, let sdp, let callerId, let headers, let attempt):
            uac.invite(call, leg: leg, uri: uri, sdp: call.stamp(sdp, to: leg, answer: false), callerId: callerId, headers: headers, attempt: attempt)
        case .reinvite(let leg, let sdp):
            uac.reinvite(call, leg: leg, sdp: call.stamp(sdp, to: leg, answer: false))
        case .ack(let leg, let sdp):
            uac.ack(call, leg: leg, sdp: call.stamp(sdp, to: leg, answer: true))
        case .cancel(let leg):
            // The inbound caller's INVITE is ours to answer, not to cancel (the flow rejects it).
            if leg == .first, call.flow.kind == .inbound { return }
            uac.cancel(call, leg: leg)
        case .bye(let leg):
            call.sip[leg]?.sessionTask?.cancel()
            uas.bye(call, leg: leg)
        case .provisionalToCaller(let leg, let status, let sdp):
            uas.provisionalToCaller(call, from: leg, status: status, sdp: sdp)
        case .answerCaller(let leg, let sdp):
            uas.answerCaller(call, from: leg, sdp: sdp)
        case .rejectCaller(let status, let reason, let reasonHeader, let headers):
            uas.rejectCaller(call, status: status, reason: reason, reasonHeader: reasonHeader, headers: headers)
        case .askNextStep(let failure):
            askNextStep(call, failure: failure)
        case .startRingTimer(let leg, let delay):
            call.sip[leg]?.ringTimer?.cancel()
            call.sip[leg]?.ringTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in drive(call, .ringTimeout(leg: leg)) }
        case .startGlareTimer(let leg):
            // RFC 3261 §14.1: 2.1-4 s on a leg the bridge called (its Call-ID is the bridge's), else 0-2 s.
            guard let dialog = call.sip[leg]?.dialog else { return }
            var random = SystemRandomNumberGenerator()
            loop.assumeIsolated().scheduleTask(in: TimeAmount(dialog.glareRetryDelay(using: &random))) { [self] in
                drive(call, .glareTimer(leg: leg))
            }
        case .cancelRingTimer(let leg):
            call.sip[leg]?.ringTimer?.cancel()
            call.sip[leg]?.ringTimer = nil
        case .notify(let leg, let status, let reason):
            referrals.notify(call, leg: leg, status: status, reason: reason)
        case .release(let leg):
            referrals.release(call, leg: leg)
        case .adopt(let leg):
            guard let (sip, origin) = adopting else { return }
            adopting = nil
            call.sip[leg] = sip
            call.adoptOrigin(origin, for: leg)
            dialogs[DialogKey(callID: sip.sipCallId, localTag: sip.localTag)] = (call.id, leg)
            sessions.arm(call, leg: leg)
        case .publish(let body):
            if case .callConnected = body, call.connectedWall == nil { call.connectedWall = Date() }
            // What the call played and recorded is reported before its end, so a CDR has it.
            if case .callEnded = body { media?.ending(call) }
            bus.publish(callId: call.id, body)
        case .persist:
            store?.save(record(of: call))
        case .finished:
            finish(call)
        }
    }

    /// An attended transfer (RFC 3891) between two calls of the bridge: the party the referrer's leg `replaced` talks to
    /// in `other` moves into `call`, in place of `referrer`; `other` ends, `replaced` with a BYE.
    private func joinReplaced(_ call: Call, referrer: LegID, _ other: Call, replaced: LegID) {
        guard let (moved, sip) = other.sip.first(where: { $0.key != replaced && other.flow.legs[$0.key]?.state == .answered }),
              let uri = other.flow.legs[moved]?.uri,
              let transferee = call.flow.legs.first(where: { $0.key != referrer && $0.value.state == .answered })?.value.uri else {
            drive(call, .referralRefused(status: 481, reason: "Call Leg/Transaction Does Not Exist"))
            return
        }
        let sdp = other.flow.legs[replaced]?.sentSDP
        sip.sessionTask?.cancel()
        other.sip[moved] = nil
        drive(other, .legMoved(leg: moved, to: transferee))
        adopting = (sip, other.removeOrigin(of: moved))
        drive(call, .referralReplaces(uri: uri, sdp: sdp))
    }

    /// The failure step (CallFlow `.askNextStep`): the workers get the caller's offer with the failure; their answer,
    /// or the fallback, drives the flow on. Without the offer or a decider the caller gets the failure at once.
    private func askNextStep(_ call: Call, failure: RouteFailure) {
        guard var offer = call.offer, let decider = nextStepDecider else {
            drive(call, .stepFallback)
            return
        }
        offer.failure = failure
        var answered = false
        let requestId = decider.decideNextStep(callId: call.id, offer: offer) { [self] step in
            answered = true
            call.pendingStep = nil
            switch step {
            case .route(let route): drive(call, .rerouted(route))
            case .end(let status, let reason, let headers): drive(call, .stepEnded(status: status, reason: reason, headers: headers))
            case .fallback: drive(call, .stepFallback)
            }
        }
        // A stopping bridge answers at once, before the request id is known.
        if !answered { call.pendingStep = requestId }
    }

    private func finish(_ call: Call) {
        calls[call.id] = nil
        media?.finished(call)
        if let requestId = call.pendingStep {
            call.pendingStep = nil
            nextStepDecider?.withdrawStep(requestId)
        }
        referrals.finished(call)
        callsEnded.increment()
        callsGauge.record(calls.count)
        store?.delete(callId: call.id)
        // Dialog lookups stay a little while, so a late BYE or retransmitted 2xx still finds its leg.
        let keys = call.sip.values.flatMap { leg in
            ([leg.localTag] + leg.earlyTags.values).map { DialogKey(callID: leg.sipCallId, localTag: $0) }
        }
        for leg in call.sip.values {
            leg.ringTimer?.cancel()
            leg.reliable?.timer?.cancel()
            if !leg.byeAfterACK { leg.unacknowledged?.timer?.cancel() }
            leg.relaying?.timerC?.cancel()
            leg.sessionTask?.cancel()
        }
        if call.sip.values.contains(where: \.byeAfterACK) { awaitingACK[call.id] = call }
        loop.assumeIsolated().scheduleTask(in: TimeAmount(configuration.timers.t1 * 64)) { [self] in
            for key in keys where dialogs[key].map({ calls[$0.call] == nil }) ?? false { dialogs[key] = nil }
        }
    }

    // MARK: - Requests inside dialogs

    /// An in-dialog request (it has a To tag) from either side; false when no dialog of ours matches, so
    /// the edge answers 481.
    func inDialog(_ request: SIPRequest, key: TransactionKey) -> Bool {
        guard let callID = request.callID, let tag = request.to?.tag, let (callId, index) = dialogs[DialogKey(callID: callID, localTag: tag)] else {
            return false
        }
        if request.method == .ack, let call = calls[callId] ?? awaitingACK[callId] {
            uas.acknowledged(call, leg: index, ack: request)
            if call.sip[index]?.unacknowledged == nil { awaitingACK[callId] = nil }
            return true
        }
        guard let call = calls[callId], let leg = call.sip[index], var dialog = leg.dialog else {
            // The call just ended: a crossing BYE still gets its 200, and ends a wait for the caller's ACK.
            if request.method == .bye {
                transactions.respond(key, SIPResponse(replyingTo: request, status: 200))
                if let waiting = awaitingACK.removeValue(forKey: callId) { uas.byeReceived(waiting, leg: index) }
            }
            return request.method == .bye || request.method == .ack
        }
        if case .outOfOrder = dialog.receive(request) {
            transactions.respond(key, SIPResponse(replyingTo: request, status: 500, reason: "Server Internal Error - CSeq Out Of Order"))
            return true
        }
        leg.dialog = dialog
        switch request.method {
        case .bye:
            transactions.respond(key, SIPResponse(replyingTo: request, status: 200))
            call.byeReasons = request.headers.values("Reason")
            referrals.hungUp(call, leg: index)
            drive(call, .bye(leg: index))
        case .invite, .update, .info:
            if request.method != .info { leg.readAllow(of: request) }
            uas.relay(request, key: key, from: index, in: call)
        case .options:
            transactions.respond(key, SIPResponse(replyingTo: request, status: 200))
        case .prack where index == .first:
            uas.prack(request, key: key, in: call)
        case .prack:
            transactions.respond(key, SIPResponse(replyingTo: request, status: 481))
        case .refer:
            referrals.received(request, key: key, from: index, in: call)
        default:
            var response = SIPResponse(replyingTo: request, status: 405)
            response.headers.add("Allow", SIPEdge.allowed.map(\.rawValue).joined(separator: ", "))
            transactions.respond(key, response)
        }
        return true
    }

    /// A CANCEL for the INVITE `serverKey` names (the edge answered the CANCEL 200): the caller's INVITE of a
    /// live call's leg A, or a re-INVITE the bridge relays (its CANCEL goes on to the other leg, RFC 3261 §9.1);
    /// false for neither, and the edge answers the INVITE 487 itself.
    func cancelled(serverKey: TransactionKey) -> Bool {
        guard let request = transactions.request(for: serverKey), let callID = request.callID else { return false }
        if let dialogTag = request.to?.tag {
            guard let (callId, index) = dialogs[DialogKey(callID: callID, localTag: dialogTag)], let call = calls[callId] else { return false }
            return uas.requesterCancelled(call, leg: index, key: serverKey)
        }
        guard let tag = transactions.toTag(for: serverKey), let (callId, index) = dialogs[DialogKey(callID: callID, localTag: tag)],
              index == .first, let call = calls[callId] else { return false }
        if !uas.cancelHeldAnswer(call) { drive(call, .callerCancelled) }
        return true
    }

    // MARK: - Shutdown and restart

    /// Ends every call with BYE/CANCEL (cause `shutdown`) and refuses new ones; returns how many it ended.
    func shutdown() -> Int {
        stopping = true
        let ended = calls.count
        for call in Array(calls.values) { drive(call, .shutdown) }
        return ended
    }

    /// Ends the legs a previous run of this bridge left up: BYE in each dialog, `call.ended` with cause
    /// `bridge_restart`.
    func endLeftovers(_ records: [DialogStore.Record]) {
        for record in records {
            for leg in record.legs {
                var dialog = leg.dialog
                let request = dialog.makeRequest(.bye, via: client.makeVia())
                guard let address = uac.destination(in: dialog) ?? uac.outboundDestination(for: dialog.remoteTarget) else { continue }
                client.send(request, to: address) { [logger] outcome in
                    if case .response(let response) = outcome, !response.isProvisional {
                        logger.info("leftover leg ended", metadata: ["call.id": "\(record.callId)", "sip.status": "\(response.status)"])
                    }
                }
            }
            let now = Date()
            let talk = record.connectedAt.map { now.timeIntervalSince($0) * 1000 } ?? 0
            bus.publish(callId: record.callId, .callEnded(Ended(cause: .bridgeRestart, by: .bridge,
                                                                durationMs: now.timeIntervalSince(record.createdAt) * 1000, talkMs: talk)))
            store?.delete(callId: record.callId)
            media?.delete(callId: record.callId)
        }
        if !records.isEmpty { logger.notice("ended calls left up by the previous run", metadata: ["calls.count": "\(records.count)"]) }
    }

    func record(of call: Call) -> DialogStore.Record {
        let legs = call.sip.compactMap { index, leg -> DialogStore.Record.AnsweredLeg? in
            guard let dialog = leg.dialog, call.flow.legs[index]?.state == .answered else { return nil }
            return DialogStore.Record.AnsweredLeg(role: call.flow.legs[index]?.role ?? .a, dialog: dialog)
        }
        return DialogStore.Record(callId: call.id, createdAt: call.createdWall, connectedAt: call.connectedWall, legs: legs)
    }
}
