import BusSchema
import Logging
import Metrics
import NIOCore
import SIPCore

/// The bridge's SIP transaction user: owns every server transaction, answers what it can by itself
/// (OPTIONS, stray BYE/CANCEL, unsupported methods, malformed input), turns each new INVITE into
/// a decision request on the bus, and hands bridged calls and in-dialog requests to the B2BUA
/// (`CallManager`), whose client transactions run in `SIPClient`.
///
/// Everything here runs on one event loop, so the state needs no locks; the bus thread reaches it
/// only through `resolve`, which hops onto that loop. That confinement is why it can be handed to
/// channel initializers and the bus as Sendable; `receive` checks it.
final class SIPEdge: @unchecked Sendable {
    /// Methods this edge serves; anything else it recognises gets 405 with this list (RFC 3261 §8.2.1).
    static let allowed: [SIPMethod] = [.invite, .ack, .cancel, .options, .bye, .update, .info]

    private struct ReplyPath {
        var channel: Channel
        var remote: SocketAddress
        var transport: SIPTransportKind
    }

    /// A call waiting for, or answered with, a decision.
    private struct PendingCall {
        var callId: String
        var requestId: String
        var offeredAt: NIODeadline
        var deadline: Scheduled<Void>?
        var trying: Scheduled<Void>?
        /// Handed to the B2BUA: CANCEL goes there.
        var bridged = false
    }

    // The transaction tables hold classes: a dictionary stores its values inline in every slot, used or
    // not, and keeps its peak capacity, so large values there cost memory long after a burst of calls.

    private final class InviteEntry {
        var transaction: ServerInviteTransaction
        /// The INVITE, until the final response: only responses to it need it.
        var request: SIPRequest?
        let reply: ReplyPath
        let toTag: String
        var timers: [TransactionTimerID: Scheduled<Void>] = [:]
        var call: PendingCall?

        init(transaction: ServerInviteTransaction, request: SIPRequest, reply: ReplyPath, toTag: String) {
            self.transaction = transaction
            self.request = request
            self.reply = reply
            self.toTag = toTag
        }

        /// Cancels and lets go of the decision's timers: a cancelled task still holds its promise.
        func stopDecisionTimers() {
            call?.deadline?.cancel()
            call?.trying?.cancel()
            call?.deadline = nil
            call?.trying = nil
        }
    }

    private final class NonInviteEntry {
        var transaction: ServerNonInviteTransaction
        let reply: ReplyPath
        var timers: [TransactionTimerID: Scheduled<Void>] = [:]

        init(transaction: ServerNonInviteTransaction, reply: ReplyPath) {
            self.transaction = transaction
            self.reply = reply
        }
    }

    private let configuration: BridgeConfiguration
    private let loop: EventLoop
    private let bus: BusEndpoints
    private let logger: Logger
    private let parser: SIPParser
    private var invites: [TransactionKey: InviteEntry] = [:]
    private var nonInvites: [TransactionKey: NonInviteEntry] = [:]
    private lazy var linger = LingerTimers<TransactionKey, TransactionTimerID>(loop: loop) { [unowned self] key, timer, owner in
        if let entry = invites[key], entry === owner {
            perform(key, entry.transaction.timerFired(timer))
        } else if let entry = nonInvites[key], entry === owner {
            performNonInvite(key, entry.transaction.timerFired(timer))
        }
    }
    /// Decision request id → the INVITE transaction waiting for it.
    private var waiting: [String: TransactionKey] = [:]
    private var nextCall: UInt64 = 0
    /// Set by `drain()`: new INVITEs are answered with the fallback rather than offered to workers.
    private var stopping = false
    private let callPrefix: String
    let client: SIPClient
    /// The B2BUA; set at the end of `init` because it talks back to the edge.
    private(set) var calls: CallManager!

    private let received = Counter(label: "switchboard_sip_messages_received_total")
    private let malformed = Counter(label: "switchboard_sip_malformed_total")
    private let dropped = Counter(label: "switchboard_sip_dropped_total")
    private let offered = Counter(label: "switchboard_calls_offered_total")
    private let fallbacks = Counter(label: "switchboard_decision_fallbacks_total")
    private let decisionLatency = Timer(label: "switchboard_decision_latency_seconds")

