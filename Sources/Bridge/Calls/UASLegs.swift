import Logging
import NIOCore
import SIPCore

/// The bridge's answers as UAS in its calls: the caller's INVITE (provisionals, the 2xx, a failure) through
/// its server transaction, every 2xx retransmitted until its ACK (`UAS2xxRetransmission`), and the phones'
/// re-INVITE, UPDATE and INFO relayed to the other leg with the answer brought back (a re-INVITE crossing
/// one of ours gets 491). Loop-bound, owned by the `B2BUA`.
final class UASLegs {
    private let loop: EventLoop
    private let timers: SIPTimers
    private let transactions: ServerResponder
    private let client: SIPClient
    private let uac: UACLegs
    private let logger: Logger
    /// Hands news to the call's flow (the B2BUA drives it).
    private let report: (Call, CallFlow.Event) -> Void
    /// Called when a 2xx refreshed the leg's session (RFC 4028): its session timer starts again.
    private let refreshed: (Call, LegID) -> Void
    /// Called with each To tag the caller gets, so its requests with that tag (PRACK, ACK, BYE) find the call.
    private let register: (Call, String) -> Void
    /// An anchored call's SDP, rewritten by rtpengine (nil: it failed, and the SDP goes as it is).
    private let anchor: (Call, CallFlow.SDPExchange, [UInt8], @escaping ([UInt8]?) -> Void) -> Void

    init(loop: EventLoop, timers: SIPTimers, transactions: ServerResponder, client: SIPClient, uac: UACLegs, logger: Logger,
         report: @escaping (Call, CallFlow.Event) -> Void, refreshed: @escaping (Call, LegID) -> Void,
         register: @escaping (Call, String) -> Void,
         anchor: @escaping (Call, CallFlow.SDPExchange, [UInt8], @escaping ([UInt8]?) -> Void) -> Void = { _, _, _, done in done(nil) }) {
        self.loop = loop
        self.timers = timers
        self.transactions = transactions
        self.client = client
        self.uac = uac
        self.logger = logger
        self.report = report
        self.refreshed = refreshed
        self.register = register
        self.anchor = anchor
    }

    /// `body` as its receiver gets it: in an anchored call an SDP goes through rtpengine first (asynchronously);
    /// anything else, or an unanchored call's, at once.
    private func anchored(_ body: [UInt8], contentType: String?, in call: Call, _ exchange: CallFlow.SDPExchange,
                          then: @escaping ([UInt8]) -> Void) {
        guard call.media != nil, MessageBody.isSDP(body, contentType: contentType) else {
            return then(body)
        }
        anchor(call, exchange, body) { then($0 ?? body) }
    }

    // MARK: - The caller's INVITE

    /// B leg `from`'s provisional to the caller, in the caller's early dialog for B's (RFC 3261 §13.2.1): reliably
    /// when the caller's INVITE supports 100rel (RFC 3262 §3).
    func provisionalToCaller(_ call: Call, from bLeg: LegID, status: Int, sdp: [UInt8]?) {
        guard let leg = call.sip[.first], let key = leg.serverKey, let invite = transactions.request(for: key) else { return }
        let early = LegSIP.EarlyKey(leg: bLeg, remoteTag: call.sip[bLeg]?.earlyTag)
        let tag = leg.earlyTags[early] ?? newEarlyTag(leg, call: call)
        leg.earlyTags[early] = tag
        var response = SIPResponse(replyingTo: invite, status: status, toTag: tag)
        decorate(&response, for: invite, sdp: call.stamp(sdp, to: .first, dialogTag: tag, answer: call.flow.callerOffered))
        if invite.headers.namesOptionTag("100rel", in: "Supported") || invite.headers.namesOptionTag("100rel", in: "Require") {
            let reliable = leg.reliable ?? LegSIP.Reliable(machine: ReliableProvisionals(firstRSeq: .random(in: 1...0x7FFF_FFFF), timers: timers),
                                                             key: key)
            leg.reliable = reliable
            perform(reliable.machine.provisional(response), reliable, call: call)
        } else {
            transactions.respond(key, response)
        }
    }

    /// The first early dialog takes the tag the INVITE transaction was given (so the 200 to a CANCEL names it, RFC
    /// 3261 §9.2), every other one a tag of its own.
    private func newEarlyTag(_ leg: LegSIP, call: Call) -> String {
        guard leg.earlyTags.isEmpty else {
            let tag = SIPEdge.makeTag()
            register(call, tag)
            return tag
        }
        return leg.localTag
    }

