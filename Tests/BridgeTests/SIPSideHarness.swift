import BusSchema
import Logging
import NIOCore
import NIOEmbedded
import SIPCore
@testable import Bridge

/// The bus as the SIP side sees it, recording what it is asked: no sockets, no journal.
final class FakeBus: BridgeBus {
    private(set) var events: [(callId: String?, body: EventBody)] = []
    private(set) var decisionRequests: [(requestId: String, offer: CallOffer)] = []
    private(set) var replies: [CommandReply] = []

    func publish(callId: String?, _ body: EventBody) {
        events.append((callId, body))
    }

    func requestDecision(requestId: String, callId: String, offer: CallOffer, deadline: ContinuousClock.Instant) {
        // The real bus publishes call.offered with the request, but for a REFER's target or a failure step.
        if offer.transfer == nil, offer.failure == nil { events.append((callId, .callOffered(offer))) }
        decisionRequests.append((requestId, offer))
    }

    func reply(_ reply: CommandReply, to envelope: [[UInt8]]) {
        replies.append(reply)
    }

    var types: [String] { events.map(\.body.type) }
}

/// The wire as the SIP side sees it: every message it sends, with where it went.
final class FakeTransport: SIPTransport {
    struct Sent {
        var bytes: [UInt8]
        var destination: SocketAddress?

        /// Nil for what does not parse: a 400 to a broken request copies its broken headers.
        var message: SIPMessage? { try? SIPParser().parse(bytes) }
        var request: SIPRequest? { if case .request(let request)? = message { request } else { nil } }
        var response: SIPResponse? { if case .response(let response)? = message { response } else { nil } }
        /// The status of a response, read from its status line alone.
        var status: Int? {
            let line = bytes.prefix { $0 != UInt8(ascii: "\r") }.split(separator: UInt8(ascii: " "))
            guard line.first.map({ String(decoding: $0, as: UTF8.self) }) == "SIP/2.0", line.count > 1 else { return nil }
            return Int(String(decoding: line[1], as: UTF8.self))
        }
    }

    var localHost = "127.0.0.1"
    let localPort = 5080
    private var sent: [Sent] = []

    func send(_ bytes: [UInt8], on path: SIPPath) {
        let destination: SocketAddress? = if case .udp(let address) = path { address } else { nil }
        sent.append(Sent(bytes: bytes, destination: destination))
    }

    /// What was sent since the last call.
    @discardableResult
    func take() -> [Sent] {
        defer { sent.removeAll() }
        return sent
    }
}

/// The bridge's SIP side as `Bridge` wires it, on an `EmbeddedEventLoop` whose clock the test moves.
final class SIPSideHarness {
    static let caller = try! SocketAddress(ipAddress: "127.0.0.1", port: 5999)
    static let callee = try! SocketAddress(ipAddress: "127.0.0.2", port: 5070)
    static let offer = "v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    static let answer = "v=0\r\no=b 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"

    let loop = EmbeddedEventLoop()
    let bus = FakeBus()
    let wire = FakeTransport()
    let side: SIPSide

    /// `localHost` is what the transport reports for our Via and Contact (bracketed for IPv6).
    /// `media`: rtpengine as the test plays it (the configuration needs `mediaRTPEngine` for the bridge to use it).
    init(configuration: BridgeConfiguration = BridgeFixture.configuration(), localHost: String = "127.0.0.1", media: NGTransport? = nil) {
        wire.localHost = localHost
        var logger = Logger(label: "test.sip")
        logger.logLevel = .critical
        side = SIPSide(configuration: configuration, loop: loop, bus: bus, transport: wire, store: nil, media: media, logger: logger)
    }

    /// A message off the wire, as the UDP listener hands it to the edge.
    func receive(_ bytes: [UInt8], from remote: SocketAddress = caller) {
        side.edge.receive(InboundPacket(bytes: bytes, remote: remote, transport: .udp, connection: nil))
        loop.run()
    }

    func receive(_ message: SIPMessage, from remote: SocketAddress) {
        receive(message.serialized(), from: remote)
    }

    /// The bus answers every open decision request with `resolution`, as its thread would.
    func resolveAll(_ resolution: BusEndpoints.Resolution) {
        side.gate.resolve(bus.decisionRequests.map { (requestId: $0.requestId, resolution: resolution) })
        loop.run()
    }

    func advance(by amount: TimeAmount) {
        loop.advanceTime(by: amount)
    }

    // MARK: - A caller and a callee