    init(configuration: BridgeConfiguration, loop: EventLoop, bus: BusEndpoints, store: DialogStore?, logger: Logger) {
        self.configuration = configuration
        self.loop = loop
        self.bus = bus
        self.logger = logger
        self.parser = SIPParser(limits: configuration.parserLimits)
        // Call ids stay unique across restarts of the same bridge id: the prefix carries the start time.
        let started = UInt64(NIODeadline.now().uptimeNanoseconds / 1_000_000) ^ UInt64.random(in: 0...UInt64(UInt32.max))
        self.callPrefix = "\(configuration.bridgeId)-\(String(started, radix: 36))"
        client = SIPClient(loop: loop, timers: configuration.timers, logger: logger)
        calls = CallManager(configuration: configuration, loop: loop, bus: bus, client: client, edge: self, store: store,
                            callPrefix: callPrefix, logger: logger)
    }

    /// Calls in progress (for shutdown and tests).
    var openCalls: Int { waiting.count }

    // MARK: - Inbound

    func receive(_ packet: InboundPacket) {
        loop.preconditionInEventLoop()
        received.increment()
        let message: SIPMessage
        do {
            message = try parser.parse(packet.bytes)
        } catch {
            rejectMalformed(error, packet: packet)
            return
        }
        switch message {
        case .request(let request):
            handle(request, packet: packet)
        case .response(let response):
            guard !client.receive(response) else { return }
            // No transaction of ours: stray (RFC 3261 §18.1.2: discard).
            dropped.increment()
            logger.debug("dropped stray response", metadata: ["sip.status": "\(response.status)", "sip.call_id": "\(response.callID ?? "-")", "sip.cseq": "\(response.cseq.map { "\($0)" } ?? "-")"])
        }
    }

    /// A TCP stream that could not be framed: answer 400 if the broken message names enough to reply.
    func framingFailed(_ error: SIPParseError, remote: SocketAddress, channel: Channel) {
        rejectMalformed(error, packet: InboundPacket(bytes: [], remote: remote, transport: .tcp, channel: channel))
    }

    func transportError(_ error: Error, transport: SIPTransportKind) {
        logger.warning("transport error", metadata: ["sip.transport": "\(transport.rawValue)", "sip.error": "\(error)"])
    }

    private func rejectMalformed(_ error: SIPParseError, packet: InboundPacket) {
        malformed.increment()
        let response = error.errorResponse()
        logger.notice("malformed SIP message", metadata: [
            "sip.error": "\(error.reason)", "sip.remote": "\(packet.remote)",
            "sip.transport": "\(packet.transport.rawValue)", "sip.answer": "\(response.map { "\($0.status)" } ?? "dropped")",
        ])
        guard let response else { return }
        send(response, via: ReplyPath(channel: packet.channel, remote: packet.remote, transport: packet.transport))
    }

    private func handle(_ original: SIPRequest, packet: InboundPacket) {
        guard let key = TransactionKey.forServer(original) else {
            malformed.increment()
            logger.notice("request without a usable Via/Call-ID/CSeq dropped", metadata: ["sip.remote": "\(packet.remote)"])
            return
        }
        let request = stampingReceived(original, from: packet.remote)
        let reply = ReplyPath(channel: packet.channel, remote: packet.remote, transport: packet.transport)

        if request.method == .ack {
            guard invites[key] != nil else {
                // The ACK for a 2xx is its own transaction and belongs to the dialog (RFC 3261 §13.2.2.4);
                // any other is for a transaction that ended: nothing to do (§17.2.3).
                if request.to?.tag == nil || !calls.inDialog(request, key: key) { dropped.increment() }
                return
            }
            perform(key, invites[key]!.transaction.receivedACK())
            return
        }
        if invites[key] != nil {
            perform(key, invites[key]!.transaction.receivedRetransmission())
            return
        }
        if nonInvites[key] != nil {
            performNonInvite(key, nonInvites[key]!.transaction.receivedRetransmission())
            return
        }
        if request.method == .invite {
            startInvite(request, key: key, reply: reply, packet: packet)
        } else {
            answerNonInvite(request, key: key, reply: reply)
        }
    }