    /// The 2xx to the caller, from B leg `from`, in the caller's early dialog for B's answering dialog; a dialog the
    /// caller never heard of gets a tag of its own, so its SDP is a new answer and not a change of an early one
    /// (RFC 6337 §3.1). It carries the session interval agreed with the caller (RFC 4028 §9), its own and not
    /// B's; the caller's session timer starts with it.
    func answerCaller(_ call: Call, from bLeg: LegID, sdp: [UInt8]?) {
        guard let leg = call.sip[.first], let key = leg.serverKey, let invite = transactions.request(for: key) else { return }
        let early = LegSIP.EarlyKey(leg: bLeg, remoteTag: call.sip[bLeg]?.dialog?.id.remoteTag)
        let tag = leg.earlyTags[early] ?? newEarlyTag(leg, call: call)
        if tag != leg.localTag, let dialog = Dialog(uas: invite, localTag: tag, localContact: uac.localContact) {
            leg.localTag = tag
            leg.dialog = dialog
        }
        var response = SIPResponse(replyingTo: invite, status: 200, toTag: tag)
        decorate(&response, for: invite, sdp: call.stamp(sdp, to: .first, dialogTag: tag, answer: call.flow.callerOffered))
        // RFC 3261 §13.3.1.4: a 2xx to an INVITE names the methods allowed in the dialog; the edge answered
        // 422 to an INVITE asking for too small a session interval, so this is a success.
        response.headers.add("Allow", SIPEdge.allowed.map(\.rawValue).joined(separator: ", "))
        addSessionTimer((try? leg.sessionTimer.received(invite).get()) ?? [], to: &response)
        if let reliable = leg.reliable {
            perform(reliable.machine.final(response), reliable, call: call)
        } else {
            retransmitUntilACK(call, leg: .first, response: response, key: key, initial: true)
        }
        refreshed(call, .first)
    }

    /// `Supported` (100rel and timer) and the leg's Session-Expires (and Require) in a 2xx to the caller's INVITE or
    /// to a session refresh request.
    private func addSessionTimer(_ headers: [SIPHeader], to response: inout SIPResponse) {
        response.headers.add("Supported", "100rel, timer")
        for header in headers { response.headers.add(header.name, header.value) }
    }

    func rejectCaller(_ call: Call, status: Int, reason: String, reasonHeader: String?, headers: [String: String] = [:]) {
        guard let leg = call.sip[.first], let key = leg.serverKey, let invite = transactions.request(for: key) else { return }
        var response = SIPResponse(replyingTo: invite, status: status, reason: reason, toTag: leg.localTag)
        if let reasonHeader { response.headers.add("Reason", reasonHeader) }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { response.headers.add(name, value) }
        if let reliable = leg.reliable {
            perform(reliable.machine.final(response), reliable, call: call)
        } else {
            transactions.respond(key, response)
        }
    }

    // MARK: - Reliable provisionals (RFC 3262 §3)

    /// The caller CANCELled while its 2xx waits for a PRACK: no final response went out, so the INVITE gets 487
    /// (RFC 3261 §9.2) and the call ends as if the caller hung up at the answer. False when no 2xx waits.
    func cancelHeldAnswer(_ call: Call) -> Bool {
        guard let leg = call.sip[.first], let reliable = leg.reliable, reliable.machine.holdsFinal,
              let invite = transactions.request(for: reliable.key) else { return false }
        let terminated = SIPResponse(replyingTo: invite, status: 487, toTag: leg.localTag)
        perform(reliable.machine.final(terminated), reliable, call: call)
        report(call, .bye(leg: .first))
        return true
    }

    /// The caller's PRACK: 200 when it acknowledges the reliable provisional out (which then stops, and lets a held
    /// 2xx or the next provisional go), 481 when it matches none.
    func prack(_ request: SIPRequest, key: TransactionKey, in call: Call) {
        guard let reliable = call.sip[.first]?.reliable, let rack = request.headers["RAck"].flatMap(RAck.init),
              let actions = reliable.machine.prack(rack) else {
            transactions.respond(key, SIPResponse(replyingTo: request, status: 481))
            return
        }
        transactions.respond(key, SIPResponse(replyingTo: request, status: 200))
        perform(actions, reliable, call: call)
    }

