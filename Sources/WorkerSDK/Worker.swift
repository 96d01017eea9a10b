import BusSchema
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import ZeroMQ

/// How a worker reaches its bridges and how much work it takes.
public struct WorkerConfiguration: Sendable {
    /// Decision endpoints of the bridges to serve, e.g. `tcp://127.0.0.1:5571`. One worker serves them all.
    public var bridges: [String]
    /// A name for logs and events; the bus identity adds a random suffix so two instances never collide.
    public var workerId: String
    /// Requests this worker accepts at once from each bridge.
    public var capacity: Int
    /// How often the worker sends a heartbeat; the bridge announces its own in `bridge.welcome`.
    public var heartbeatInterval: Duration
    /// Missed heartbeats after which a silent bridge is considered gone and the connection is rebuilt.
    public var liveness: Int
    /// First and largest pause before rebuilding a connection; it doubles in between (Paranoid Pirate).
    public var reconnectBackoff: (initial: Duration, maximum: Duration)
    /// CURVE client settings; nil connects in the clear (NULL mechanism). A bridge that requires CURVE
    /// never answers a worker without it, or with a key it does not allow.
    public var curve: Curve?

    /// How a worker authenticates to its bridges and encrypts the link (ZeroMQ CURVE, RFC 26).
    ///
    /// ```swift
    /// let curve = WorkerConfiguration.Curve(
    ///     keyPair: try CurveKeyFile.loadKeyPair(from: "/etc/switchboard/worker.key"),
    ///     bridgeKey: try CurveKeyFile.loadPublicKey(from: "/etc/switchboard/bridge.key.pub"))
    /// ```
    public struct Curve: Sendable, Equatable {
        /// The worker's long-term key pair; the bridge's allow-list holds its public half.
        public var keyPair: CurveKeyPair
        /// The public key of the bridges this worker serves.
        public var bridgeKey: CurvePublicKey
        /// Per-endpoint exceptions to ``bridgeKey``, keyed by the exact string in ``WorkerConfiguration/bridges``.
        public var bridgeKeys: [String: CurvePublicKey]

        public init(keyPair: CurveKeyPair, bridgeKey: CurvePublicKey, bridgeKeys: [String: CurvePublicKey] = [:]) {
            self.keyPair = keyPair
            self.bridgeKey = bridgeKey
            self.bridgeKeys = bridgeKeys
        }

        /// The server key to expect at `endpoint`.
        public func serverKey(for endpoint: String) -> CurvePublicKey {
            bridgeKeys[endpoint] ?? bridgeKey
        }
    }

    /// ```swift
    /// WorkerConfiguration(bridges: ["tcp://127.0.0.1:5571"], workerId: "router")
    /// ```
    public init(bridges: [String], workerId: String, capacity: Int = 64,
                heartbeatInterval: Duration = .seconds(1), liveness: Int = 3,
                reconnectBackoff: (initial: Duration, maximum: Duration) = (.milliseconds(250), .seconds(8)),
                curve: Curve? = nil) {
        self.bridges = bridges
        self.workerId = workerId
        self.capacity = capacity
        self.heartbeatInterval = heartbeatInterval
        self.liveness = liveness
        self.reconnectBackoff = reconnectBackoff
        self.curve = curve
    }
}

/// A business-logic worker: receives call offers from one or more bridges and answers each with a decision.
///
/// ```swift
/// let worker = Worker(configuration: .init(bridges: ["tcp://127.0.0.1:5571"], workerId: "vip"), logger: logger)
/// worker.onOffer { offer in
///     offer.to.user == "911" ? .redirect([Target(uri: "sip:psap@emergency.example")])
///                            : .reject(status: 403, reason: "Forbidden")
/// }
/// try await ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
/// ```
///
/// The ZeroMQ sockets live on a ``ZMQServiceLoop`` of their own; handlers run as Swift tasks, so a slow
/// handler never delays heartbeats, and many offers are decided at once (up to `capacity` per bridge).
public final class Worker: Service, Sendable {
    public typealias OfferHandler = @Sendable (CallOffer) async -> Decision
    /// A handler that decides at once: see ``onOffer(inline:)``.
    public typealias InlineOfferHandler = @Sendable (CallOffer) -> Decision