    /// RFC 3261 §18.2.1 and RFC 3581: record where the request really came from in the top Via, so every
    /// response (which copies the Via) goes back there.
    private func stampingReceived(_ request: SIPRequest, from remote: SocketAddress) -> SIPRequest {
        guard var via = request.topVia, let ip = remote.ipAddress else { return request }
        var changed = false
        if via.host != ip {
            via.parameters.set("received", ip)
            changed = true
        }
        if via.rport == .requested, let port = remote.port {
            via.parameters.set("rport", "\(port)")
            changed = true
        }
        guard changed, let first = request.headers.firstIndex(where: { ["via", "v"].contains($0.name.lowercased()) }) else { return request }
        var stamped = request
        var lines = Array(request.headers)
        // The first Via line may hold several comma-separated values; only the first is the top Via.
        let rest = splitFirstVia(lines[first].value).rest
        lines[first].value = rest.map { "\(via), \($0)" } ?? via.description
        stamped.headers = SIPHeaders(lines)
        return stamped
    }

    private func splitFirstVia(_ value: String) -> (first: String, rest: String?) {
        var inQuotes = false
        for index in value.indices {
            let character = value[index]
            if character == "\"" { inQuotes.toggle() }
            if character == ",", !inQuotes {
                return (String(value[..<index]), value[value.index(after: index)...].trimmingCharacters(in: .whitespaces))
            }
        }
        return (value, nil)
    }

    // MARK: - Non-INVITE requests (RFC 3261 §17.2.2)

    private func answerNonInvite(_ request: SIPRequest, key: TransactionKey, reply: ReplyPath) {
        nonInvites[key] = NonInviteEntry(transaction: ServerNonInviteTransaction(reliable: reply.transport == .tcp,
                                                                                 timers: configuration.timers),
                                         reply: reply)
        if request.method != .cancel, request.to?.tag != nil, validateForEndpoint(request, supportedExtensions: [], supportedContentTypes: ["application/sdp"]) == nil,
           calls.inDialog(request, key: key) {
            return
        }
        let response = nonInviteAnswer(request)
        performNonInvite(key, nonInvites[key]!.transaction.sendFinal(response))
        // RFC 3261 §9.2: the CANCEL is answered first, then the INVITE it cancels gets 487.
        if request.method == .cancel, response.status == 200, let target = TransactionKey.forCancelledInvite(request) {
            cancelInvite(target)
        }
    }

    private func nonInviteAnswer(_ request: SIPRequest) -> SIPResponse {
        let tag = Self.makeTag()
        if let problem = validateForEndpoint(request, supportedExtensions: [], supportedContentTypes: ["application/sdp"]) {
            return errorResponse(problem, to: request, toTag: tag)
        }
        switch request.method {
        case .options:
            // Kamailio's dispatcher probes with OPTIONS: 200 means "this bridge takes calls".
            var response = SIPResponse(replyingTo: request, status: 200, toTag: tag)
            response.headers.add("Allow", Self.allowed.map(\.rawValue).joined(separator: ", "))
            response.headers.add("Accept", "application/sdp")
            return response
        case .cancel:
            if let target = TransactionKey.forCancelledInvite(request), invites[target] != nil {
                return SIPResponse(replyingTo: request, status: 200, toTag: tag)
            }
            return SIPResponse(replyingTo: request, status: 481, toTag: tag)
        case .bye, .info, .update:
            // Dialogs of ours took theirs already: this one names no dialog the bridge has.
            return SIPResponse(replyingTo: request, status: 481, toTag: tag)
        case .register, .subscribe, .notify, .message, .publish, .refer, .prack:
            var response = SIPResponse(replyingTo: request, status: 405, toTag: tag)
            response.headers.add("Allow", Self.allowed.map(\.rawValue).joined(separator: ", "))
            return response
        default:
            return SIPResponse(replyingTo: request, status: 501, toTag: tag)
        }
    }

