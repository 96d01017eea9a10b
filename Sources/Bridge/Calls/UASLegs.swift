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

    init(loop: EventLoop, timers: SIPTimers, transactions: ServerResponder, client: SIPClient, uac: UACLegs, logger: Logger,
         report: @escaping (Call, CallFlow.Event) -> Void) {
        self.loop = loop
        self.timers = timers
        self.transactions = transactions
        self.client = client
        self.uac = uac
        self.logger = logger
        self.report = report
    }

    // MARK: - The caller's INVITE

    func provisionalToCaller(_ call: Call, status: Int, sdp: [UInt8]?) {
        guard let leg = call.sip[.first], let key = leg.serverKey, let invite = transactions.request(for: key) else { return }
        var response = SIPResponse(replyingTo: invite, status: status, toTag: leg.localTag)
        decorate(&response, for: invite, sdp: sdp)
        transactions.respond(key, response)
    }

    func answerCaller(_ call: Call, sdp: [UInt8]?) {
        guard let leg = call.sip[.first], let key = leg.serverKey, let invite = transactions.request(for: key) else { return }
        var response = SIPResponse(replyingTo: invite, status: 200, toTag: leg.localTag)
        decorate(&response, for: invite, sdp: sdp)
        // RFC 3261 §13.3.1.4: a 2xx to an INVITE names the methods allowed in the dialog and the
        // extensions supported (none: no 100rel, no session timer).
        response.headers.add("Allow", SIPEdge.allowed.map(\.rawValue).joined(separator: ", "))
        response.headers.add("Supported", "")
        retransmitUntilACK(call, leg: .first, response: response, key: key)
    }

    func rejectCaller(_ call: Call, status: Int, reason: String, reasonHeader: String?) {
        guard let leg = call.sip[.first], let key = leg.serverKey, let invite = transactions.request(for: key) else { return }
        var response = SIPResponse(replyingTo: invite, status: status, reason: reason, toTag: leg.localTag)
        if let reasonHeader { response.headers.add("Reason", reasonHeader) }
        transactions.respond(key, response)
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
    private func retransmitUntilACK(_ call: Call, leg index: LegID, response: SIPResponse, key: TransactionKey) {
        guard let leg = call.sip[index] else { return }
        leg.unacknowledged?.timer?.cancel()
        let answer = LegSIP.Answer(machine: UAS2xxRetransmission(response: response, timers: timers), key: key)
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
                if reason == .timeout {
                    logger.notice("no ACK for 2xx: leg given up", metadata: ["call.id": "\(call.id)", "sip.call_id": "\(call.sip[index]?.sipCallId ?? "-")"])
                    report(call, .lost(leg: index))
                }
            }
        }
    }

    /// An ACK in the leg's dialog: the one for our 2xx stops its retransmission, and the caller's carries
    /// its answer when it made no offer.
    func acknowledged(_ call: Call, leg index: LegID, ack: SIPRequest) {
        guard let answer = call.sip[index]?.unacknowledged else { return }
        let actions = answer.machine.receivedACK(sequence: ack.cseq?.sequence ?? 0)
        guard !actions.isEmpty else { return }
        perform(actions, answer, call: call, leg: index)
        if index == .first, call.flow.kind == .inbound {
            report(call, .callerACK(sdp: ack.body.isEmpty ? nil : ack.body))
        }
    }

    /// The leg's dialog ends (BYE): its 2xx is not sent again.
    func stopRetransmitting(_ call: Call, leg index: LegID) {
        guard let answer = call.sip[index]?.unacknowledged else { return }
        perform(answer.machine.stop(), answer, call: call, leg: index)
        call.sip[index]?.unacknowledged = nil
    }

    // MARK: - Relaying in-dialog requests

    /// Passes a phone's re-INVITE, UPDATE or INFO to the other party and its answer back (RFC 7092's
    /// signaling-only B2BUA): SDP unchanged, so media keeps flowing between the phones.
    func relay(_ request: SIPRequest, key: TransactionKey, from index: LegID, in call: Call) {
        guard call.flow.phase == .connected,
              let other = call.sip.first(where: { $0.key != index && call.flow.legs[$0.key]?.state == .answered })?.key,
              let otherLeg = call.sip[other], var otherDialog = otherLeg.dialog else {
            transactions.respond(key, SIPResponse(replyingTo: request, status: request.method == .invite ? 491 : 500,
                                                  reason: request.method == .invite ? "Request Pending" : "Call Not Connected"))
            return
        }
        if request.method == .invite, otherLeg.busy {
            // Glare (RFC 3261 §14.2): our own re-INVITE to the other side is in flight.
            transactions.respond(key, SIPResponse(replyingTo: request, status: 491))
            return
        }
        let sdp = request.body.isEmpty ? nil : request.body
        let relayed = otherDialog.makeRequest(request.method, via: client.makeVia(), body: request.body, contentType: request.contentType)
        otherLeg.dialog = otherDialog
        if request.method == .invite {
            otherLeg.busy = true
            report(call, .peerOffer(leg: index, sdp: sdp))
        }
        let toTag = call.sip[index]?.localTag
        uac.sendInDialog(relayed, leg: otherLeg) { [self] outcome in
            if request.method == .invite { call.sip[other]?.busy = false }
            var response: SIPResponse
            // RFC 5057 §5.1: a 481 or 408 (or no answer) to a request in the dialog means the far end's
            // dialog is gone; the call ends rather than stay half up until its duration limit.
            var farEndGone = false
            switch outcome {
            case .response(let answer) where answer.isProvisional:
                if request.method == .invite { call.sip[other]?.busy = true }
                return
            case .response(let answer):
                farEndGone = answer.status == 481 || answer.status == 408
                response = SIPResponse(replyingTo: request, status: answer.status, reason: answer.reason, toTag: toTag)
                if answer.isSuccess, request.method == .invite { uac.sendACK(for: answer, leg: otherLeg) }
                if answer.isSuccess {
                    decorate(&response, for: request, sdp: nil)
                    if !answer.body.isEmpty {
                        response.headers.add("Content-Type", answer.contentType ?? "application/sdp")
                        response.body = answer.body
                    }
                }
            case .timeout:
                farEndGone = true
                response = SIPResponse(replyingTo: request, status: 408, toTag: toTag)
            case .transportError:
                response = SIPResponse(replyingTo: request, status: 503, toTag: toTag)
            }
            if request.method == .invite, response.isSuccess {
                retransmitUntilACK(call, leg: index, response: response, key: key)
            } else {
                transactions.respond(key, response)
            }
            if farEndGone { report(call, .lost(leg: other)) }
        }
    }
}