    func callerInvite(branch: String = "z9hG4bKcaller1", callID: String = "caller-call-1", maxForwards: Int = 70,
                      headers: [(String, String)] = []) -> SIPRequest {
        var invite = SIPRequest(method: .invite, uri: SIPAnyURI("sip:bob@127.0.0.1:5080")!)
        invite.headers.add("Via", "SIP/2.0/UDP 127.0.0.1:5999;branch=\(branch);rport")
        invite.headers.add("Max-Forwards", "\(maxForwards)")
        invite.headers.add("From", "<sip:alice@127.0.0.1>;tag=alice1")
        invite.headers.add("To", "<sip:bob@127.0.0.1>")
        invite.headers.add("Call-ID", callID)
        invite.headers.add("CSeq", "1 INVITE")
        invite.headers.add("Contact", "<sip:alice@127.0.0.1:5999>")
        for (name, value) in headers { invite.headers.add(name, value) }
        invite.headers.add("Content-Type", "application/sdp")
        invite.body = Array(Self.offer.utf8)
        return invite
    }

    /// A request in the caller's dialog (`toTag` is the bridge's tag there).
    func callerRequest(_ method: SIPMethod, cseq: UInt32, toTag: String, branch: String, body: String = "") -> SIPRequest {
        var request = SIPRequest(method: method, uri: SIPAnyURI("sip:switchboard@127.0.0.1:5080")!)
        request.headers.add("Via", "SIP/2.0/UDP 127.0.0.1:5999;branch=\(branch);rport")
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", "<sip:alice@127.0.0.1>;tag=alice1")
        request.headers.add("To", "<sip:bob@127.0.0.1>;tag=\(toTag)")
        request.headers.add("Call-ID", "caller-call-1")
        request.headers.add("CSeq", "\(cseq) \(method.rawValue)")
        if !body.isEmpty {
            request.headers.add("Content-Type", "application/sdp")
            request.body = Array(body.utf8)
        }
        return request
    }

    /// The callee's answer to the bridge's INVITE (or a fork's, with another tag).
    static func calleeResponse(to invite: SIPRequest, status: Int, toTag: String = "bob1", sdp: String? = nil,
                               headers: [(String, String)] = []) -> SIPResponse {
        var response = SIPResponse(replyingTo: invite, status: status, toTag: status == 100 ? nil : toTag)
        if status > 100 { response.headers.add("Contact", "<sip:bob@127.0.0.2:5070>") }
        for (name, value) in headers { response.headers.add(name, value) }
        if let sdp {
            response.headers.add("Content-Type", "application/sdp")
            response.body = Array(sdp.utf8)
        }
        return response
    }

    /// A request from the callee in the bridge's dialog with it.
    static func calleeRequest(_ method: SIPMethod, in invite: SIPRequest, cseq: UInt32, branch: String, body: String = "") -> SIPRequest {
        var request = SIPRequest(method: method, uri: SIPAnyURI("sip:switchboard@127.0.0.1:5080")!)
        request.headers.add("Via", "SIP/2.0/UDP 127.0.0.2:5070;branch=\(branch);rport")
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", "<sip:bob@127.0.0.2>;tag=bob1")
        request.headers.add("To", invite.headers["From"]!)
        request.headers.add("Call-ID", invite.callID!)
        request.headers.add("CSeq", "\(cseq) \(method.rawValue)")
        if !body.isEmpty {
            request.headers.add("Content-Type", "application/sdp")
            request.body = Array(body.utf8)
        }
        return request
    }

    /// Runs a caller's INVITE through to the bridge's INVITE to the callee: returns that INVITE.
    func bridgeToCallee(ringTimeoutMs: Int? = nil, maxForwards: Int = 70, callerHeaders: [(String, String)] = []) throws -> SIPRequest {
        receive(.request(callerInvite(maxForwards: maxForwards, headers: callerHeaders)), from: Self.caller)
        let route = BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@127.0.0.2:5070", ringTimeoutMs: ringTimeoutMs)], mode: .serial)
        resolveAll(.decided(.bridge(route), workerId: "w1"))
        guard let invite = wire.take().compactMap(\.request).first(where: { $0.method == .invite }) else {
            throw HarnessError.nothingSent("INVITE to the callee")
        }
        return invite
    }

    /// A bridged call up to the callee's 200: returns the bridge's INVITE to the callee and its 200 to the caller.
    func answeredCall(callerHeaders: [(String, String)] = [], calleeHeaders: [(String, String)] = []) throws
        -> (calleeInvite: SIPRequest, callerOK: SIPResponse) {
        let invite = try bridgeToCallee(callerHeaders: callerHeaders)
        receive(.response(Self.calleeResponse(to: invite, status: 180)), from: Self.callee)
        receive(.response(Self.calleeResponse(to: invite, status: 200, sdp: Self.answer, headers: calleeHeaders)), from: Self.callee)
        guard let ok = wire.take().compactMap(\.response).first(where: { $0.status == 200 }) else {
            throw HarnessError.nothingSent("200 to the caller")
        }
        return (invite, ok)
    }

    enum HarnessError: Error {
        case nothingSent(String)
    }
}