    private func performNonInvite(_ key: TransactionKey, _ actions: [TransactionAction]) {
        for action in actions {
            guard let entry = nonInvites[key] else { return }
            switch action {
            case .send(let response):
                send(response, via: entry.reply)
            case .startTimer(let timer, let delay) where timer.lingers:
                linger.start(timer, for: key, owner: entry, after: delay)
            case .startTimer(let timer, let delay):
                nonInvites[key]?.timers[timer]?.cancel()
                nonInvites[key]?.timers[timer] = loop.scheduleTask(in: TimeAmount(delay)) { [self] in
                    performNonInvite(key, nonInvites[key]?.transaction.timerFired(timer) ?? [])
                }
            case .cancelTimer(let timer):
                nonInvites[key]?.timers.removeValue(forKey: timer)?.cancel()
            case .terminated:
                entry.timers.values.forEach { $0.cancel() }
                nonInvites[key] = nil
            }
        }
    }

    // MARK: - INVITE (RFC 3261 §17.2.1)

    private func startInvite(_ request: SIPRequest, key: TransactionKey, reply: ReplyPath, packet: InboundPacket) {
        let toTag = Self.makeTag()
        invites[key] = InviteEntry(transaction: ServerInviteTransaction(reliable: reply.transport == .tcp, timers: configuration.timers),
                                   request: request, reply: reply, toTag: toTag)
        if let problem = validateForEndpoint(request, supportedExtensions: [], supportedContentTypes: ["application/sdp"]) {
            perform(key, invites[key]!.transaction.sendFinal(errorResponse(problem, to: request, toTag: toTag)))
            return
        }
        if request.to?.tag != nil {
            // A re-INVITE: the B2BUA relays it in the dialog it names, if that dialog is one of ours.
            if !calls.inDialog(request, key: key) {
                perform(key, invites[key]!.transaction.sendFinal(SIPResponse(replyingTo: request, status: 481, toTag: nil)))
            }
            return
        }
        nextCall += 1
        let callId = "\(callPrefix)-\(nextCall)"
        let requestId = callId
        let offer = OfferNormalizer.offer(for: request, from: packet)
        offered.increment()
        logger.debug("call offered", metadata: ["call.id": "\(callId)", "sip.call_id": "\(offer.sipCallId)", "sip.ruri": "\(offer.requestUri.uri)"])

        var call = PendingCall(callId: callId, requestId: requestId, offeredAt: .now())
        call.trying = loop.scheduleTask(in: TimeAmount(configuration.tryingDelay)) { [self] in
            guard let entry = invites[key], let request = entry.request else { return }
            perform(key, entry.transaction.sendProvisional(SIPResponse(replyingTo: request, status: 100)))
        }
        call.deadline = loop.scheduleTask(in: TimeAmount(configuration.decisionTimeout)) { [self] in
            decide(requestId: requestId, outcome: .fallback(cause: .timeout))
        }
        invites[key]!.call = call
        waiting[requestId] = key
        guard !stopping else {
            bus.publish(callId: callId, .callOffered(offer))
            decide(requestId: requestId, outcome: .fallback(cause: .shutdown))
            return
        }
        bus.offer(requestId: requestId, callId: callId, offer: offer, deadline: .now + configuration.decisionTimeout)
    }

    private enum Outcome {
        case decided(Decision, workerId: String)
        case fallback(cause: DecisionCause)
    }

    /// Called from the bus thread with a batch of resolutions; hops onto the SIP loop once for all.
    func resolve(_ batch: [(requestId: String, resolution: BusEndpoints.Resolution)]) {
        loop.execute { [self] in
            for (requestId, resolution) in batch {
                switch resolution {
                case .decided(let decision, let workerId): decide(requestId: requestId, outcome: .decided(decision, workerId: workerId))
                case .fallback(let cause): decide(requestId: requestId, outcome: .fallback(cause: cause))
                }
            }
        }
    }

