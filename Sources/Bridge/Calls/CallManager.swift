import BusSchema
import Foundation
import Logging
import Metrics
import NIOCore
import SIPCore

/// The B2BUA: runs every bridged and originated call's `CallFlow` and carries out its actions in SIP —
/// leg A as UAS through `SIPEdge`'s server transactions, the other legs as UAC through `SIPClient` —
/// and relays what the phones send each other in the dialogs (BYE, re-INVITE, UPDATE, INFO).
///
/// Loop-bound like the edge; commands arrive from the bus thread through `command(_:reply:)`.
final class CallManager: @unchecked Sendable {
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

    /// A leg's SIP side: a class, so that a call's leg table holds references (a dictionary stores its
    /// values inline in every slot, used or not). What only the call's setup needs sits in boxes that
    /// are dropped once done, so an established leg carries little: 10,000 calls are 20,000 of these.
    final class LegSIP {
        /// Where the leg's own INVITE exchange stands (UAC legs).
        indirect enum Setup {
            /// Our INVITE, unanswered: CANCEL is built from it.
            case inviting(SIPRequest)
            /// The 2xx that answered it, until the flow ACKs it.
            case answered(SIPResponse)
        }

        let sipCallId: String
        let localTag: String
        var setup: Setup?
        /// The caller's INVITE transaction (the inbound leg A).
        let serverKey: TransactionKey?
        var dialog: Dialog?
        var destination: SocketAddress
        var gotProvisional = false
        var cancelWanted = false
        /// The 2xx was ACKed, with this body: a retransmitted 2xx gets the same ACK again.
        var acked = false
        var ackBody: [UInt8] = []
        /// A 2xx we sent as UAS, retransmitted until its ACK.
        var unacknowledged: Unacknowledged?
        var ringTimer: Scheduled<Void>?
        /// A re-INVITE or other request of ours in flight in the dialog (glare: a peer's gets 491).
        var busy = false

        init(sipCallId: String, localTag: String, invite: SIPRequest? = nil, serverKey: TransactionKey? = nil,
             destination: SocketAddress) {
            self.sipCallId = sipCallId
            self.localTag = localTag
            setup = invite.map(Setup.inviting)
            self.serverKey = serverKey
            self.destination = destination
        }

        /// Our INVITE while it is unanswered.
        var invite: SIPRequest? {
            if case .inviting(let invite) = setup { invite } else { nil }
        }
    }

    /// A 2xx this bridge sent as UAS, sent again at T1, 2·T1, ... up to T2 until its ACK (RFC 3261 §13.3.1.4).
    final class Unacknowledged {
        let response: SIPResponse
        let key: TransactionKey
        let sequence: UInt32
        var interval: Duration
        var waited: Duration = .zero
        var timer: Scheduled<Void>?

        init(response: SIPResponse, key: TransactionKey, sequence: UInt32, interval: Duration) {
            self.response = response
            self.key = key
            self.sequence = sequence
            self.interval = interval
        }
    }

    final class Call {
        let id: String
        var flow: CallFlow
        var sip: [Int: LegSIP] = [:]
        let account: String?
        let createdWall: Date
        var connectedWall: Date?

        init(id: String, flow: CallFlow, account: String?) {
            self.id = id
            self.flow = flow
            self.account = account
            createdWall = Date()
        }
    }

    private let configuration: BridgeConfiguration
    private let loop: EventLoop
    private let bus: BusEndpoints
    private let client: SIPClient
    private unowned let edge: SIPEdge
    private let store: DialogStore?
    private let logger: Logger
    let limits: Limits
    private(set) var calls: [String: Call] = [:]
    /// Call-ID + our tag → the call and leg of that dialog.
    private var dialogs: [DialogKey: (call: String, leg: Int)] = [:]
    /// Idempotency keys of originates → their call ids, so a retried command places no second call.
    private var idempotency: [String: String] = [:]
    private var idempotencyOrder: [String] = []
    private var nextOriginate: UInt64 = 0
    private let callPrefix: String
    private(set) var stopping = false
    private(set) var endedByShutdown = 0

