private import CZeroMQ

/// The ZeroMQ socket patterns Switchboard uses.
public enum ZMQSocketType: Sendable {
    case pub, xpub, sub, router, dealer, pair, push, pull, req, rep

    var rawValue: Int32 {
        switch self {
        case .pub: ZMQ_PUB
        case .xpub: ZMQ_XPUB
        case .sub: ZMQ_SUB
        case .router: ZMQ_ROUTER
        case .dealer: ZMQ_DEALER
        case .pair: ZMQ_PAIR
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .req: ZMQ_REQ
        case .rep: ZMQ_REP
        }
    }
}

/// One ZeroMQ socket.
///
/// A socket belongs to one thread at a time (libzmq sockets are not thread-safe): create it, use it and
/// close it from the thread that polls it. `deinit` asserts it was closed.
///
/// ```swift
/// let socket = try ZMQSocket(context: context, type: .dealer)
/// try socket.connect("tcp://127.0.0.1:5571")
/// try socket.send([Array("hello".utf8)])
/// socket.close()
/// ```
public final class ZMQSocket {
    let handle: UnsafeMutableRawPointer
    private var closed = false
    /// The socket's pattern.
    public let type: ZMQSocketType

    /// Creates a socket of `type` in `context`, with linger 0 so `close()` never blocks on unsent messages.
    public init(context: ZMQContext, type: ZMQSocketType) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, type.rawValue) else {
            throw ZMQError(call: "zmq_socket", errno: zmq_errno())
        }
        self.handle = handle
        self.type = type
        try setOption(ZMQ_LINGER, Int32(0))
    }

    /// How long `close()` (and the context's termination) may wait to send what is still queued.
    public func setLinger(_ duration: Duration) throws(ZMQError) {
        try setOption(ZMQ_LINGER, Int32(duration.milliseconds))
    }

    /// Closes the socket. Unsent messages are dropped unless ``setLinger(_:)`` allowed time for them.
    public func close() {
        guard !closed else { return }
        closed = true
        _ = try? retryingEINTR("zmq_close") { zmq_close(handle) }
    }

    deinit {
        assert(closed, "ZMQSocket deallocated without close()")
    }

    /// Binds to `endpoint` and returns the endpoint actually bound, so `tcp://127.0.0.1:*` reveals its port.
    @discardableResult
    public func bind(_ endpoint: String) throws(ZMQError) -> String {
        try retryingEINTR("zmq_bind") { zmq_bind(handle, endpoint) }
        return try lastEndpoint()
    }

    /// Connects to `endpoint`; libzmq reconnects by itself when the peer goes away.
    public func connect(_ endpoint: String) throws(ZMQError) {
        try retryingEINTR("zmq_connect") { zmq_connect(handle, endpoint) }
    }

    /// The last endpoint this socket bound or connected to.
    public func lastEndpoint() throws(ZMQError) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        try retryingEINTR("zmq_getsockopt") { zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sends one multipart message. With `dontWait`, a full queue throws a ``ZMQError`` whose
    /// `wouldBlock` is true instead of blocking.
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws(ZMQError) {
        precondition(!frames.isEmpty, "a ZeroMQ message has at least one frame")
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
            if index < frames.count - 1 { flags |= ZMQ_SNDMORE }
            try retryingEINTR("zmq_send") {
                frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            }
        }
    }

    /// Receives one multipart message, or nil when `dontWait` is set and none is queued.
    public func receive(dontWait: Bool = false) throws(ZMQError) -> [[UInt8]]? {
        try receiveMessage(dontWait: dontWait, withPeer: false)?.frames
    }

    /// Like ``receive(dontWait:)``, with who sent it: the message's `User-Id` property, the user id the ZAP
    /// handler gave its sender (``ZAPAuthenticator`` gives the CURVE public key in Z85; nil on a plain
    /// socket), and the TCP connection it came in on (nil for IPC and inproc), which
    /// ``ZMQPeerConnection/shutDown()`` ends.
    public func receiveWithPeer(dontWait: Bool = false) throws(ZMQError)
        -> (frames: [[UInt8]], userId: String?, connection: ZMQPeerConnection?)? {
        try receiveMessage(dontWait: dontWait, withPeer: true)
    }

    /// One message; `withPeer` also reads its sender (two system calls for the connection's addresses).
    private func receiveMessage(dontWait: Bool, withPeer: Bool) throws(ZMQError)
        -> (frames: [[UInt8]], userId: String?, connection: ZMQPeerConnection?)? {
        var frames: [[UInt8]] = []
        var userId: String?
        var connection: ZMQPeerConnection?
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }
        while true {
            do {
                try retryingEINTR("zmq_msg_recv") { zmq_msg_recv(&message, handle, dontWait ? ZMQ_DONTWAIT : 0) }
            } catch where error.wouldBlock && frames.isEmpty {
                return nil
            }
            // libzmq 4.3 keeps the descriptor with the peer's metadata: on every frame the peer sent, but not on
            // the identity frame a ROUTER makes when `zmq_poll` had the message fetched already.
            if withPeer, connection == nil, case let descriptor = zmq_msg_get(&message, ZMQ_SRCFD), descriptor >= 0 {
                connection = ZMQPeerConnection(descriptor: descriptor)
            }
            // Likewise the User-Id.
            if withPeer, userId == nil, let property = zmq_msg_gets(&message, "User-Id") { userId = String(cString: property) }
            let size = zmq_msg_size(&message)
            let data = zmq_msg_data(&message)
            frames.append(size == 0 ? [] : Array(UnsafeRawBufferPointer(start: data, count: size)))
            if zmq_msg_more(&message) == 0 { return (frames, userId, connection) }
        }
    }

    /// Subscribes a SUB socket to every topic starting with `prefix` ("" is everything).
    public func subscribe(_ prefix: String) throws(ZMQError) {
        try setOption(ZMQ_SUBSCRIBE, Array(prefix.utf8))
    }

    /// Sets the identity a DEALER presents to a ROUTER. Set it before `connect`.
    public func setIdentity(_ identity: [UInt8]) throws(ZMQError) {
        try setOption(ZMQ_ROUTING_ID, identity)
    }

    /// Makes a ROUTER fail with `EHOSTUNREACH` instead of silently dropping a message to an unknown peer.
    public func setRouterMandatory(_ on: Bool) throws(ZMQError) {
        try setOption(ZMQ_ROUTER_MANDATORY, Int32(on ? 1 : 0))
    }

    /// Makes an XPUB socket hand on every subscription, not only a topic's first, so that each subscriber's
    /// connection shows (``receiveWithPeer(dontWait:)``).
    public func setXPubVerbose(_ on: Bool) throws(ZMQError) {
        try setOption(ZMQ_XPUB_VERBOSE, Int32(on ? 1 : 0))
    }

    /// Lets a reconnecting peer that reuses its identity take over from the stale connection.
    public func setRouterHandover(_ on: Bool) throws(ZMQError) {
        try setOption(ZMQ_ROUTER_HANDOVER, Int32(on ? 1 : 0))
    }

    /// Caps inbound message size: libzmq disconnects a peer that sends a larger frame.
    public func setMaxMessageSize(_ bytes: Int64) throws(ZMQError) {
        try setOption(ZMQ_MAXMSGSIZE, bytes)
    }

    /// Outbound and inbound queue limits (messages).
    public func setHighWaterMarks(send: Int32, receive: Int32) throws(ZMQError) {
        try setOption(ZMQ_SNDHWM, send)
        try setOption(ZMQ_RCVHWM, receive)
    }

    /// Queue messages only to completed connections, so a DEALER with no live bridge fails fast.
    public func setImmediate(_ on: Bool) throws(ZMQError) {
        try setOption(ZMQ_IMMEDIATE, Int32(on ? 1 : 0))
    }

    /// Reconnect back-off: starts at `initial` and doubles up to `maximum`.
    public func setReconnectInterval(initial: Duration, maximum: Duration) throws(ZMQError) {
        try setOption(ZMQ_RECONNECT_IVL, Int32(initial.milliseconds))
        try setOption(ZMQ_RECONNECT_IVL_MAX, Int32(maximum.milliseconds))
    }

    /// Makes this socket a CURVE server with `secretKey` (32 raw bytes); clients are checked by ZAP.
    public func setCurveServer(secretKey: [UInt8]) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVER, Int32(1))
        try setOption(ZMQ_CURVE_SECRETKEY, secretKey)
    }

    /// Makes this socket a CURVE client of the server whose public key is `serverKey`.
    public func setCurveClient(publicKey: [UInt8], secretKey: [UInt8], serverKey: [UInt8]) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVERKEY, serverKey)
        try setOption(ZMQ_CURVE_PUBLICKEY, publicKey)
        try setOption(ZMQ_CURVE_SECRETKEY, secretKey)
    }

    /// Makes this socket a CURVE server with `secretKey`. Set it before `bind`; clients are admitted by the
    /// context's ZAP handler (``ZAPAuthenticator``), which must already run: without one, libzmq admits
    /// every CURVE client.
    ///
    /// ```swift
    /// try router.setCurveServer(secretKey: bridgeKeys.secretKey)
    /// try router.bind("tcp://0.0.0.0:5571")
    /// ```
    public func setCurveServer(secretKey: CurveSecretKey) throws(ZMQError) {
        try setCurveServer(secretKey: secretKey.bytes)
    }

    /// Makes this socket a CURVE client with `keyPair` of the server whose public key is `serverKey`.
    /// Set it before `connect`.
    ///
    /// ```swift
    /// try dealer.setCurveClient(keyPair: workerKeys, serverKey: bridgePublicKey)
    /// try dealer.connect("tcp://bridge.example:5571")
    /// ```
    public func setCurveClient(keyPair: CurveKeyPair, serverKey: CurvePublicKey) throws(ZMQError) {
        try setCurveClient(publicKey: keyPair.publicKey.bytes, secretKey: keyPair.secretKey.bytes, serverKey: serverKey.bytes)
    }

    /// The ZAP domain this socket's peers are authenticated in (RFC 27); the ``ZAPAuthenticator`` sees it in
    /// each request and in each ``ZAPDenial``. Set it before `bind`.
    public func setZAPDomain(_ domain: String) throws(ZMQError) {
        try setOption(ZMQ_ZAP_DOMAIN, Array(domain.utf8))
    }

    private func setOption(_ option: Int32, _ value: Int32) throws(ZMQError) {
        var value = value
        try retryingEINTR("zmq_setsockopt") { zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) }
    }

    private func setOption(_ option: Int32, _ value: Int64) throws(ZMQError) {
        var value = value
        try retryingEINTR("zmq_setsockopt") { zmq_setsockopt(handle, option, &value, MemoryLayout<Int64>.size) }
    }

    private func setOption(_ option: Int32, _ value: [UInt8]) throws(ZMQError) {
        try retryingEINTR("zmq_setsockopt") {
            value.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        }
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