    /// How the worker's loop reaches the handler.
    enum Decider: Sendable {
        case task(OfferHandler)
        case inline(InlineOfferHandler)
    }

    /// Thrown by ``run()`` when no ``onOffer(_:)`` handler was set: such a worker would take offers and
    /// never answer them, leaving every call to the bridge's fallback.
    public struct NoOfferHandler: Error, CustomStringConvertible {
        public var description: String { "Worker.run() called before onOffer(_:): nothing would answer the offers" }
    }

    private let configuration: WorkerConfiguration
    private let logger: Logger
    /// The closure sits in a struct: a function value read through `Mutex`'s generic `inout` is wrapped
    /// in reabstraction thunks that are written back, so every read would make the next call longer.
    private struct Handler {
        var decide: Decider?
    }

    private let handler = Mutex(Handler())

    /// Creates a worker; call ``onOffer(_:)`` and then run it.
    public init(configuration: WorkerConfiguration, logger: Logger) {
        precondition(!configuration.bridges.isEmpty, "a worker needs at least one bridge")
        precondition(configuration.capacity > 0, "capacity must be positive")
        self.configuration = configuration
        self.logger = logger
    }

    /// Sets the function that decides each offered call; call it before ``run()``, which reads it once.
    /// Decisions may take as long as they need; past the bridge's deadline the bridge applies its
    /// fallback and ignores a late answer.
    ///
    /// ```swift
    /// worker.onOffer { offer in .redirect([Target(uri: "sip:\(offer.to.user ?? "")@gw.example.com")]) }
    /// ```
    ///
    /// The same handler answers a bridged call's failure step: a route given `onFailure: .ask` that failed comes
    /// back as the call's offer with ``CallOffer/failure`` set, and the decision is what the caller gets next.
    ///
    /// ```swift
    /// worker.onOffer { offer in
    ///     if let failure = offer.failure {
    ///         return failure.cause == .busy ? .bridge(BridgeRoute(targets: [BridgeTarget(uri: "sip:carol@pbx.example")]))
    ///                                       : .reject(status: 480, reason: "Temporarily Unavailable")
    ///     }
    ///     return .bridge(BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@pbx.example", ringTimeoutMs: 15_000)], onFailure: .ask))
    /// }
    /// ```
    public func onOffer(_ handler: @escaping OfferHandler) {
        self.handler.withLock { $0.decide = .task(handler) }
    }

    /// Sets a function that decides each offer at once, from what it holds in memory (a dial plan, a table):
    /// it runs on the worker's bus thread as each offer arrives, with no task and no thread hand-off per
    /// offer, which halves the worker's CPU per call. It must not block or wait: while it runs, no other
    /// offer and no heartbeat is served. Anything that waits (a database, an HTTP call) belongs in
    /// ``onOffer(_:)``.
    ///
    /// ```swift
    /// worker.onOffer(inline: { offer in table.route(offer).decision })
    /// ```
    public func onOffer(inline handler: @escaping InlineOfferHandler) {
        self.handler.withLock { $0.decide = .inline(handler) }
    }

