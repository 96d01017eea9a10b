import BusSchema
import Logging
import NIOCore
import SIPCore

/// The SIP of the legs the bridge places as UAC (every B leg, and both legs of an originate): the INVITE
/// and what answers it, a second fork's 2xx, the ACK, CANCEL, BYE and re-INVITE, and where in-dialog
/// requests go. Client transactions run in `SIPClient`; what the phones answer goes back to the call's
/// flow through `report`. Loop-bound, owned by the `B2BUA`.
final class UACLegs {
    private let configuration: BridgeConfiguration
    private let loop: EventLoop
    private let client: SIPClient
    private let bus: BridgeBus
    /// Screens the contacts of a B leg's 3xx before the call follows them.
    private let destinations: DestinationGuard
    private let logger: Logger
    /// Hands a leg's news to its call's flow (the B2BUA drives it).
    private let report: (Call, CallFlow.Event) -> Void
    /// Called when a leg's dialog is known by Call-ID and tag, so requests in it find the call.
    private let register: (LegSIP, Call, LegID) -> Void
    /// Called when a 2xx refreshed the leg's session (RFC 4028): its session timer starts again.
    private let refreshed: (Call, LegID) -> Void

    init(configuration: BridgeConfiguration, loop: EventLoop, client: SIPClient, bus: BridgeBus, destinations: DestinationGuard, logger: Logger,
         report: @escaping (Call, CallFlow.Event) -> Void, register: @escaping (LegSIP, Call, LegID) -> Void,
         refreshed: @escaping (Call, LegID) -> Void) {
        self.configuration = configuration
        self.loop = loop
        self.client = client
        self.bus = bus
        self.destinations = destinations
        self.logger = logger
        self.report = report
        self.register = register
        self.refreshed = refreshed
    }

    /// Built on first use, once the socket is bound; every dialog then shares its storage.
    private(set) lazy var localContact = NameAddress(uri: SIPAnyURI("sip:switchboard@\(client.localHost):\(client.localPort)")!)

    // MARK: - The INVITE (RFC 3261 §13.2)

    func invite(_ call: Call, leg index: LegID, uri: String, sdp: [UInt8]?, callerId: CallerID?, headers: [String: String], attempt: Int) {
        guard let target = SIPAnyURI(uri) else {
            report(call, .failed(leg: index, status: 416, reason: "Unsupported URI Scheme"))
            return
        }
        let sipCallId = "\(call.id)-\(index)@\(client.localHost)"
        let tag = SIPEdge.makeTag()
        let from = fromAddress(call, callerId: callerId)
        var request = SIPRequest(method: .invite, uri: target)
        request.headers.add("Via", client.makeVia().description)
        request.headers.add("Max-Forwards", "\(call.maxForwards)")
        request.headers.add("From", NameAddress(displayName: from.displayName, uri: from.uri, parameters: [SIPParameter("tag", tag)]).description)
        request.headers.add("To", NameAddress(uri: target).description)
        request.headers.add("Call-ID", sipCallId)
        request.headers.add("CSeq", "1 INVITE")
        addIdentity(of: call, presenting: callerId, as: from, to: &request)
        request.headers.add("Contact", localContact.description)
        request.headers.add("Allow", SIPEdge.allowed.map(\.rawValue).joined(separator: ", "))
        request.headers.add("X-Switchboard-Call-Id", call.id)
        let sessionTimer = SessionTimer(role: .uac, configuration: configuration.sessionTimer)
        for header in Self.inviteHeaders(sessionTimer) { request.headers.add(header.name, header.value) }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { request.headers.add(name, value) }
        if let sdp {
            request.headers.add("Content-Type", "application/sdp")
            request.body = sdp
        }
        guard let destination = outboundDestination(for: target) else {
            logger.error("no route for leg", metadata: ["call.id": "\(call.id)", "sip.ruri": "\(uri)"])
            report(call, .failed(leg: index, status: 503, reason: "No Route"))
            return
        }
        let leg = LegSIP(sipCallId: sipCallId, localTag: tag, invite: request, destination: destination, sessionTimer: sessionTimer)
        call.sip[index] = leg
        register(leg, call, index)
        if let role = call.flow.legs[index]?.role {
            bus.publish(callId: call.id, .callDialing(Dialing(leg: role, uri: uri, sipCallId: sipCallId, attempt: attempt)))
        }
        client.send(request, to: destination) { [self] outcome in inviteOutcome(call, leg: index, outcome) }
    }