    /// Answers a waiting INVITE with a worker's decision or the fallback. The first answer wins; a later
    /// one (a decision racing the deadline) finds nothing waiting and is ignored.
    private func decide(requestId: String, outcome: Outcome) {
        guard let key = waiting.removeValue(forKey: requestId), let entry = invites[key], let call = entry.call,
              let request = entry.request else { return }
        entry.stopDecisionTimers()
        let elapsed = NIODeadline.now() - call.offeredAt
        decisionLatency.recordNanoseconds(elapsed.nanoseconds)
        let decisionMs = Double(elapsed.nanoseconds) / 1_000_000

        let decision: Decision
        let workerId: String?
        let cause: DecisionCause?
        switch outcome {
        case .decided(let workerDecision, let id):
            (decision, workerId, cause) = (workerDecision, id, nil)
        case .fallback(let why):
            fallbacks.increment()
            (decision, workerId, cause) = (configuration.fallback.decision, nil, why)
            logger.notice("fallback answered call", metadata: ["call.id": "\(call.callId)", "decision.cause": "\(why)", "decision.fallback": "\(configuration.fallback)"])
        }
        let response = Self.response(for: decision, to: request, toTag: entry.toTag)
        switch decision {
        case .redirect(let targets):
            bus.publish(callId: call.callId, .callRouted(Routed(targets: targets, workerId: workerId, fallback: cause != nil,
                                                               cause: cause, decisionMs: decisionMs)))
        case .reject:
            bus.publish(callId: call.callId, .callRejected(Rejected(status: response.status, reason: response.reason, workerId: workerId,
                                                                     fallback: cause != nil, cause: cause, decisionMs: decisionMs)))
        case .bridge(let route):
            if let problem = calls.ringTimeoutProblem(route.targets.compactMap(\.ringTimeoutMs).max()) {
                logger.warning("bridge decision refused", metadata: ["call.id": "\(call.callId)", "decision.problem": "\(problem)"])
            } else if calls.admits() {
                bus.publish(callId: call.callId, .callRouted(Routed(action: .bridge, targets: route.targets.map { Target(uri: $0.uri) },
                                                                   workerId: workerId, fallback: cause != nil, cause: cause,
                                                                   decisionMs: decisionMs)))
                // Legs B take seconds to answer: the caller hears 100 Trying now, not after the decision delay.
                if entry.transaction.state == .proceeding, entry.transaction.lastResponse == nil {
                    perform(key, entry.transaction.sendProvisional(SIPResponse(replyingTo: request, status: 100)))
                }
                entry.call?.bridged = true
                calls.startInbound(callId: call.callId, invite: request, serverKey: key, toTag: entry.toTag, route: route)
                return
            }
            bus.publish(callId: call.callId, .callRejected(Rejected(status: response.status, reason: response.reason, workerId: workerId,
                                                                     fallback: cause != nil, cause: .limit, decisionMs: decisionMs)))
        }
        perform(key, entry.transaction.sendFinal(response))
    }

    /// The request of a server transaction still open (the B2BUA answers it later).
    func request(for key: TransactionKey) -> SIPRequest? {
        invites[key]?.request
    }

    /// The B2BUA's answer to a request it took: through the request's server transaction.
    func respond(_ key: TransactionKey, _ response: SIPResponse) {
        if let entry = invites[key] {
            perform(key, response.isProvisional ? entry.transaction.sendProvisional(response) : entry.transaction.sendFinal(response))
        } else if let entry = nonInvites[key], !response.isProvisional {
            performNonInvite(key, entry.transaction.sendFinal(response))
        }
    }

    /// RFC 3261 §9.2: a CANCEL for a pending INVITE ends it with 487.
    private func cancelInvite(_ key: TransactionKey) {
        guard let entry = invites[key], entry.transaction.state == .proceeding, let request = entry.request else { return }
        if let call = entry.call, call.bridged {
            calls.callerCancelled(callId: call.callId)
            return
        }
        if let call = entry.call, waiting.removeValue(forKey: call.requestId) != nil {
            entry.stopDecisionTimers()
            let decisionMs = Double((NIODeadline.now() - call.offeredAt).nanoseconds) / 1_000_000
            bus.publish(callId: call.callId, .callRejected(Rejected(status: 487, reason: "Request Terminated", workerId: nil,
                                                                     fallback: false, cause: .callerCancelled, decisionMs: decisionMs)))
        }
        perform(key, entry.transaction.sendFinal(SIPResponse(replyingTo: request, status: 487, toTag: entry.toTag)))
    }