    /// Connects to every bridge and serves until graceful shutdown, then says goodbye to each bridge.
    ///
    /// - Throws: ``NoOfferHandler`` when ``onOffer(_:)`` was not called first.
    public func run() async throws {
        guard let decide = handler.withLock({ $0.decide }) else { throw NoOfferHandler() }
        let context = try ZMQContext()
        defer { context.close() }
        let loop = try ZMQServiceLoop(name: "switchboard-worker-bus")
        let session: ZMQLoopBound<WorkerSession>
        do {
            session = try loop.submit { [self] in
                let session = try WorkerSession(decide: decide, configuration: configuration, context: context, loop: loop, logger: logger)
                return ZMQLoopBound(session, loop: loop)
            }
        } catch {
            try? loop.stop()
            throw error
        }
        try await withGracefulShutdownHandler {
            try await loop.waitUntilStopped()
        } onGracefulShutdown: {
            loop.execute { session.value.sayGoodbye() }
            loop.requestStop()
        }
    }
}

/// A worker's bridges as its loop sees them: one ``BridgeLink`` each, and the offers they bring.
private final class WorkerSession {
    private let decide: Worker.Decider
    private let configuration: WorkerConfiguration
    private let loop: ZMQServiceLoop
    private let logger: Logger
    private let identity: String
    private var links: [BridgeLink] = []

    init(decide: Worker.Decider, configuration: WorkerConfiguration, context: ZMQContext, loop: ZMQServiceLoop,
         logger: Logger) throws {
        self.decide = decide
        self.configuration = configuration
        self.loop = loop
        self.logger = logger
        identity = "\(configuration.workerId)/" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        loop.onStop { [self] _ in links.forEach { $0.socket.close() } }
        for (index, endpoint) in configuration.bridges.enumerated() {
            let link = try BridgeLink(index: index, endpoint: endpoint, identity: identity, configuration: configuration,
                                      context: context, loop: loop, logger: logger)
            links.append(link)
            link.onFrames = { [unowned self, unowned link] frames in handle(frames, from: link) }
        }
        loop.afterEachPass { [self] now in
            for link in links { try link.tick(now: now) }
            return now + configuration.heartbeatInterval / 4
        }
    }

    /// Lets each bridge know at once that this worker is gone, rather than after its liveness runs out.
    func sayGoodbye() {
        for link in links {
            // Let the goodbye reach the bridge before the socket closes.
            try? link.socket.setLinger(.milliseconds(500))
            link.send(.bye)
        }
        logger.info("worker stopped", metadata: ["worker.id": "\(identity)"])
    }

    func send(_ message: WorkerMessage, to bridge: Int) {
        links[bridge].send(message)
    }

    private func handle(_ frames: [[UInt8]], from link: BridgeLink) {
        guard let frame = frames.last else { return }
        let message: BridgeMessage
        do {
            message = try BridgeMessage.decode(frame)
        } catch {
            logger.warning("refused message from bridge", metadata: ["bus.endpoint": "\(link.endpoint)", "bus.error": "\(error)"])
            return
        }
        link.heard()
        switch message {
        case .welcome(let bridgeId, _):
            logger.info("joined bridge", metadata: ["bus.endpoint": "\(link.endpoint)", "bridge.id": "\(bridgeId)"])
        case .heartbeat:
            break
        case .error(let reply):
            logger.warning("bridge refused a message", metadata: [
                "bus.endpoint": "\(link.endpoint)", "bus.error": "\(reply.code): \(reply.message)",
                "bus.request_id": "\(reply.requestId ?? "-")",
            ])
            // The bridge forgot us (it restarted): announce ourselves again.
            if reply.code == .notReady { link.send(.ready(workerId: configuration.workerId, capacity: configuration.capacity)) }
        case .decisionRequest(let requestId, let callId, _, let offer):
            let bridge = link.index
            switch decide {
            case .inline(let decide):
                send(.decision(requestId: requestId, decision: decide(offer)), to: bridge)
            case .task(let decide):
                let session = ZMQLoopBound(self, loop: loop)
                let logger = logger
                Task {
                    let decision = await decide(offer)
                    logger.debug("decided", metadata: ["call.id": "\(callId)", "bus.request_id": "\(requestId)"])
                    session.loop.execute { session.value.send(.decision(requestId: requestId, decision: decision), to: bridge) }
                }
            }
        }
    }
}

