import Logging
import Metrics
import NIOCore
import NIOPosix
import SIPCore

/// How a SIP message reached the bridge, and how to answer on the same path.
enum SIPTransportKind: String {
    case udp, tcp
}

/// One framed SIP message off the wire, with where it came from.
struct InboundPacket {
    var bytes: [UInt8]
    var remote: SocketAddress
    var transport: SIPTransportKind
    /// The TCP connection it arrived on (answers go back through it); nil for a UDP datagram.
    var connection: Channel?
}

/// Where an outgoing SIP message goes: a datagram to an address, or the TCP connection a request came in on.
enum SIPPath {
    case udp(SocketAddress)
    case tcp(Channel)
}

/// The wire under the bridge's SIP side: the NIO sockets when running, a recorder in tests, so the edge
/// and the B2BUA run on an `EmbeddedEventLoop` without sockets. Used on the SIP loop only.
protocol SIPTransport: AnyObject {
    /// Where our Via and Contact headers say we are (the UDP socket's address).
    var localHost: String { get }
    var localPort: Int { get }
    func send(_ bytes: [UInt8], on path: SIPPath)
}

/// The bridge's sockets as a ``SIPTransport``: datagrams leave through the one UDP socket, TCP answers
/// through their connection. Loop-bound: the listeners attach the socket on the SIP loop.
final class NIOSIPTransport: SIPTransport {
    private let logger: Logger
    private var udp: Channel?
    private(set) var localHost = "127.0.0.1"
    private(set) var localPort = 5060

    init(logger: Logger) {
        self.logger = logger
    }

    /// The UDP socket, from its channel initializer: it is set before the first datagram is read.
    func attach(_ udp: Channel) {
        self.udp = udp
    }

    /// The address our Via and Contact headers give (the socket's, or the advertised one); an IPv6
    /// address is bracketed, as a SIP host must be (RFC 3261 §25.1 `IPv6reference`).
    func bound(host: String, port: Int) {
        localHost = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        localPort = port
    }

    func send(_ bytes: [UInt8], on path: SIPPath) {
        switch path {
        case .tcp(let connection):
            var buffer = connection.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            connection.writeAndFlush(buffer, promise: nil)
        case .udp(let destination):
            guard let udp else {
                logger.error("SIP message before the socket is bound", metadata: ["sip.remote": "\(destination)"])
                return
            }
            var buffer = udp.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            udp.writeAndFlush(AddressedEnvelope(remoteAddress: destination, data: buffer), promise: nil)
        }
    }
}

/// Hands UDP datagrams to the edge: one datagram is one message (RFC 3261 §18.3).
final class SIPDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let edge: SIPEdge

    init(edge: SIPEdge) {
        self.edge = edge
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let bytes = Array(envelope.data.readableBytesView)
        edge.receive(InboundPacket(bytes: bytes, remote: envelope.remoteAddress, transport: .udp, connection: nil))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP errors from earlier sends surface here; the socket itself stays usable.
        edge.transportError(error, transport: .udp)
    }
}

/// Splits a TCP byte stream into SIP messages by Content-Length (RFC 3261 §18.3) with SIPCore's framer.
final class SIPStreamDecoder: ByteToMessageDecoder {
    typealias InboundOut = [UInt8]
    private var framer: SIPStreamFramer

    init(limits: SIPParserLimits) {
        framer = SIPStreamFramer(limits: limits)
    }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if buffer.readableBytes > 0 {
            framer.append(buffer.readableBytesView)
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        }
        // The framer holds the bytes now, so hand on every complete message it has.
        while let message = try framer.nextMessage() {
            context.fireChannelRead(wrapInboundOut(message))
        }
        return .needMoreData
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// Hands framed TCP messages to the edge; a framing error answers 400 when it can and closes the
/// connection, since the stream can no longer be split reliably.
final class SIPStreamHandler: ChannelInboundHandler {
    typealias InboundIn = [UInt8]
    private let edge: SIPEdge

    init(edge: SIPEdge) {
        self.edge = edge
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let remote = context.remoteAddress else { return }
        edge.receive(InboundPacket(bytes: unwrapInboundIn(data), remote: remote, transport: .tcp, connection: context.channel))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let parseError = error as? SIPParseError, let remote = context.remoteAddress {
            edge.framingFailed(parseError, remote: remote, channel: context.channel)
        } else {
            edge.transportError(error, transport: .tcp)
        }
        context.close(promise: nil)
    }
}

/// Closes a TCP connection that has been idle (no read, no write) for the listener's idle timeout.
final class SIPIdleCloser: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is IdleStateHandler.IdleStateEvent else { return context.fireUserInboundEventTriggered(event) }
        context.close(promise: nil)
    }
}