    /// The caller's identity headers (`Call.callerIdentity`); a caller id the decision or command chose is what the
    /// bridge asserts instead (RFC 3325), since the From it writes says the same.
    private func addIdentity(of call: Call, presenting callerId: CallerID?, as from: NameAddress, to request: inout SIPRequest) {
        let chosen = callerId?.uri != nil
        for header in call.callerIdentity where !(chosen && header.name.lowercased() == "p-asserted-identity") {
            request.headers.add(header.name, header.value)
        }
        if chosen { request.headers.add("P-Asserted-Identity", NameAddress(displayName: from.displayName, uri: from.uri).description) }
    }

    /// The session timer's header fields for a leg's INVITE, its Supported naming 100rel too: the bridge PRACKs
    /// a reliable provisional (RFC 3262 §4).
    private static func inviteHeaders(_ timer: SessionTimer) -> [SIPHeader] {
        timer.requestHeaders().map { $0.name == "Supported" ? SIPHeader(name: "Supported", value: "100rel, \($0.value)") : $0 }
    }

    /// Caller id for a leg: the one asked for, else (inbound) the caller's own From, else the bridge.
    private func fromAddress(_ call: Call, callerId: CallerID?) -> NameAddress {
        let original = call.sip[.first]?.dialog?.remoteURI
        let uri = callerId?.uri.flatMap(SIPAnyURI.init) ?? original?.uri ?? SIPAnyURI("sip:switchboard@\(client.localHost)")!
        return NameAddress(displayName: callerId?.displayName ?? (callerId?.uri == nil ? original?.displayName : nil), uri: uri)
    }

    /// What the callee answered: a provisional (and a CANCEL that waited for one), the 2xx that makes the
    /// leg's dialog, or a failure.
    private func inviteOutcome(_ call: Call, leg index: LegID, _ outcome: SIPClient.Outcome) {
        switch outcome {
        case .timeout:
            report(call, .failed(leg: index, status: 408, reason: "Request Timeout"))
        case .transportError:
            report(call, .failed(leg: index, status: 503, reason: "Transport Error"))
        case .response(let response):
            guard let leg = call.sip[index] else { return }
            if response.isProvisional {
                guard prackIfReliable(response, leg: leg, call: call) else { return }
                leg.gotProvisional = true
                if leg.cancelWanted { sendCancel(leg) }
                leg.earlyTag = response.to?.tag
                report(call, .provisional(leg: index, status: response.status, sdp: MessageBody.sdp(of: response)))
            } else if response.isSuccess {
                if let dialog = leg.dialog {
                    repeated2xx(response, leg: leg, dialog: dialog, call: call)
                    return
                }
                guard let dialog = answeredDialog(response, leg: leg) else {
                    logger.warning("2xx without To tag or Contact", metadata: ["call.id": "\(call.id)"])
                    return
                }
                leg.dialog = dialog
                leg.reliableEarly = [:]
                // Answered: no CANCEL can follow, and another fork's 2xx is handled from the dialog.
                leg.setup = .answered(response)
                leg.destination = destination(in: dialog) ?? leg.destination
                leg.sessionTimer.received2xx(response)
                leg.peerAllowsUpdate = LegSIP.allowsUpdate(response)
                report(call, .answered(leg: index, sdp: MessageBody.sdp(of: response)))
                refreshed(call, index)
            } else if response.status == 422, retryWithLargerInterval(response, call: call, leg: index) {
                return
            } else if (300...399).contains(response.status) {
                report(call, .redirected(leg: index, status: response.status, reason: response.reason,
                                         targets: redirectTargets(response, call: call)))
            } else {
                report(call, .failed(leg: index, status: response.status, reason: response.reason))
            }
        }
    }