    private func perform(_ actions: [ReliableProvisionals.Action], _ reliable: LegSIP.Reliable, call: Call) {
        for action in actions {
            switch action {
            case .send(let response) where response.isSuccess:
                retransmitUntilACK(call, leg: .first, response: response, key: reliable.key, initial: true)
            case .send(let response):
                transactions.respond(reliable.key, response)
            case .startTimer(let delay):
                reliable.timer = loop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in
                    perform(reliable.machine.timerFired(), reliable, call: call)
                }
            case .cancelTimer:
                reliable.timer?.cancel()
                reliable.timer = nil
            case .timedOut:
                // RFC 3262 §3: the caller never PRACKed, so it cannot be answered: a 5xx, and the B legs end. The
                // caller's dialog never came up, so nothing is sent in it.
                logger.notice("no PRACK from the caller: INVITE rejected", metadata: ["call.id": "\(call.id)"])
                if let leg = call.sip[.first], let invite = transactions.request(for: reliable.key) {
                    transactions.respond(reliable.key, SIPResponse(replyingTo: invite, status: 504, reason: "No PRACK", toTag: leg.localTag))
                    leg.dialog = nil
                }
                report(call, .lost(leg: .first))
            }
        }
    }

    /// A UAS response in a dialog carries our Contact and the request's Record-Route (RFC 3261 §12.1.1).
    private func decorate(_ response: inout SIPResponse, for request: SIPRequest, sdp: [UInt8]?) {
        for route in request.headers.values("Record-Route") { response.headers.add("Record-Route", route) }
        response.headers.add("Contact", uac.localContact.description)
        if let sdp {
            response.headers.add("Content-Type", "application/sdp")
            response.body = sdp
        }
    }

    // MARK: - 2xx until the ACK (RFC 3261 §13.3.1.4)

    /// Sends the 2xx through the request's server transaction and again until its ACK; a leg whose ACK
    /// never comes is lost (the flow ends the call with BYE).
    private func retransmitUntilACK(_ call: Call, leg index: LegID, response: SIPResponse, key: TransactionKey, initial: Bool = false) {
        guard let leg = call.sip[index] else { return }
        leg.unacknowledged?.timer?.cancel()
        let answer = LegSIP.Answer(machine: UAS2xxRetransmission(response: response, timers: timers), key: key, initial: initial)
        leg.unacknowledged = answer
        perform(answer.machine.start(), answer, call: call, leg: index)
    }

    private func perform(_ actions: [UAS2xxRetransmission.Action], _ answer: LegSIP.Answer, call: Call, leg index: LegID) {
        for action in actions {
            switch action {
            case .send(let response):
                transactions.respond(answer.key, response)
            case .startTimer(let delay):
                answer.timer = loop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in
                    guard call.sip[index]?.unacknowledged === answer else { return }
                    perform(answer.machine.timerFired(), answer, call: call, leg: index)
                }
            case .cancelTimer:
                answer.timer?.cancel()
                answer.timer = nil
            case .terminated(let reason):
                call.sip[index]?.unacknowledged = nil
                if call.sip[index]?.byeAfterACK == true {
                    uac.bye(call, leg: index)
                } else if reason == .timeout {
                    logger.notice("no ACK for 2xx: leg given up", metadata: ["call.id": "\(call.id)", "sip.call_id": "\(call.sip[index]?.sipCallId ?? "-")"])
                    report(call, .lost(leg: index))
                }
            }
        }
    }

    /// An ACK in the leg's dialog: the one for our 2xx stops its retransmission; the caller's carries its
    /// answer when it made no offer, and so does a requester's for a relayed re-INVITE without one.
    func acknowledged(_ call: Call, leg index: LegID, ack: SIPRequest) {
        guard let answer = call.sip[index]?.unacknowledged else { return }
        let actions = answer.machine.receivedACK(sequence: ack.cseq?.sequence ?? 0)
        guard !actions.isEmpty else { return }
        perform(actions, answer, call: call, leg: index)
        if let relay = call.sip[index]?.relaying, relay.request.cseq?.sequence == ack.cseq?.sequence {
            step(relay, from: index, in: call) { $0.requesterACK(body: ack.body) }
        } else if index == .first, call.flow.kind == .inbound {
            report(call, .callerACK(sdp: ack.body.isEmpty ? nil : ack.body))
        }
    }

    /// The caller hung up while the bridge waited for its ACK to send a BYE: neither is needed now.
    func byeReceived(_ call: Call, leg index: LegID) {
        guard let leg = call.sip[index], let answer = leg.unacknowledged else { return }
        leg.byeAfterACK = false
        perform(answer.machine.stop(), answer, call: call, leg: index)
        leg.unacknowledged = nil
    }

    /// The flow ends the leg's dialog with BYE. Not before the caller's ACK of our 2xx to its INVITE (RFC
    /// 3261 §15): that 2xx goes on until the ACK or its give-up, and the BYE then. A 2xx to a re-INVITE is
    /// not sent again.
    func bye(_ call: Call, leg index: LegID) {
        guard let leg = call.sip[index] else { return }
        if let answer = leg.unacknowledged {
            guard !answer.initial else {
                leg.byeAfterACK = true
                return
            }
            perform(answer.machine.stop(), answer, call: call, leg: index)
            leg.unacknowledged = nil
        }
        uac.bye(call, leg: index)
    }

    // MARK: - Relaying in-dialog requests

    /// Passes a phone's re-INVITE, UPDATE or INFO to the other party and its answer back (RFC 7092's
    /// signaling-only B2BUA): SDP unchanged, so media keeps flowing between the phones.
    func relay(_ request: SIPRequest, key: TransactionKey, from index: LegID, in call: Call) {
        // An anchored call's offer goes through rtpengine before it goes on.
        if let other = call.flow.legs.first(where: { $0.key != index && $0.value.state == .answered })?.key {
            anchored(request.body, contentType: request.contentType, in: call, CallFlow.SDPExchange(sender: index, receiver: other, offer: true)) {
                [self] body in
                var rewritten = request
                rewritten.body = body
                relayAnchored(rewritten, key: key, from: index, in: call)
            }
            return
        }
        relayAnchored(request, key: key, from: index, in: call)
    }

    private func relayAnchored(_ request: SIPRequest, key: TransactionKey, from index: LegID, in call: Call) {
        // RFC 7332 §3: what the bridge relays carries the requester's Max-Forwards less one, so in-dialog requests
        // looping between B2BUAs run out of hops as INVITEs do.
        let hops = request.maxForwards ?? 70
        guard hops > 0 else {
            transactions.respond(key, SIPResponse(replyingTo: request, status: 483, toTag: call.sip[index]?.localTag))
            return
        }
        // A leg a transfer released keeps its dialog until its BYE is answered; what it sends meanwhile
        // belongs to no call (RFC 3261 §12.2.2), and relayed it would turn the media back to it.
        guard call.flow.legs[index]?.state == .answered else {
            transactions.respond(key, SIPResponse(replyingTo: request, status: 481))
            return
        }
        guard call.flow.phase == .connected,
              let other = call.sip.first(where: { $0.key != index && call.flow.legs[$0.key]?.state == .answered })?.key,
              let otherLeg = call.sip[other], var otherDialog = otherLeg.dialog else {
            // Not connected (a transfer or a 3PCC join under way): try again shortly (RFC 3261 §14.2,
            // RFC 3311 §5.2: a Retry-After of 0 to 10 s).
            var response = SIPResponse(replyingTo: request, status: request.method == .invite ? 491 : 500,
                                       reason: request.method == .invite ? "Request Pending" : "Call Not Connected")
            if request.method != .invite { response.headers.add("Retry-After", "\(Int.random(in: 0...10))") }
            transactions.respond(key, response)
            return
        }
        if request.method == .invite, otherLeg.busy {
            // Glare (RFC 3261 §14.2): our own re-INVITE to the other side is in flight.
            transactions.respond(key, SIPResponse(replyingTo: request, status: 491))
            return
        }
        // RFC 4028: a re-INVITE or UPDATE refreshes the session of each leg it crosses, each with its own timer. The
        // requester's is negotiated now and kept once the far side answers 2xx; too small an interval is a 422 here.
        var requesterTimer: SessionTimer?
        var requesterHeaders: [SIPHeader] = []
        if request.method != .info, var timer = call.sip[index]?.sessionTimer {
            switch timer.received(request) {
            case .success(let headers):
                requesterTimer = timer
                requesterHeaders = headers
            case .failure(let problem):
                var response = SIPResponse(replyingTo: request, status: problem.status, reason: problem.reason, toTag: call.sip[index]?.localTag)
                for header in problem.headers { response.headers.add(header.name, header.value) }
                transactions.respond(key, response)
                return
            }
        }
        let body = call.stamp(request.body, contentType: request.contentType, to: other, answer: false)
        var relayed = otherDialog.makeRequest(request.method, via: client.makeVia(), body: body, contentType: request.contentType)
        relayed.headers.set("Max-Forwards", "\(hops - 1)")
        otherLeg.dialog = otherDialog
        if request.method != .info {
            for header in otherLeg.sessionTimer.requestHeaders() { relayed.headers.add(header.name, header.value) }
        }
        let session = requesterTimer.map { LegSIP.SessionRefresh(requester: $0, headers: requesterHeaders) }
        guard request.method == .invite else {
            relayNonInvite(request, key: key, as: relayed, from: index, to: other, in: call, session: session)
            return
        }
        // RFC 3261 §17.2.1: the far side's answer takes a round trip, so 100 Trying now; it also lets the
        // requester's proxy pass on a CANCEL (§9.1, §16.10), which a stateful proxy holds until a provisional.
        transactions.respond(key, SIPResponse(replyingTo: request, status: 100))
        otherLeg.busy = true
        let relay = LegSIP.Relay(machine: RelayedReinvite(offer: request.body, timers: timers), key: key, request: request, far: other,
                                 farInvite: relayed, session: session)
        call.sip[index]?.relaying = relay
        step(relay, from: index, in: call) { $0.start() }
        uac.sendInDialog(relayed, leg: otherLeg) { [self] outcome in
            switch outcome {
            case .response(let response): step(relay, from: index, in: call) { $0.farResponse(response) }
            case .timeout: step(relay, from: index, in: call) { $0.farTimedOut() }
            case .transportError: step(relay, from: index, in: call) { $0.farTransportError() }
            }
        }
    }

    /// The requester CANCELled the re-INVITE `key` names (the edge answered the CANCEL 200); false when it is
    /// no re-INVITE the leg has relayed.
    func requesterCancelled(_ call: Call, leg index: LegID, key: TransactionKey) -> Bool {
        guard let relay = call.sip[index]?.relaying, relay.key == key else { return false }
        step(relay, from: index, in: call) { $0.requesterCancelled() }
        return true
    }

    /// Feeds one event to a relayed re-INVITE's machine and carries out its actions.
    private func step(_ relay: LegSIP.Relay, from index: LegID, in call: Call,
                      _ event: (inout RelayedReinvite) -> [RelayedReinvite.Action]) {
        let actions = event(&relay.machine)
        if relay.machine.state == .completed {
            call.sip[relay.far]?.busy = false
            if call.sip[index]?.relaying === relay { call.sip[index]?.relaying = nil }
        }
        for action in actions {
            switch action {
            case .startTimerC(let delay):
                relay.timerC?.cancel()
                relay.timerC = loop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in
                    step(relay, from: index, in: call) { $0.timerCFired() }
                }
            case .cancelTimerC:
                relay.timerC?.cancel()
                relay.timerC = nil
            case .cancelFar:
                if let farLeg = call.sip[relay.far] { uac.cancelInDialog(relay.farInvite, leg: farLeg) }
            case .relayFinal(let answer):
                if let farLeg = call.sip[relay.far] { uac.refreshTarget(farLeg, with: answer) }
                // The far side's SDP answers the request's offer, or (an offerless re-INVITE) is its own offer.
                let exchange = CallFlow.SDPExchange(sender: relay.far, receiver: index, offer: relay.request.body.isEmpty)
                anchored(answer.isSuccess ? answer.body : [], contentType: answer.contentType ?? "application/sdp", in: call, exchange) {
                    [self] body in
                    var anchoredAnswer = answer
                    anchoredAnswer.body = body
                    var response = relayedResponse(anchoredAnswer, to: relay.request, from: index, far: relay.far, in: call)
                    if response.isSuccess {
                        sessionRefreshed(answer, session: relay.session, into: &response, requester: index, far: relay.far, in: call)
                        retransmitUntilACK(call, leg: index, response: response, key: relay.key)
                    } else {
                        transactions.respond(relay.key, response)
                    }
                }
            case .respond(let status):
                transactions.respond(relay.key, SIPResponse(replyingTo: relay.request, status: status, toTag: call.sip[index]?.localTag))
            case .ackFar(let answer, let body):
                let exchange = CallFlow.SDPExchange(sender: index, receiver: relay.far, offer: false)
                anchored(body, contentType: "application/sdp", in: call, exchange) { [self] body in
                    if let farLeg = call.sip[relay.far] {
                        uac.sendACK(for: answer, leg: farLeg, body: call.stamp(body, contentType: "application/sdp", to: relay.far, answer: true))
                    }
                }
            case .offerAccepted(let offerer, let sdp):
                report(call, .peerOffer(leg: offerer == .requester ? index : relay.far, sdp: sdp))
            case .farEndGone:
                report(call, .lost(leg: relay.far))
            }
        }
    }

    /// A relayed refresh was answered 2xx: each leg's session timer takes its side's news (the requester's from its
    /// request, the far leg's from the 2xx) and starts again, and the requester's 2xx carries its own
    /// Session-Expires, not the far side's, which `relayedResponse` never copies. INFO refreshes nothing.
    private func sessionRefreshed(_ answer: SIPResponse, session: LegSIP.SessionRefresh?, into response: inout SIPResponse,
                                  requester index: LegID, far: LegID, in call: Call) {
        guard let session else { return }
        call.sip[far]?.sessionTimer.received2xx(answer)
        call.sip[index]?.sessionTimer = session.requester
        addSessionTimer(session.headers, to: &response)
        refreshed(call, index)
        refreshed(call, far)
    }

    /// UPDATE and INFO: the far side's final response goes back to the requester.
    private func relayNonInvite(_ request: SIPRequest, key: TransactionKey, as relayed: SIPRequest, from index: LegID, to other: LegID,
                                in call: Call, session: LegSIP.SessionRefresh?) {
        guard let otherLeg = call.sip[other] else { return }
        let toTag = call.sip[index]?.localTag
        uac.sendInDialog(relayed, leg: otherLeg) { [self] outcome in
            var response: SIPResponse
            // RFC 5057 §5.1: a 481 or 408 (or no answer) to a request in the dialog means the far end's
            // dialog is gone; the call ends rather than stay half up until its duration limit.
            var farEndGone = false
            switch outcome {
            case .response(let answer) where answer.isProvisional:
                return
            case .response(let answer):
                if let otherLeg = call.sip[other] { uac.refreshTarget(otherLeg, with: answer) }
                // An UPDATE's offer is answered in its 2xx (RFC 3311 §5.2), which an anchored call's rtpengine rewrites.
                let exchange = CallFlow.SDPExchange(sender: other, receiver: index, offer: false)
                anchored(answer.isSuccess && !request.body.isEmpty ? answer.body : [], contentType: answer.contentType, in: call, exchange) {
                    [self] body in
                    var anchoredAnswer = answer
                    anchoredAnswer.body = body
                    var response = relayedResponse(anchoredAnswer, to: request, from: index, far: other, in: call)
                    if answer.isSuccess {
                        sessionRefreshed(answer, session: session, into: &response, requester: index, far: other, in: call)
                    }
                    transactions.respond(key, response)
                    if answer.status == 481 || answer.status == 408 { report(call, .lost(leg: other)) }
                }
                return
            case .timeout:
                farEndGone = true
                response = SIPResponse(replyingTo: request, status: 408, toTag: toTag)
            case .transportError:
                response = SIPResponse(replyingTo: request, status: 503, toTag: toTag)
            }
            transactions.respond(key, response)
            if farEndGone { report(call, .lost(leg: other)) }
        }
    }

    /// The far side's final response as the requester (leg `index`) gets it: its status and reason, and for a 2xx
    /// our Contact, the request's Record-Route and the far side's body, an answer when the request made an offer.
    ///
    /// A 422 is about the far leg's session interval, not the requester's (each leg has its own timer): the far leg's
    /// timer takes the Min-SE for its next request, and the requester is asked to send again, 491 to a re-INVITE
    /// (RFC 3261 §14.1) and 500 with Retry-After 0 to an UPDATE (RFC 3311 §5.2); relayed, the 422 would name no
    /// Min-SE the requester could meet.
    private func relayedResponse(_ answer: SIPResponse, to request: SIPRequest, from index: LegID, far: LegID,
                                 in call: Call) -> SIPResponse {
        let toTag = call.sip[index]?.localTag
        if answer.status == 422, request.method != .info, call.sip[far]?.sessionTimer.received422(answer) != nil {
            guard request.method == .update else { return SIPResponse(replyingTo: request, status: 491, toTag: toTag) }
            var response = SIPResponse(replyingTo: request, status: 500, toTag: toTag)
            response.headers.add("Retry-After", "0")
            return response
        }
        var response = SIPResponse(replyingTo: request, status: answer.status, reason: answer.reason, toTag: toTag)
        guard answer.isSuccess else { return response }
        decorate(&response, for: request, sdp: nil)
        if !answer.body.isEmpty {
            let contentType = answer.contentType ?? "application/sdp"
            response.headers.add("Content-Type", contentType)
            response.body = call.stamp(answer.body, contentType: contentType, to: index, answer: !request.body.isEmpty)
        }
        return response
    }
}