/// Who may open a SIP TCP connection, how many stay open at once, and for how long idle. Loop-bound: the
/// child channel initializers run on the SIP loop, the only one the listener's group has.
final class SIPConnectionGate {
    private let trusted: TrustedSources
    private let maxConnections: Int
    private let idleTimeout: TimeAmount
    private var open = 0
    private let refused = Counter(label: "switchboard_sip_tcp_refused_total")

    init(configuration: BridgeConfiguration) {
        trusted = configuration.resolvedTrustedSources
        maxConnections = configuration.tcpMaxConnections
        idleTimeout = TimeAmount(configuration.tcpIdleTimeout)
    }

    /// Sets up a new connection's pipeline, or refuses it (the failed future closes it) before it is read.
    func admit(_ channel: Channel, edge: SIPEdge, limits: SIPParserLimits, logger: Logger) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            guard let remote = channel.remoteAddress, trusted.admits(remote) else {
                if let remote = channel.remoteAddress { edge.noteUntrusted(remote, transport: .tcp, answer: "connection closed") }
                throw ChannelError.inappropriateOperationForState
            }
            guard open < maxConnections else {
                refused.increment()
                logger.warning("SIP TCP connection refused: at sip_tcp_max_connections", metadata: [
                    "sip.remote": "\(remote)", "sip.tcp_connections": "\(open)",
                ])
                throw ChannelError.inappropriateOperationForState
            }
            open += 1
            channel.closeFuture.assumeIsolated().whenComplete { [self] _ in open -= 1 }
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(IdleStateHandler(allTimeout: idleTimeout))
            try pipeline.addHandler(SIPIdleCloser())
            try pipeline.addHandler(ByteToMessageHandler(SIPStreamDecoder(limits: limits)))
            try pipeline.addHandler(SIPStreamHandler(edge: edge))
        }
    }
}

/// Binds the UDP socket and the TCP listener on the same address and wires them to the edge.
struct SIPListeners {
    let udp: Channel
    let tcp: Channel

    /// `edge`, `transport` and `connections` live on `group`'s one event loop, where the channel initializers run.
    static func bind(host: String, port: Int, group: EventLoopGroup, edge: NIOLoopBound<SIPEdge>,
                     transport: NIOLoopBound<NIOSIPTransport>, connections: NIOLoopBound<SIPConnectionGate>,
                     limits: SIPParserLimits, logger: Logger) async throws -> SIPListeners {
        // With port 0 the system picks UDP's port, and that port may be taken for TCP: pick again.
        for _ in 1..<(port == 0 ? 8 : 1) {
            if let listeners = try? await bindOnce(host: host, port: port, group: group, edge: edge, transport: transport,
                                                   connections: connections, limits: limits, logger: logger) { return listeners }
        }
        return try await bindOnce(host: host, port: port, group: group, edge: edge, transport: transport, connections: connections,
                                  limits: limits, logger: logger)
    }

    private static func bindOnce(host: String, port: Int, group: EventLoopGroup, edge: NIOLoopBound<SIPEdge>,
                                 transport: NIOLoopBound<NIOSIPTransport>, connections: NIOLoopBound<SIPConnectionGate>,
                                 limits: SIPParserLimits, logger: Logger) async throws -> SIPListeners {
        let udp = try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 * 1024 * 1024)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    transport.value.attach(channel)
                    edge.value.watchReceiveQueue(of: channel)
                    try channel.pipeline.syncOperations.addHandler(SIPDatagramHandler(edge: edge.value))
                }
            }
            .bind(host: host, port: port).get()
        // Port 0 means "any": TCP takes the port UDP got, so both transports share one address.
        let boundPort = udp.localAddress?.port ?? port
        do {
            let tcp = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    connections.value.admit(channel, edge: edge.value, limits: limits, logger: logger)
                }
                .bind(host: host, port: boundPort).get()
            return SIPListeners(udp: udp, tcp: tcp)
        } catch {
            try? await udp.close()
            throw error
        }
    }

    func close() async {
        try? await udp.close()
        try? await tcp.close()
    }
}