    /// RFC 3262 §4: a reliable provisional (Require: 100rel, RSeq) gets a PRACK in its early dialog, with the next
    /// CSeq there. False for one not to pass on: a retransmission of one PRACKed already, or one out of order (its
    /// RSeq not one up).
    private func prackIfReliable(_ response: SIPResponse, leg: LegSIP, call: Call) -> Bool {
        guard response.status > 100, response.headers.namesOptionTag("100rel", in: "Require"),
              let rseq = response.headers["RSeq"].flatMap({ UInt32($0) }), let tag = response.to?.tag, let cseq = response.cseq,
              let invite = leg.invite else { return true }
        var early: LegSIP.ReliableEarly
        if let known = leg.reliableEarly[tag] {
            guard rseq == known.rseq &+ 1 else { return false }
            early = known
            early.rseq = rseq
        } else {
            guard let dialog = Dialog(uac: invite, response: response) else { return true }
            early = LegSIP.ReliableEarly(dialog: dialog, rseq: rseq)
        }
        let rack = RAck(rseq: rseq, sequence: cseq.sequence, method: cseq.method)
        let prack = early.dialog.makeRequest(.prack, via: client.makeVia(), extraHeaders: [("RAck", rack.description)])
        leg.reliableEarly[tag] = early
        client.send(prack, to: destination(in: early.dialog) ?? leg.destination) { [logger] outcome in
            // Its 2xx is absorbed; a failure leaves B to retransmit its provisional and give up (§3).
            if case .response(let answer) = outcome, answer.status >= 300 {
                logger.info("PRACK refused", metadata: ["call.id": "\(call.id)", "sip.status": "\(answer.status)"])
            }
        }
        return true
    }

    /// The dialog B's 2xx makes: the early dialog it confirms when the bridge PRACKed in it (its CSeq goes on past
    /// the PRACKs), else a new one (RFC 3261 §13.2.2.4).
    private func answeredDialog(_ response: SIPResponse, leg: LegSIP) -> Dialog? {
        if let tag = response.to?.tag, var early = leg.reliableEarly[tag]?.dialog {
            early.confirm(with: response)
            return early
        }
        return leg.invite.flatMap { Dialog(uac: $0, response: response) }
    }

    /// A 3xx's contacts that the call may follow: SIP URIs, highest q first (RFC 3261 §8.1.3.4), each
    /// passing the destination policy (whatever `policy_worker_targets` says: a callee's redirect is
    /// trusted less than a worker's decision).
    private func redirectTargets(_ response: SIPResponse, call: Call) -> [String] {
        let contacts = response.contacts.filter { $0.uri.sipURI != nil }.enumerated().sorted { lhs, rhs in
            let (l, r) = (Self.q(lhs.element), Self.q(rhs.element))
            return l != r ? l > r : lhs.offset < rhs.offset
        }
        return contacts.map { $0.element.uri.description }.filter { destinations.check($0, place: .redirect, callId: call.id) == nil }
    }

    private static func q(_ contact: NameAddress) -> Double {
        contact.parameters.value(for: "q").flatMap(Double.init) ?? 1
    }

    /// RFC 4028 §7.3: a 422 to the leg's INVITE is tried once more, asking for the interval its Min-SE names, as
    /// a new transaction for the same dialog-to-be (the same Call-ID and From tag, CSeq one up). False when the
    /// retry was made already, or the 422 names no larger interval.
    private func retryWithLargerInterval(_ response: SIPResponse, call: Call, leg index: LegID) -> Bool {
        guard let leg = call.sip[index], var invite = leg.invite, let cseq = invite.cseq, cseq.sequence == 1,
              leg.sessionTimer.received422(response) != nil else { return false }
        invite.headers.set("Via", client.makeVia().description)
        invite.headers.set("CSeq", "\(cseq.sequence + 1) INVITE")
        for header in Self.inviteHeaders(leg.sessionTimer) { invite.headers.set(header.name, header.value) }
        leg.setup = .inviting(invite)
        leg.gotProvisional = false
        logger.info("422 from the leg: INVITE sent again with a larger Session-Expires",
                    metadata: ["call.id": "\(call.id)", "sip.call_id": "\(leg.sipCallId)"])
        client.send(invite, to: leg.destination) { [self] outcome in inviteOutcome(call, leg: index, outcome) }
        return true
    }

    /// A 2xx after the leg's first one (RFC 3261 §13.2.2.4): the same dialog's retransmission gets our ACK
    /// again (or waits for it: in the 3PCC join B's ACK carries A's answer, which may still be on its way);
    /// another fork's answer is ACKed and hung up, as one call has one B.
    private func repeated2xx(_ response: SIPResponse, leg: LegSIP, dialog: Dialog, call: Call) {
        if dialog.matches(response) {
            if leg.acked { sendACK(for: response, leg: leg, body: leg.ackBody) }
            return
        }
        guard var fork = Dialog(forkOf: dialog, response: response) else { return }
        let address = destination(in: fork) ?? leg.destination
        client.sendStateless(fork.makeACK(for: response, via: client.makeVia()), to: address)
        client.send(fork.makeRequest(.bye, via: client.makeVia()), to: address) { _ in }
        logger.info("second fork answered: hung up", metadata: ["call.id": "\(call.id)", "sip.call_id": "\(leg.sipCallId)"])
    }

