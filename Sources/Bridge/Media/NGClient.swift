import BusSchema
import Logging
import Metrics
import NIOCore
import NIOPosix

/// Why an ng request came to nothing; the text goes into a command's `media_unavailable` reply and the log.
struct MediaError: Error, Equatable, CustomStringConvertible {
    let description: String
    /// The code a command's reply carries: `media_unavailable` unless the command itself was at fault.
    let code: ErrorCode
    init(_ description: String, code: ErrorCode = .mediaUnavailable) {
        self.description = description
        self.code = code
    }
}

/// Sends ng datagrams to rtpengine (the NIO channel in the bridge, a fake in tests).
protocol NGTransport: AnyObject {
    func send(_ datagram: [UInt8])
}

/// A client of rtpengine's ng protocol over UDP: each request a datagram `COOKIE d...e`, answered by a datagram
/// with the same cookie. rtpengine keeps the replies of recent cookies, so a lost datagram is sent again under the
/// same cookie (an offer is not carried out twice), until the deadline.
///
/// Loop-bound: requests, replies and timers run on the SIP event loop.
final class NGClient {
    private struct Pending {
        let datagram: [UInt8]
        let command: String
        let completion: (Result<Bencode, MediaError>) -> Void
        var retransmit: Scheduled<Void>?
        var deadline: Scheduled<Void>?
    }

    private let loop: EventLoop
    private let transport: NGTransport
    private let timeout: TimeAmount
    private let logger: Logger
    private var pending: [String: Pending] = [:]
    private var nextCookie = UInt64.random(in: 0...UInt64(UInt32.max))
    private let failures = Counter(label: "switchboard_media_requests_failed_total")

    init(loop: EventLoop, transport: NGTransport, timeout: TimeAmount, logger: Logger) {
        self.loop = loop
        self.transport = transport
        self.timeout = timeout
        self.logger = logger
    }

    /// Sends `command` with `members`; the completion gets the reply dictionary (its `result` was `ok`), or why not:
    /// no reply before the deadline, or rtpengine's `error-reason`.
    func request(_ command: String, _ members: [String: Bencode], completion: @escaping (Result<Bencode, MediaError>) -> Void) {
        nextCookie &+= 1
        let cookie = String(nextCookie, radix: 36)
        var body = members
        body["command"] = .string(command)
        let datagram = Array("\(cookie) ".utf8) + Bencode.dictionary(body).encoded()
        var entry = Pending(datagram: datagram, command: command, completion: completion)
        entry.deadline = loop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            finish(cookie, .failure(MediaError("rtpengine did not answer \(command) within \(timeout.nanoseconds / 1_000_000) ms")))
        }
        pending[cookie] = entry
        transport.send(datagram)
        scheduleRetransmit(cookie, after: .milliseconds(250))
    }

    private func scheduleRetransmit(_ cookie: String, after delay: TimeAmount) {
        pending[cookie]?.retransmit = loop.assumeIsolated().scheduleTask(in: delay) { [self] in
            guard let entry = pending[cookie] else { return }
            transport.send(entry.datagram)
            scheduleRetransmit(cookie, after: delay * 2)
        }
    }

    /// A datagram from rtpengine: the reply to the request with its cookie; anything else is logged and dropped.
    func received(_ datagram: [UInt8]) {
        guard let space = datagram.firstIndex(of: UInt8(ascii: " ")),
              let reply = Bencode.decode(datagram[(space + 1)...]) else {
            logger.warning("unreadable datagram from rtpengine dropped", metadata: ["media.bytes": "\(datagram.count)"])
            return
        }
        let cookie = String(decoding: datagram[..<space], as: UTF8.self)
        guard pending[cookie] != nil else { return }
        switch reply["result"]?.text {
        case "ok", "pong":
            finish(cookie, .success(reply))
        case let result:
            let reason = reply["error-reason"]?.text ?? reply["warning"]?.text ?? "result \(result ?? "missing")"
            finish(cookie, .failure(MediaError("rtpengine refused \(pending[cookie]?.command ?? "the request"): \(reason)")))
        }
    }

    private func finish(_ cookie: String, _ result: Result<Bencode, MediaError>) {
        guard let entry = pending.removeValue(forKey: cookie) else { return }
        entry.retransmit?.cancel()
        entry.deadline?.cancel()
        if case .failure = result { failures.increment() }
        entry.completion(result)
    }
}

/// The bridge's UDP socket to rtpengine's ng port; replies go to the client on the SIP event loop.
final class NIONGTransport: NGTransport, Sendable {
    private let channel: Channel
    private let remote: SocketAddress

    private init(channel: Channel, remote: SocketAddress) {
        self.channel = channel
        self.remote = remote
    }

    /// Binds an ephemeral port on `loop` (the SIP loop) for the rtpengine at `remote`; `received` runs on that loop.
    static func bind(remote: SocketAddress, loop: EventLoop, received: @escaping @Sendable ([UInt8]) -> Void) async throws -> NIONGTransport {
        let local = remote.protocol == .inet6 ? "::" : "0.0.0.0"
        let channel = try await DatagramBootstrap(group: loop)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(DatagramReader(received: received)) }
            }
            .bind(host: local, port: 0).get()
        return NIONGTransport(channel: channel, remote: remote)
    }

    func send(_ datagram: [UInt8]) {
        let envelope = AddressedEnvelope(remoteAddress: remote, data: channel.allocator.buffer(bytes: datagram))
        channel.writeAndFlush(envelope, promise: nil)
    }

    func close() async {
        try? await channel.close()
    }
}

/// Hands each datagram's bytes to a closure (the ng replies, rtpengine's DTMF reports).
final class DatagramReader: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let received: @Sendable ([UInt8]) -> Void

    init(received: @escaping @Sendable ([UInt8]) -> Void) {
        self.received = received
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = unwrapInboundIn(data)
        received(envelope.data.readBytes(length: envelope.data.readableBytes) ?? [])
    }
}
