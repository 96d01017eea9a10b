#if canImport(Glibc)
import Glibc
#endif
import Logging
import Metrics
import NIOCore
import SIPCore

/// `SO_MEMINFO`'s answer (linux/sock_diag.h): receive queue bytes, receive buffer, ..., drops at index 8.
private struct SocketMemoryInfo: Sendable {
    var values: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0, 0, 0, 0, 0, 0)
}

/// The bridge's SIP front door and the transaction user for what needs no call: parses what arrives,
/// gives responses to the client transactions, retransmissions and ACKs to the server transactions,
/// answers what it can by itself (OPTIONS, stray BYE/CANCEL, unsupported methods, malformed input),
/// hands each new INVITE to the decision gate and every in-dialog request to the B2BUA.
///
/// Loop-bound: it runs on the SIP event loop only (`receive` checks it); the listeners reach it through
/// a `NIOLoopBound`.
final class SIPEdge {
    /// Methods this edge serves; anything else it recognises gets 405 with this list (RFC 3261 §8.2.1).
    static let allowed: [SIPMethod] = [.invite, .ack, .cancel, .options, .bye, .update, .info, .prack, .refer]
    /// The option tags a request may Require of the bridge: reliable provisionals (RFC 3262) and session timers
    /// (RFC 4028).
    static let extensions: Set<String> = ["100rel", "timer"]

    private let loop: EventLoop
    private let logger: Logger
    private let parser: SIPParser
    private let transactions: ServerTransactions
    private let client: SIPClient
    private let gate: DecisionGate
    private let b2bua: B2BUA
    private let registrations: RegistrationRelay
    private let trusted: TrustedSources
    private let sessionTimer: SessionTimer.Configuration
    private let overload: OverloadControl

    private let received = Counter(label: "switchboard_sip_messages_received_total")
    private let malformed = Counter(label: "switchboard_sip_malformed_total")
    private let dropped = Counter(label: "switchboard_sip_dropped_total")
    private let untrustedCounter = Counter(label: "switchboard_sip_untrusted_total")
    /// Messages from untrusted sources so far; logged at the first and then at each power of two, so a
    /// flood shows in the log without filling it.
    private var untrusted = 0

    init(configuration: BridgeConfiguration, loop: EventLoop, transactions: ServerTransactions, client: SIPClient,
         gate: DecisionGate, b2bua: B2BUA, registrations: RegistrationRelay, overload: OverloadControl, logger: Logger) {
        self.loop = loop
        self.logger = logger
        self.parser = SIPParser(limits: configuration.parserLimits)
        self.transactions = transactions
        self.client = client
        self.gate = gate
        self.b2bua = b2bua
        self.registrations = registrations
        trusted = configuration.resolvedTrustedSources
        sessionTimer = configuration.sessionTimer
        self.overload = overload
    }

    // MARK: - Inbound