    /// ACKs the 2xx of the leg's INVITE, with the answer when the INVITE carried no offer.
    func ack(_ call: Call, leg index: LegID, sdp: [UInt8]?) {
        guard let leg = call.sip[index], case .answered(let answer)? = leg.setup else { return }
        leg.setup = nil
        leg.acked = true
        leg.ackBody = sdp ?? []
        sendACK(for: answer, leg: leg, body: leg.ackBody)
    }

    /// The ACK for a 2xx in the leg's dialog, each time with a new branch (RFC 3261 §13.2.2.4): for the
    /// initial INVITE's 2xx (or its retransmission) with the leg's ACK body, for a re-INVITE's without one.
    func sendACK(for answer: SIPResponse, leg: LegSIP, body: [UInt8] = []) {
        guard let dialog = leg.dialog else { return }
        let ack = dialog.makeACK(for: answer, via: client.makeVia(), body: body, contentType: body.isEmpty ? nil : "application/sdp")
        client.sendStateless(ack, to: inDialogDestination(of: leg))
    }

    /// A 2xx to a target refresh request the bridge sent in the leg's dialog, a re-INVITE or UPDATE (RFC 3261
    /// §12.2.1.2): its Contact becomes the leg's remote target, where its ACK and every later request go.
    func refreshTarget(_ leg: LegSIP, with response: SIPResponse) {
        guard response.isSuccess, let method = response.cseq?.method, method == .invite || method == .update else { return }
        leg.dialog?.refreshTarget(with: response)
        leg.readAllow(of: response)
    }

    // MARK: - CANCEL (RFC 3261 §9.1)

    func cancel(_ call: Call, leg index: LegID) {
        guard let leg = call.sip[index] else { return }
        guard leg.gotProvisional else {
            // RFC 3261 §9.1: no CANCEL before a provisional response; it goes out when one comes.
            leg.cancelWanted = true
            return
        }
        sendCancel(leg)
    }

    private func sendCancel(_ leg: LegSIP) {
        guard let invite = leg.invite else { return }
        leg.cancelWanted = false
        client.cancel(invite, to: leg.destination)
    }

    // MARK: - In the dialog

    /// BYE in the leg's dialog, if it has one.
    func bye(_ call: Call, leg index: LegID) {
        guard let leg = call.sip[index], var dialog = leg.dialog else { return }
        var request = dialog.makeRequest(.bye, via: client.makeVia())
        // RFC 3326: the cause the other party's BYE gave (a carrier's Q.850 code) reaches this one.
        for reason in call.byeReasons { request.headers.add("Reason", reason) }
        leg.dialog = dialog
        sendInDialog(request, leg: leg) { [logger] outcome in
            if case .response(let response) = outcome, !response.isSuccess, !response.isProvisional {
                logger.info("BYE refused", metadata: ["call.id": "\(call.id)", "sip.status": "\(response.status)"])
            }
        }
    }

    /// A re-INVITE of the flow's (the 3PCC join, hold).
    func reinvite(_ call: Call, leg index: LegID, sdp: [UInt8]?) {
        guard let leg = call.sip[index], var dialog = leg.dialog else { return }
        let request = dialog.makeRequest(.invite, via: client.makeVia(), body: sdp ?? [], contentType: sdp == nil ? nil : "application/sdp")
        leg.dialog = dialog
        sendReinvite(request, call: call, leg: index) { [self] response in
            if response.isSuccess {
                report(call, .reinviteAnswered(leg: index, sdp: MessageBody.sdp(of: response)))
            } else {
                report(call, .reinviteFailed(leg: index, status: response.status))
            }
        }
    }