    private let callsGauge = Gauge(label: "switchboard_calls_active")
    private let callsEnded = Counter(label: "switchboard_calls_ended_total")
    private let refused = Counter(label: "switchboard_calls_refused_total")

    init(configuration: BridgeConfiguration, loop: EventLoop, bus: BusEndpoints, client: SIPClient, edge: SIPEdge,
         store: DialogStore?, callPrefix: String, logger: Logger) {
        self.configuration = configuration
        self.loop = loop
        self.bus = bus
        self.client = client
        self.edge = edge
        self.store = store
        self.callPrefix = callPrefix
        self.logger = logger
        limits = configuration.callLimits
        // One sweep ends the calls past the maximum duration, rather than a timer per call that would sit
        // in the loop's queue (and memory) for hours.
        let sweep = min(TimeAmount(limits.maxCallDuration), .seconds(10))
        loop.scheduleRepeatedTask(initialDelay: sweep, delay: sweep) { [weak self] _ in self?.endOverlongCalls() }
    }

    private func endOverlongCalls() {
        let now = ContinuousClock.now
        for call in calls.values where call.flow.connectedAt.map({ now - $0 >= limits.maxCallDuration }) ?? false {
            drive(call, .durationLimit)
        }
    }

    var activeCalls: Int { calls.count }

    /// Whether a new call may start now; logs and counts the refusal when not.
    func admits() -> Bool {
        guard calls.count < limits.maxCalls, !stopping else {
            refused.increment()
            logger.warning("call refused: bridge at its call limit", metadata: ["calls.active": "\(calls.count)", "calls.max": "\(limits.maxCalls)"])
            return false
        }
        return true
    }

    // MARK: - Starting calls

    /// A worker decided to bridge the caller's INVITE (already answered 100 by the edge if it took long).
    func startInbound(callId: String, invite: SIPRequest, serverKey: TransactionKey, toTag: String, route: BridgeRoute) {
        let flow = CallFlow(inbound: invite.body.isEmpty ? nil : invite.body, callerURI: invite.from?.uri.description ?? "",
                            at: .now, defaultRingTimeout: limits.defaultRingTimeout)
        let call = Call(id: callId, flow: flow, account: invite.headers["X-Switchboard-Auth-User"])
        let dialog = Dialog(uas: invite, localTag: toTag, localContact: localContact)
        // Requests to the caller follow its route set (Kamailio's Record-Route), else its Contact.
        guard let dialog, let destination = destination(in: dialog) else {
            edge.respond(serverKey, SIPResponse(replyingTo: invite, status: 400, reason: "Missing Contact", toTag: toTag))
            return
        }
        let leg = LegSIP(sipCallId: invite.callID ?? "", localTag: toTag, serverKey: serverKey, destination: destination)
        leg.dialog = dialog
        call.sip[0] = leg
        calls[callId] = call
        dialogs[DialogKey(callID: leg.sipCallId, localTag: toTag)] = (callId, 0)
        callsGauge.record(calls.count)
        drive(call, .decided(route))
    }