    func receive(_ packet: InboundPacket) {
        loop.preconditionInEventLoop()
        let start = NIODeadline.now()
        defer { overload.busy(since: start) }
        received.increment()
        guard trusted.admits(packet.remote) else {
            refuseUntrusted(packet)
            return
        }
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

    /// Lets the overload control read the UDP socket's receive queue (`SO_MEMINFO`, Linux): datagrams waiting
    /// there are work the loop has not even seen.
    func watchReceiveQueue(of channel: Channel) {
        #if os(Linux)
        guard let socket = channel as? SocketOptionProvider else { return }
        overload.probeReceiveQueue = { [overload] in
            socket.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_MEMINFO))
                .assumeIsolated().whenSuccess { (info: SocketMemoryInfo) in
                    overload.received(OverloadControl.ReceiveQueue(queued: Int(info.values.0), buffer: Int(info.values.1),
                                                                   drops: info.values.8))
                }
        }
        #endif
    }

    /// A TCP stream that could not be framed: answer 400 if the broken message names enough to reply.
    func framingFailed(_ error: SIPParseError, remote: SocketAddress, channel: Channel) {
        rejectMalformed(error, packet: InboundPacket(bytes: [], remote: remote, transport: .tcp, connection: channel))
    }

    /// Counts and logs SIP from a source outside `sip_trusted_sources` (a TCP peer is refused at connect).
    func noteUntrusted(_ remote: SocketAddress, transport: SIPTransportKind, answer: String) {
        untrustedCounter.increment()
        untrusted += 1
        guard untrusted & (untrusted - 1) == 0 else { return }
        logger.warning("SIP from an untrusted source refused", metadata: [
            "sip.remote": "\(remote)", "sip.transport": "\(transport.rawValue)", "sip.answer": "\(answer)",
            "sip.untrusted_total": "\(untrusted)", "sip.trusted_sources": "\(trusted)",
        ])
    }

    /// RFC 3261 §8.2: 403 to a request from a source that is not one of our proxies, nothing to a
    /// response or an ACK (neither takes an answer), and no state kept either way.
    private func refuseUntrusted(_ packet: InboundPacket) {
        guard case .request(let original) = try? parser.parse(packet.bytes), original.method != .ack else {
            noteUntrusted(packet.remote, transport: packet.transport, answer: "dropped")
            return
        }
        noteUntrusted(packet.remote, transport: packet.transport, answer: "403")
        let request = ServerTransactions.stampingReceived(original, from: packet.remote)
        let response = SIPResponse(replyingTo: request, status: 403, reason: "Forbidden (untrusted source)", toTag: Self.makeTag())
        transactions.sendStateless(response, via: ReplyPath(remote: packet.remote, connection: packet.connection))
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
        transactions.sendStateless(response, via: ReplyPath(remote: packet.remote, connection: packet.connection))
    }

    private func handle(_ original: SIPRequest, packet: InboundPacket) {
        guard let key = TransactionKey.forServer(original) else {
            malformed.increment()
            logger.notice("request without a usable Via/Call-ID/CSeq dropped", metadata: ["sip.remote": "\(packet.remote)"])
            return
        }
        let request = ServerTransactions.stampingReceived(original, from: packet.remote)
        let reply = ReplyPath(remote: packet.remote, connection: packet.connection)

        if request.method == .ack {
            // An ACK no INVITE transaction takes is for a 2xx, its own transaction that belongs to the dialog
            // (RFC 3261 §13.2.2.4), for a transaction that ended, or for a shed call's 503: nothing to do (§17.2.3).
            let tag = request.to?.tag
            if !transactions.receivedACK(key), tag?.hasPrefix(Self.shedTagPrefix) != true,
               tag == nil || !b2bua.inDialog(request, key: key) { dropped.increment() }
            return
        }
        if transactions.receivedRetransmission(key) { return }
        if request.method == .invite, request.to?.tag == nil, !overload.admitsNewCall() {
            shed(request, reply: reply)
            return
        }
        if request.method == .invite {
            startInvite(request, key: key, reply: reply, packet: packet)
        } else {
            answerNonInvite(request, key: key, reply: reply)
        }
    }

    // MARK: - Non-INVITE requests (RFC 3261 §17.2.2)

    private func answerNonInvite(_ request: SIPRequest, key: TransactionKey, reply: ReplyPath) {
        transactions.openNonInvite(key: key, reply: reply)
        if RegistrationRelay.isNotice(request) {
            transactions.respond(key, registrations.answer(request, toTag: Self.makeTag()))
            return
        }
        if request.method != .cancel, request.to?.tag != nil,
           validateForEndpoint(request, supportedExtensions: Self.extensions, supportedContentTypes: Self.contentTypes(for: request)) == nil,
           b2bua.inDialog(request, key: key) {
            return
        }
        let response = nonInviteAnswer(request)
        transactions.respond(key, response)
        // RFC 3261 §9.2: the CANCEL is answered first, then the INVITE it cancels gets 487.
        if request.method == .cancel, response.status == 200, let target = TransactionKey.forCancelledInvite(request) {
            gate.cancel(target)
        }
    }

    private func nonInviteAnswer(_ request: SIPRequest) -> SIPResponse {
        let tag = Self.makeTag()
        if let problem = validateForEndpoint(request, supportedExtensions: Self.extensions, supportedContentTypes: Self.contentTypes(for: request)) {
            return errorResponse(problem, to: request, toTag: tag)
        }
        switch request.method {
        case .options:
            // Kamailio's dispatcher probes with OPTIONS: 200 means "this bridge takes calls".
            var response = SIPResponse(replyingTo: request, status: 200, toTag: tag)
            response.headers.add("Allow", Self.allowed.map(\.rawValue).joined(separator: ", "))
            response.headers.add("Accept", Self.accepted)
            return response
        case .cancel:
            if let target = TransactionKey.forCancelledInvite(request), transactions.hasInvite(target) {
                // RFC 3261 §9.2: the 200 to the CANCEL and the INVITE's answers carry the same To tag.
                return SIPResponse(replyingTo: request, status: 200, toTag: transactions.toTag(for: target) ?? tag)
            }
            return SIPResponse(replyingTo: request, status: 481, toTag: tag)
        case .bye, .info, .update, .prack:
            // Dialogs of ours took theirs already: this one names no dialog the bridge has (for PRACK, RFC 3262 §3).
            return SIPResponse(replyingTo: request, status: 481, toTag: tag)
        case .refer:
            // The bridge transfers its own calls only (RFC 3515 §2.4.7 lets a REFER outside a dialog be refused).
            return SIPResponse(replyingTo: request, status: request.to?.tag == nil ? 403 : 481, toTag: tag)
        case .register, .subscribe, .notify, .message, .publish:
            var response = SIPResponse(replyingTo: request, status: 405, toTag: tag)
            response.headers.add("Allow", Self.allowed.map(\.rawValue).joined(separator: ", "))
            return response
        default:
            return SIPResponse(replyingTo: request, status: 501, toTag: tag)
        }
    }

    // MARK: - INVITE (RFC 3261 §17.2.1)

    private func startInvite(_ request: SIPRequest, key: TransactionKey, reply: ReplyPath, packet: InboundPacket) {
        let toTag = transactions.openInvite(request, key: key, reply: reply)
        if let problem = validateForEndpoint(request, supportedExtensions: Self.extensions, supportedContentTypes: Self.contentTypes(for: request)) {
            transactions.respond(key, errorResponse(problem, to: request, toTag: toTag))
            return
        }
        if request.to?.tag != nil {
            // A re-INVITE: the B2BUA relays it in the dialog it names, if that dialog is one of ours.
            if !b2bua.inDialog(request, key: key) {
                transactions.respond(key, SIPResponse(replyingTo: request, status: 481, toTag: nil))
            }
            return
        }
        if let problem = Self.sessionBodyProblem(request) {
            transactions.respond(key, errorResponse(problem, to: request, toTag: toTag))
            return
        }
        // RFC 4028 §9: too small a session interval is a 422 with our Min-SE, before a worker is asked or B dialled.
        var timer = SessionTimer(role: .uas, configuration: sessionTimer)
        if case .failure(let problem) = timer.received(request) {
            transactions.respond(key, errorResponse(problem, to: request, toTag: toTag))
            return
        }
        gate.offer(request, key: key, packet: packet)
    }

    /// An overloaded bridge's answer to a new INVITE: 503 + Retry-After, sent statelessly (RFC 3261 §8.2.7), as
    /// cheap as an answer gets: no transaction, no timer, its ACK absorbed by its To tag. The tag is the same for
    /// a retransmission of the INVITE, which gets the same answer (or is admitted, once the overload is over).
    private func shed(_ request: SIPRequest, reply: ReplyPath) {
        var tag = Hasher()
        tag.combine(request.callID)
        tag.combine(request.topVia?.branch)
        let toTag = Self.shedTagPrefix + String(UInt(bitPattern: tag.finalize()), radix: 36)
        var response = SIPResponse(replyingTo: request, status: 503, toTag: toTag)
        response.headers.add("Retry-After", String(overload.configuration.retryAfter))
        transactions.sendStateless(response, via: reply)
    }

    /// A SIP-I trunk's INVITE carries its SDP beside an ISUP part (`multipart/mixed`, RFC 3204). The bridge
    /// offers the SDP alone (``MessageBody/sdp(of:)``) and drops the optional parts, as an SBC between a SIP-I
    /// trunk and SIP phones does; a malformed multipart body is a 400 naming the problem, and a part the far
    /// end must understand (`handling=required`) a 415 (RFC 5621 §9.1).
    static func sessionBodyProblem(_ invite: SIPRequest) -> SIPStatusError? {
        do {
            guard case .otherwise(let type) = try MessageBody.sessionDescription(of: invite) else { return nil }
            return SIPStatusError(status: 415, reason: "Unsupported Media Type (\(type) part required)",
                                  headers: [SIPHeader(name: "Accept", value: accepted)])
        } catch {
            return SIPStatusError(status: 400, reason: "Bad Body (\(error))")
        }
    }

    /// The bodies an INVITE that starts a call may carry.
    static let accepted = "application/sdp, multipart/mixed"

    /// What the bridge takes in a body: SDP to start a call, alone or in a multipart body; in a dialog, whatever the request carries,
    /// since it relays the body end to end (DTMF over INFO, a SIP-I trunk's multipart) and the far end
    /// judges it, and a BYE ends the session whatever its body (RFC 3261 §15.1.1).
    static func contentTypes(for request: SIPRequest) -> Set<String> {
        guard request.to?.tag != nil, let type = request.contentType else { return ["application/sdp", "multipart/mixed"] }
        return ["application/sdp", type]
    }

    private func errorResponse(_ problem: SIPStatusError, to request: SIPRequest, toTag: String) -> SIPResponse {
        var response = SIPResponse(replyingTo: request, status: problem.status, reason: problem.reason, toTag: toTag)
        for header in problem.headers { response.headers.add(header.name, header.value) }
        return response
    }

    /// The To tag of every 503 an overload sheds: its ACK is known by it.
    static let shedTagPrefix = "shed-"

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