    /// A re-INVITE of the bridge's own in the leg's dialog, which refreshes the leg's session too (RFC 4028 §7.4:
    /// it carries the leg's session timer header fields). The leg is busy until it is answered, so a peer's
    /// crossing re-INVITE gets 491 (RFC 3261 §14.2); Timer C bounds the wait for its final response. A 2xx moves
    /// the remote target, is ACKed and restarts the leg's session timer before `final` gets it; no answer at all
    /// loses the leg.
    func sendReinvite(_ request: SIPRequest, call: Call, leg index: LegID, final: @escaping (SIPResponse) -> Void) {
        guard let leg = call.sip[index] else { return }
        var request = request
        for header in leg.sessionTimer.requestHeaders() { request.headers.add(header.name, header.value) }
        leg.busy = true
        let timerC = TimerCRun(machine: InviteTimerC(timers: configuration.timers))
        run(timerC, timerC.machine.start(), of: request, call: call, leg: index)
        sendInDialog(request, leg: leg) { [self] outcome in
            call.sip[index]?.busy = false
            switch outcome {
            case .response(let response):
                run(timerC, timerC.machine.received(status: response.status), of: request, call: call, leg: index)
                if response.isProvisional {
                    call.sip[index]?.busy = true
                    return
                }
                if response.isSuccess, let leg = call.sip[index] {
                    refreshTarget(leg, with: response)
                    sendACK(for: response, leg: leg)
                    leg.sessionTimer.received2xx(response)
                    refreshed(call, index)
                }
                final(response)
            case .timeout, .transportError:
                run(timerC, timerC.machine.transactionEnded(), of: request, call: call, leg: index)
                report(call, .lost(leg: index))
            }
        }
    }

    /// Timer C of a re-INVITE the bridge sends: the machine and the task it runs on the loop.
    private final class TimerCRun {
        var machine: InviteTimerC
        var task: Scheduled<Void>?

        init(machine: InviteTimerC) {
            self.machine = machine
        }
    }

    /// Carries out Timer C's actions for the re-INVITE `request` of the leg (RFC 3261 §16.8).
    private func run(_ timerC: TimerCRun, _ actions: [InviteTimerC.Action], of request: SIPRequest, call: Call, leg index: LegID) {
        for action in actions {
            switch action {
            case .startTimer(let delay):
                timerC.task?.cancel()
                timerC.task = loop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in
                    run(timerC, timerC.machine.fired(), of: request, call: call, leg: index)
                }
            case .cancelTimer:
                timerC.task?.cancel()
                timerC.task = nil
            case .cancel:
                if let leg = call.sip[index] { cancelInDialog(request, leg: leg) }
            case .timeout:
                report(call, .lost(leg: index))
            }
        }
    }

    func sendInDialog(_ request: SIPRequest, leg: LegSIP, handler: @escaping SIPClient.Handler) {
        client.send(request, to: inDialogDestination(of: leg), handler: handler)
    }

    /// CANCELs a re-INVITE sent with ``sendInDialog(_:leg:handler:)`` (RFC 3261 §9.1), along the same path.
    func cancelInDialog(_ invite: SIPRequest, leg: LegSIP) {
        client.cancel(invite, to: inDialogDestination(of: leg))
    }

    private func inDialogDestination(of leg: LegSIP) -> SocketAddress {
        leg.dialog.flatMap { destination(in: $0) } ?? leg.destination
    }

    // MARK: - Addresses

    /// Where an in-dialog request goes: the first route (a loose router) or the remote target (RFC 3261 §12.2.1.1).
    /// The bridge resolves no names: a hostname there sends the request to the outbound proxy, whose job RFC 3263
    /// is (it reads the same Route and Request-URI); without one, nil.
    func destination(in dialog: Dialog) -> SocketAddress? {
        guard let next = dialog.routeSet.first?.uri.sipURI ?? dialog.remoteTarget.sipURI else { return nil }
        return Self.address(of: next) ?? configuration.outboundProxy
    }

    /// New calls go through the outbound proxy (Kamailio, which finds registered users), else straight to the
    /// target, which must then name an IP address.
    func outboundDestination(for target: SIPAnyURI) -> SocketAddress? {
        if let proxy = configuration.outboundProxy { return proxy }
        return target.sipURI.flatMap(Self.address(of:))
    }

    static func address(of uri: SIPURI) -> SocketAddress? {
        let host = uri.host.hasPrefix("[") ? String(uri.host.dropFirst().dropLast()) : uri.host
        return try? SocketAddress(ipAddress: host, port: Int(uri.port ?? 5060))
    }
}