    /// Originates a Click2Call; returns the call id (an earlier one for a repeated idempotency key).
    func originate(_ originate: Originate) -> CommandOutcome {
        let scopedKey = originate.idempotencyKey.map { "\(originate.account ?? "")|\($0)" }
        if let scopedKey, let existing = idempotency[scopedKey] {
            return .originated(callId: existing, existing: true)
        }
        if stopping { return .failed(ErrorReply(code: .shuttingDown, message: "the bridge is shutting down")) }
        if let problem = ringTimeoutProblem(originate.a.ringTimeoutMs) ?? ringTimeoutProblem(originate.b.ringTimeoutMs) {
            return .failed(ErrorReply(code: .badCommand, message: problem))
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
        if let scopedKey {
            idempotency[scopedKey] = callId
            idempotencyOrder.append(scopedKey)
            // Keys are kept for the last 100,000 originates: far longer than any client retries.
            if idempotencyOrder.count > 100_000 { idempotency[idempotencyOrder.removeFirst()] = nil }
        }
        let call = Call(id: callId, flow: CallFlow(originateAt: .now, defaultRingTimeout: limits.defaultRingTimeout), account: originate.account)
        calls[callId] = call
        callsGauge.record(calls.count)
        bus.publish(callId: callId, .callOriginated(originate))
        drive(call, .originate(originate))
        return .originated(callId: callId, existing: false)
    }

    func ringTimeoutProblem(_ milliseconds: Int?) -> String? {
        guard let milliseconds else { return nil }
        let maximum = Int(limits.maxRingTimeout.components.seconds * 1000)
        return milliseconds > maximum ? "ring_timeout_ms \(milliseconds) exceeds this bridge's maximum of \(maximum)" : nil
    }

    // MARK: - Driving the flow

    func drive(_ call: Call, _ event: CallFlow.Event) {
        let actions = call.flow.handle(event, at: .now)
        for action in actions { perform(action, in: call) }
    }

    private func perform(_ action: CallFlow.Action, in call: Call) {
        switch action {
        case .invite(let leg, let uri, let sdp, let callerId, let headers, let attempt):
            invite(call, leg: leg, uri: uri, sdp: sdp, callerId: callerId, headers: headers, attempt: attempt)
        case .reinvite(let leg, let sdp):
            reinvite(call, leg: leg, sdp: sdp)
        case .ack(let leg, let sdp):
            ack(call, leg: leg, sdp: sdp)
        case .cancel(let leg):
            cancel(call, leg: leg)
        case .bye(let leg):
            bye(call, leg: leg)
        case .provisionalToCaller(let status, let sdp):
            guard let leg = call.sip[0], let key = leg.serverKey, let invite = edge.request(for: key) else { return }
            var response = SIPResponse(replyingTo: invite, status: status, toTag: leg.localTag)
            decorate(&response, for: invite, sdp: sdp)
            edge.respond(key, response)
        case .answerCaller(let sdp):
            answerCaller(call, sdp: sdp)
        case .rejectCaller(let status, let reason):
            guard let key = call.sip[0]?.serverKey, let invite = edge.request(for: key) else { return }
            edge.respond(key, SIPResponse(replyingTo: invite, status: status, reason: reason, toTag: call.sip[0]?.localTag))
        case .startRingTimer(let leg, let delay):
            call.sip[leg]?.ringTimer?.cancel()
            call.sip[leg]?.ringTimer = loop.scheduleTask(in: TimeAmount(delay)) { [self] in drive(call, .ringTimeout(leg: leg)) }
        case .cancelRingTimer(let leg):
            call.sip[leg]?.ringTimer?.cancel()
            call.sip[leg]?.ringTimer = nil
        case .publish(let body):
            if case .callConnected = body, call.connectedWall == nil { call.connectedWall = Date() }
            bus.publish(callId: call.id, body)
        case .persist:
            store?.save(record(of: call))
        case .finished:
            finish(call)
        }
    }

    private func finish(_ call: Call) {
        calls[call.id] = nil
        callsEnded.increment()
        callsGauge.record(calls.count)
        store?.delete(callId: call.id)
        // Dialog lookups stay a little while, so a late BYE or retransmitted 2xx still finds its leg.
        let keys = call.sip.values.map { DialogKey(callID: $0.sipCallId, localTag: $0.localTag) }
        for leg in call.sip.values {
            leg.ringTimer?.cancel()
            leg.unacknowledged?.timer?.cancel()
        }
        loop.scheduleTask(in: TimeAmount(configuration.timers.t1 * 64)) { [self] in
            for key in keys where dialogs[key].map({ calls[$0.call] == nil }) ?? false { dialogs[key] = nil }
        }
    }

    // MARK: - UAC legs

    /// Built on first use, once the socket is bound; every dialog then shares its storage.
    private lazy var localContact = NameAddress(uri: SIPAnyURI("sip:switchboard@\(client.localHost):\(client.localPort)")!)

    private func invite(_ call: Call, leg index: Int, uri: String, sdp: [UInt8]?, callerId: CallerID?, headers: [String: String], attempt: Int) {
        guard let target = SIPAnyURI(uri) else {
            drive(call, .failed(leg: index, status: 416, reason: "Unsupported URI Scheme"))
            return
        }
        let sipCallId = "\(call.id)-\(index)@\(client.localHost)"
        let tag = SIPEdge.makeTag()
        let from = fromAddress(call, callerId: callerId)
        var request = SIPRequest(method: .invite, uri: target)
        request.headers.add("Via", client.makeVia().description)
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", NameAddress(displayName: from.displayName, uri: from.uri, parameters: [SIPParameter("tag", tag)]).description)
        request.headers.add("To", NameAddress(uri: target).description)
        request.headers.add("Call-ID", sipCallId)
        request.headers.add("CSeq", "1 INVITE")
        request.headers.add("Contact", localContact.description)
        request.headers.add("Allow", SIPEdge.allowed.map(\.rawValue).joined(separator: ", "))
        request.headers.add("X-Switchboard-Call-Id", call.id)
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { request.headers.add(name, value) }
        if let sdp {
            request.headers.add("Content-Type", "application/sdp")
            request.body = sdp
        }
        guard let destination = outboundDestination(for: target) else {
            logger.error("no route for leg", metadata: ["call.id": "\(call.id)", "sip.ruri": "\(uri)"])
            drive(call, .failed(leg: index, status: 503, reason: "No Route"))
            return
        }
        call.sip[index] = LegSIP(sipCallId: sipCallId, localTag: tag, invite: request, destination: destination)
        dialogs[DialogKey(callID: sipCallId, localTag: tag)] = (call.id, index)
        if let role = call.flow.legs[index]?.role {
            bus.publish(callId: call.id, .callDialing(Dialing(leg: role, uri: uri, sipCallId: sipCallId, attempt: attempt)))
        }
        client.send(request, to: destination) { [self] outcome in inviteOutcome(call, leg: index, outcome) }
    }

    /// Caller id for a leg: the one asked for, else (inbound) the caller's own From, else the bridge.
    private func fromAddress(_ call: Call, callerId: CallerID?) -> NameAddress {
        let original = call.sip[0]?.dialog?.remoteURI
        let uri = callerId?.uri.flatMap(SIPAnyURI.init) ?? original?.uri ?? SIPAnyURI("sip:switchboard@\(client.localHost)")!
        return NameAddress(displayName: callerId?.displayName ?? (callerId?.uri == nil ? original?.displayName : nil), uri: uri)
    }

    private func inviteOutcome(_ call: Call, leg index: Int, _ outcome: SIPClient.Outcome) {
        switch outcome {
        case .timeout:
            drive(call, .failed(leg: index, status: 408, reason: "Request Timeout"))
        case .transportError:
            drive(call, .failed(leg: index, status: 503, reason: "Transport Error"))
        case .response(let response):
            guard let leg = call.sip[index] else { return }
            if response.isProvisional {
                leg.gotProvisional = true
                if leg.cancelWanted { sendCancel(call, leg: index) }
                drive(call, .provisional(leg: index, status: response.status, sdp: response.body.isEmpty ? nil : response.body))
            } else if response.isSuccess {
                if let dialog = leg.dialog {
                    repeated2xx(response, leg: leg, dialog: dialog, call: call)
                    return
                }
                guard let invite = leg.invite, let dialog = Dialog(uac: invite, response: response) else {
                    logger.warning("2xx without To tag or Contact", metadata: ["call.id": "\(call.id)"])
                    return
                }
                leg.dialog = dialog
                // Answered: no CANCEL can follow, and another fork's 2xx is handled from the dialog.
                leg.setup = .answered(response)
                leg.destination = destination(in: dialog) ?? leg.destination
                drive(call, .answered(leg: index, sdp: response.body.isEmpty ? nil : response.body))
            } else {
                drive(call, .failed(leg: index, status: response.status, reason: response.reason))
            }
        }
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

    private func ack(_ call: Call, leg index: Int, sdp: [UInt8]?) {
        guard let leg = call.sip[index], case .answered(let answer)? = leg.setup else { return }
        leg.setup = nil
        leg.acked = true
        leg.ackBody = sdp ?? []
        sendACK(for: answer, leg: leg, body: leg.ackBody)
    }

    /// The ACK for a 2xx in the leg's dialog, each time with a new branch (RFC 3261 §13.2.2.4): for the
    /// initial INVITE's 2xx (or its retransmission) with the leg's ACK body, for a re-INVITE's without one.
    private func sendACK(for answer: SIPResponse, leg: LegSIP, body: [UInt8] = []) {
        guard let dialog = leg.dialog else { return }
        let ack = dialog.makeACK(for: answer, via: client.makeVia(), body: body, contentType: body.isEmpty ? nil : "application/sdp")
        client.sendStateless(ack, to: leg.destination)
    }

    private func cancel(_ call: Call, leg index: Int) {
        guard let leg = call.sip[index] else { return }
        if index == 0, call.flow.kind == .inbound { return }
        guard leg.gotProvisional else {
            // RFC 3261 §9.1: no CANCEL before a provisional response; it goes out when one comes.
            leg.cancelWanted = true
            return
        }
        sendCancel(call, leg: index)
    }

    private func sendCancel(_ call: Call, leg index: Int) {
        guard let leg = call.sip[index], let invite = leg.invite else { return }
        leg.cancelWanted = false
        client.cancel(invite, to: leg.destination)
    }

    private func bye(_ call: Call, leg index: Int) {
        guard let leg = call.sip[index] else { return }
        leg.unacknowledged?.timer?.cancel()
        leg.unacknowledged = nil
        guard var dialog = leg.dialog else { return }
        let request = dialog.makeRequest(.bye, via: client.makeVia())
        leg.dialog = dialog
        sendInDialog(request, leg: leg) { [logger] outcome in
            if case .response(let response) = outcome, !response.isSuccess, !response.isProvisional {
                logger.info("BYE refused", metadata: ["call.id": "\(call.id)", "sip.status": "\(response.status)"])
            }
        }
    }

    private func reinvite(_ call: Call, leg index: Int, sdp: [UInt8]?) {
        guard let leg = call.sip[index], var dialog = leg.dialog else { return }
        let request = dialog.makeRequest(.invite, via: client.makeVia(), body: sdp ?? [], contentType: sdp == nil ? nil : "application/sdp")
        leg.dialog = dialog
        leg.busy = true
        sendInDialog(request, leg: leg) { [self] outcome in
            call.sip[index]?.busy = false
            switch outcome {
            case .response(let response) where response.isProvisional:
                call.sip[index]?.busy = true
            case .response(let response) where response.isSuccess:
                if let leg = call.sip[index] { sendACK(for: response, leg: leg) }
                drive(call, .reinviteAnswered(leg: index, sdp: response.body.isEmpty ? nil : response.body))
            case .response(let response):
                drive(call, .reinviteFailed(leg: index, status: response.status))
            case .timeout, .transportError:
                drive(call, .lost(leg: index))
            }
        }
    }

    private func sendInDialog(_ request: SIPRequest, leg: LegSIP, handler: @escaping SIPClient.Handler) {
        let address = leg.dialog.flatMap { destination(in: $0) } ?? leg.destination
        client.send(request, to: address, handler: handler)
    }

    // MARK: - The UAS leg (inbound caller)

    private func answerCaller(_ call: Call, sdp: [UInt8]?) {
        guard let leg = call.sip[0], let key = leg.serverKey, let invite = edge.request(for: key) else { return }
        var response = SIPResponse(replyingTo: invite, status: 200, toTag: leg.localTag)
        decorate(&response, for: invite, sdp: sdp)
        edge.respond(key, response)
        awaitACK(call, leg: 0, response: response, key: key, sequence: invite.cseq?.sequence ?? 0)
    }

    /// RFC 3261 §13.3.1.4: the 2xx goes again at T1, 2·T1, ... up to T2 until the ACK; after 64·T1 the
    /// leg is given up (and the flow ends the call with BYE).
    private func scheduleRetransmit(_ call: Call, leg index: Int) {
        guard let leg = call.sip[index], let pending = leg.unacknowledged else { return }
        pending.timer = loop.scheduleTask(in: TimeAmount(pending.interval)) { [self] in
            guard let leg = call.sip[index], leg.unacknowledged === pending else { return }
            pending.waited += pending.interval
            if pending.waited >= configuration.timers.t1 * 64 {
                logger.notice("no ACK for 2xx: leg given up", metadata: ["call.id": "\(call.id)", "sip.call_id": "\(leg.sipCallId)"])
                leg.unacknowledged = nil
                drive(call, .lost(leg: index))
                return
            }
            edge.respond(pending.key, pending.response)
            pending.interval = min(pending.interval * 2, configuration.timers.t2)
            scheduleRetransmit(call, leg: index)
        }
    }

    private func awaitACK(_ call: Call, leg index: Int, response: SIPResponse, key: TransactionKey, sequence: UInt32) {
        guard let leg = call.sip[index] else { return }
        leg.unacknowledged?.timer?.cancel()
        leg.unacknowledged = Unacknowledged(response: response, key: key, sequence: sequence, interval: configuration.timers.t1)
        scheduleRetransmit(call, leg: index)
    }

    /// A UAS response in a dialog carries our Contact and the request's Record-Route (RFC 3261 §12.1.1).
    private func decorate(_ response: inout SIPResponse, for request: SIPRequest, sdp: [UInt8]?) {
        for route in request.headers.values("Record-Route") { response.headers.add("Record-Route", route) }
        response.headers.add("Contact", localContact.description)
        if let sdp {
            response.headers.add("Content-Type", "application/sdp")
            response.body = sdp
        }
    }

    // MARK: - Requests inside dialogs

    /// An in-dialog request (it has a To tag) from either side; false when no dialog of ours matches, so
    /// the edge answers 481.
    func inDialog(_ request: SIPRequest, key: TransactionKey) -> Bool {
        guard let callID = request.callID, let tag = request.to?.tag, let (callId, index) = dialogs[DialogKey(callID: callID, localTag: tag)] else {
            return false
        }
        guard let call = calls[callId], let leg = call.sip[index], var dialog = leg.dialog else {
            // The call just ended: a crossing BYE still gets its 200.
            if request.method == .bye { edge.respond(key, SIPResponse(replyingTo: request, status: 200)) }
            return request.method == .bye || request.method == .ack
        }
        if request.method == .ack {
            acknowledged(call, leg: index, ack: request)
            return true
        }
        if case .outOfOrder = dialog.receive(request) {
            edge.respond(key, SIPResponse(replyingTo: request, status: 500, reason: "Server Internal Error - CSeq Out Of Order"))
            return true
        }
        leg.dialog = dialog
        switch request.method {
        case .bye:
            edge.respond(key, SIPResponse(replyingTo: request, status: 200))
            drive(call, .bye(leg: index))
        case .invite, .update, .info:
            relay(request, key: key, from: index, in: call)
        case .options:
            edge.respond(key, SIPResponse(replyingTo: request, status: 200))
        default:
            var response = SIPResponse(replyingTo: request, status: 405)
            response.headers.add("Allow", SIPEdge.allowed.map(\.rawValue).joined(separator: ", "))
            edge.respond(key, response)
        }
        return true
    }

    private func acknowledged(_ call: Call, leg index: Int, ack: SIPRequest) {
        guard let pending = call.sip[index]?.unacknowledged, ack.cseq?.sequence == pending.sequence else { return }
        call.sip[index]?.unacknowledged = nil
        pending.timer?.cancel()
        if index == 0, call.flow.kind == .inbound {
            drive(call, .callerACK(sdp: ack.body.isEmpty ? nil : ack.body))
        }
    }

    /// Passes a phone's re-INVITE, UPDATE or INFO to the other party and its answer back (RFC 7092's
    /// signaling-only B2BUA): SDP unchanged, so media keeps flowing between the phones.
    private func relay(_ request: SIPRequest, key: TransactionKey, from index: Int, in call: Call) {
        guard call.flow.phase == .connected,
              let other = call.sip.first(where: { $0.key != index && call.flow.legs[$0.key]?.state == .answered })?.key,
              let otherLeg = call.sip[other], var otherDialog = otherLeg.dialog else {
            edge.respond(key, SIPResponse(replyingTo: request, status: request.method == .invite ? 491 : 500,
                                          reason: request.method == .invite ? "Request Pending" : "Call Not Connected"))
            return
        }
        if request.method == .invite, otherLeg.busy {
            // Glare (RFC 3261 §14.2): our own re-INVITE to the other side is in flight.
            edge.respond(key, SIPResponse(replyingTo: request, status: 491))
            return
        }
        let sdp = request.body.isEmpty ? nil : request.body
        let relayed = otherDialog.makeRequest(request.method, via: client.makeVia(), body: request.body, contentType: request.contentType)
        otherLeg.dialog = otherDialog
        if request.method == .invite { otherLeg.busy = true }
        if request.method == .invite { drive(call, .peerOffer(leg: index, sdp: sdp)) }
        let toTag = call.sip[index]?.localTag
        sendInDialog(relayed, leg: otherLeg) { [self] outcome in
            if request.method == .invite { call.sip[other]?.busy = false }
            var response: SIPResponse
            switch outcome {
            case .response(let answer) where answer.isProvisional:
                if request.method == .invite { call.sip[other]?.busy = true }
                return
            case .response(let answer):
                response = SIPResponse(replyingTo: request, status: answer.status, reason: answer.reason, toTag: toTag)
                if answer.isSuccess, request.method == .invite { sendACK(for: answer, leg: otherLeg) }
                if answer.isSuccess {
                    decorate(&response, for: request, sdp: nil)
                    if !answer.body.isEmpty {
                        response.headers.add("Content-Type", answer.contentType ?? "application/sdp")
                        response.body = answer.body
                    }
                }
            case .timeout:
                response = SIPResponse(replyingTo: request, status: 408, toTag: toTag)
            case .transportError:
                response = SIPResponse(replyingTo: request, status: 503, toTag: toTag)
            }
            edge.respond(key, response)
            if request.method == .invite, response.isSuccess {
                awaitACK(call, leg: index, response: response, key: key, sequence: request.cseq?.sequence ?? 0)
            }
        }
    }

    /// The caller CANCELled its INVITE (the edge already answered the CANCEL 200).
    func callerCancelled(callId: String) {
        guard let call = calls[callId] else { return }
        drive(call, .callerCancelled)
    }

    // MARK: - Shutdown and restart

    /// Ends every call with BYE/CANCEL (cause `shutdown`) and refuses new ones.
    func shutdown() {
        stopping = true
        endedByShutdown = calls.count
        for call in Array(calls.values) { drive(call, .shutdown) }
    }

    /// Ends the legs a previous run of this bridge left up: BYE in each dialog, `call.ended` with cause
    /// `bridge_restart`.
    func endLeftovers(_ records: [DialogStore.Record]) {
        for record in records {
            for leg in record.legs {
                var dialog = leg.dialog
                let request = dialog.makeRequest(.bye, via: client.makeVia())
                guard let address = destination(in: dialog) ?? outboundDestination(for: dialog.remoteTarget) else { continue }
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

    // MARK: - Addresses

    /// Where an in-dialog request goes: the first route (a loose router) or the remote target (RFC 3261 §12.2.1.1).
    private func destination(in dialog: Dialog) -> SocketAddress? {
        if let first = dialog.routeSet.first, let uri = first.uri.sipURI { return Self.address(of: uri) }
        return dialog.remoteTarget.sipURI.flatMap(Self.address(of:))
    }

    /// New calls go through the outbound proxy (Kamailio, which finds registered users), else straight to the target.
    private func outboundDestination(for target: SIPAnyURI) -> SocketAddress? {
        if let proxy = configuration.outboundProxy { return proxy }
        return target.sipURI.flatMap(Self.address(of:))
    }

    static func address(of uri: SIPURI) -> SocketAddress? {
        let host = uri.host.hasPrefix("[") ? String(uri.host.dropFirst().dropLast()) : uri.host
        return try? SocketAddress(ipAddress: host, port: Int(uri.port ?? 5060))
    }

    /// A dialog of ours by Call-ID and our tag: two strings shared with the leg's, where a joined key would
    /// be a new allocation per leg.
    struct DialogKey: Hashable {
        let callID: String
        let localTag: String
    }
}