/// One bridge as a worker sees it: its DEALER socket and the Paranoid Pirate liveness bookkeeping.
private final class BridgeLink {
    let index: Int
    let endpoint: String
    private let identity: String
    private let configuration: WorkerConfiguration
    private let context: ZMQContext
    private let loop: ZMQServiceLoop
    private let logger: Logger
    private(set) var socket: ZMQSocket
    /// What to do with each message from the bridge.
    var onFrames: ([[UInt8]]) -> Void = { _ in }
    private var lastHeard: ContinuousClock.Instant
    private var lastSent: ContinuousClock.Instant
    private var backoff: Duration

    init(index: Int, endpoint: String, identity: String, configuration: WorkerConfiguration,
         context: ZMQContext, loop: ZMQServiceLoop, logger: Logger) throws {
        self.index = index
        self.endpoint = endpoint
        self.identity = identity
        self.configuration = configuration
        self.context = context
        self.loop = loop
        self.logger = logger
        self.socket = try BridgeLink.connect(endpoint: endpoint, identity: identity, configuration: configuration, context: context)
        self.lastHeard = .now
        self.lastSent = .now
        self.backoff = configuration.reconnectBackoff.initial
        watch()
        send(.ready(workerId: configuration.workerId, capacity: configuration.capacity))
    }

    private static func connect(endpoint: String, identity: String, configuration: WorkerConfiguration,
                                context: ZMQContext) throws -> ZMQSocket {
        let socket = try ZMQSocket(context: context, type: .dealer)
        try socket.setIdentity(Array(identity.utf8))
        try socket.setMaxMessageSize(Int64(BusSchema.maxFrameSize))
        try socket.setReconnectInterval(initial: configuration.reconnectBackoff.initial, maximum: configuration.reconnectBackoff.maximum)
        if let curve = configuration.curve {
            // Before connect: the handshake is negotiated when the connection is made.
            try socket.setCurveClient(keyPair: curve.keyPair, serverKey: curve.serverKey(for: endpoint))
        }
        try socket.connect(endpoint)
        return socket
    }

    private func watch() {
        loop.watch(socket) { [unowned self] in
            while let frames = receive() { onFrames(frames) }
        }
    }

    func send(_ message: WorkerMessage) {
        do {
            try socket.send([message.encoded()], dontWait: true)
            lastSent = .now
        } catch {
            // A full queue means the bridge is unreachable; the liveness check rebuilds the link.
            logger.warning("could not send to bridge", metadata: ["bus.endpoint": "\(endpoint)", "bus.error": "\(error)", "bus.type": "\(message.type)"])
        }
    }

    private func receive() -> [[UInt8]]? {
        do {
            return try socket.receive(dontWait: true)
        } catch {
            logger.warning("receive failed", metadata: ["bus.endpoint": "\(endpoint)", "bus.error": "\(error)"])
            return nil
        }
    }

    func heard() {
        lastHeard = .now
        backoff = configuration.reconnectBackoff.initial
    }

    /// Heartbeats, and rebuilds the connection when the bridge has been silent for `liveness` intervals.
    func tick(now: ContinuousClock.Instant) throws {
        if now - lastSent >= configuration.heartbeatInterval { send(.heartbeat) }
        guard now - lastHeard >= configuration.heartbeatInterval * configuration.liveness + backoff else { return }
        logger.warning("bridge silent, reconnecting", metadata: ["bus.endpoint": "\(endpoint)", "bus.backoff": "\(backoff)"])
        loop.unwatch(socket)
        socket.close()
        socket = try BridgeLink.connect(endpoint: endpoint, identity: identity, configuration: configuration, context: context)
        watch()
        lastHeard = now
        backoff = min(backoff * 2, configuration.reconnectBackoff.maximum)
        send(.ready(workerId: configuration.workerId, capacity: configuration.capacity))
    }
}