    private func perform(_ key: TransactionKey, _ actions: [TransactionAction]) {
        if let entry = invites[key], entry.transaction.state != .proceeding { entry.request = nil }
        for action in actions {
            guard let entry = invites[key] else { return }
            switch action {
            case .send(let response):
                send(response, via: entry.reply)
            case .startTimer(let timer, let delay) where timer.lingers:
                linger.start(timer, for: key, owner: entry, after: delay)
            case .startTimer(let timer, let delay):
                invites[key]?.timers[timer]?.cancel()
                invites[key]?.timers[timer] = loop.scheduleTask(in: TimeAmount(delay)) { [self] in
                    perform(key, invites[key]?.transaction.timerFired(timer) ?? [])
                }
            case .cancelTimer(let timer):
                invites[key]?.timers.removeValue(forKey: timer)?.cancel()
            case .terminated(let reason):
                if reason == .timeout {
                    logger.notice("no ACK for final response (timer H)", metadata: ["sip.transaction": "\(key)"])
                }
                entry.timers.values.forEach { $0.cancel() }
                if let call = entry.call {
                    call.deadline?.cancel()
                    call.trying?.cancel()
                    waiting[call.requestId] = nil
                }
                invites[key] = nil
            }
        }
    }

    /// Answers every INVITE still waiting with the fallback, so a stopping bridge leaves no caller
    /// hanging; INVITEs that arrive from now on get the fallback at once.
    func drain() {
        stopping = true
        calls.shutdown()
        for requestId in Array(waiting.keys) {
            decide(requestId: requestId, outcome: .fallback(cause: .shutdown))
        }
    }

    // MARK: - Responses

    static func response(for decision: Decision, to request: SIPRequest, toTag: String) -> SIPResponse {
        switch decision {
        case .redirect(let targets):
            var response = SIPResponse(replyingTo: request, status: 302, toTag: toTag)
            let contacts = targets.map { target in
                target.q.map { "<\(target.uri)>;q=\(formatQ($0))" } ?? "<\(target.uri)>"
            }
            response.headers.add("Contact", contacts.joined(separator: ", "))
            return response
        case .reject(let status, let reason, let headers):
            var response = SIPResponse(replyingTo: request, status: status, reason: reason, toTag: toTag)
            for (name, value) in headers.sorted(by: { $0.key < $1.key }) { response.headers.add(name, value) }
            return response
        case .bridge:
            // Only when the bridge cannot take the call (its call limit, a ring timeout beyond its maximum).
            var response = SIPResponse(replyingTo: request, status: 503, toTag: toTag)
            response.headers.add("Retry-After", "5")
            return response
        }
    }

    /// q-values have at most three decimals (RFC 3261 §20.10).
    static func formatQ(_ q: Double) -> String {
        let thousandths = Int((min(max(q, 0), 1) * 1000).rounded())
        if thousandths == 1000 { return "1.0" }
        var digits = String(thousandths)
        while digits.count < 3 { digits = "0" + digits }
        while digits.count > 1, digits.hasSuffix("0") { digits.removeLast() }
        return "0.\(digits)"
    }

    private func errorResponse(_ problem: SIPStatusError, to request: SIPRequest, toTag: String) -> SIPResponse {
        var response = SIPResponse(replyingTo: request, status: problem.status, reason: problem.reason, toTag: toTag)
        for header in problem.headers { response.headers.add(header.name, header.value) }
        return response
    }

    private func send(_ response: SIPResponse, via path: ReplyPath) {
        var buffer = path.channel.allocator.buffer(capacity: 512)
        buffer.writeBytes(response.serialized())
        switch path.transport {
        case .tcp:
            path.channel.writeAndFlush(buffer, promise: nil)
        case .udp:
            let destination = Self.udpDestination(for: response, source: path.remote)
            path.channel.writeAndFlush(AddressedEnvelope(remoteAddress: destination, data: buffer), promise: nil)
        }
    }

    /// RFC 3261 §18.2.2 with RFC 3581: to the source port when rport was asked for, else to the received
    /// address at the Via's sent-by port.
    static func udpDestination(for response: SIPResponse, source: SocketAddress) -> SocketAddress {
        guard let via = response.topVia else { return source }
        if case .port = via.rport { return source }
        guard let ip = source.ipAddress, let address = try? SocketAddress(ipAddress: ip, port: Int(via.port ?? 5060)) else { return source }
        return address
    }

    static func makeTag() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
