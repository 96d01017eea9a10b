import BusSchema
import Logging
import Metrics
import Synchronization
import ZeroMQ

/// The decisions ROUTER socket, on the bus loop: carries out the ``DecisionPool``'s actions (requests,
/// welcomes and heartbeats to workers, the worker events) and hands the resolutions to the SIP side, a
/// batch per pass of the loop.
final class DecisionBroker {
    typealias ResolutionHandler = @Sendable ([(requestId: String, resolution: BusEndpoints.Resolution)]) -> Void

    /// Workers in the pool, readable from any thread (health checks, tests).
    final class WorkerCount: Sendable {
        private let count = Atomic(0)
        var value: Int { count.load(ordering: .relaxed) }
        fileprivate func set(_ value: Int) { count.store(value, ordering: .relaxed) }
    }

    let bound: String
    private let socket: ZMQSocket
    private var pool: DecisionPool
    private let publisher: EventPublisher
    private let workerCount: WorkerCount
    private let sockets: BusSocketFactory
    private var logger: Logger { sockets.logger }
    private var onResolution: ResolutionHandler = { _ in }
    /// Resolutions gathered during one pass of the loop, handed over together.
    private var resolved: [(requestId: String, resolution: BusEndpoints.Resolution)] = []
    private let workersGauge = Gauge(label: "switchboard_bus_workers")

    init(endpoint: String, pool: DecisionPool.Configuration, publisher: EventPublisher, workerCount: WorkerCount,
         sockets: BusSocketFactory) throws {
        (socket, bound) = try sockets.bind(.router, at: endpoint, for: .workers) { socket in
            try socket.setRouterMandatory(true)
            try socket.setRouterHandover(true)
            try socket.setMaxMessageSize(Int64(BusSchema.maxFrameSize))
        }
        self.pool = DecisionPool(configuration: pool)
        self.publisher = publisher
        self.workerCount = workerCount
        self.sockets = sockets
    }

    /// Reads the workers from now on, and keeps their liveness and the requests' deadlines in every pass.
    func start(on loop: ZMQServiceLoop, onResolution: @escaping ResolutionHandler) {
        self.onResolution = onResolution
        loop.watch(socket) { [self] in
            sockets.drain(socket, for: .workers, name: "decisions", refusal: "refused decisions message",
                          revoked: { envelope in remove(envelope.prefix(1).map { $0 }) }) { envelope, payload, _ in
                // ROUTER gives [identity, payload]; a DEALER that adds an empty delimiter gives three frames.
                perform(pool.receive(payload, from: envelope[0], now: .now))
            }
        }
        loop.afterEachPass { [self] now in
            perform(pool.tick(now: .now))
            if !resolved.isEmpty {
                self.onResolution(resolved)
                resolved.removeAll(keepingCapacity: true)
            }
            return pool.nextTick(after: now)
        }
    }

    /// Queues a decision request for the pool; the resolution comes back through `onResolution`.
    func submit(requestId: String, callId: String, offer: CallOffer, deadline: ContinuousClock.Instant) {
        perform(pool.submit(requestId: requestId, callId: callId, offer: offer, deadline: deadline, now: .now))
    }

    /// Drops the workers whose key is no longer admitted (their connections are closed): they are lost now,
    /// and their open requests move to another worker while their deadline allows.
    func remove(_ identities: [[UInt8]]) {
        for identity in identities { perform(pool.unreachable(identity, now: .now)) }
    }

    private func perform(_ actions: [DecisionPool.Action]) {
        defer { workerCount.set(pool.workerCount) }
        for action in actions {
            switch action {
            case .send(let identity, let message):
                do {
                    try socket.send([identity, message.encoded()], dontWait: true)
                } catch {
                    logger.warning("could not reach worker", metadata: ["bus.type": "\(message.type)", "bus.error": "\(error)"])
                    // Its connection is gone (it died): drop it now and give its requests to another
                    // worker, rather than let them wait for the deadline or for liveness to notice.
                    if error.hostUnreachable { perform(pool.unreachable(identity, now: .now)) }
                }
            case .deliver(let requestId, let decision, let workerId):
                resolved.append((requestId, .decided(decision, workerId: workerId)))
            case .fallback(let requestId, let cause):
                resolved.append((requestId, .fallback(cause)))
            case .workerJoined(let workerId):
                logger.info("worker joined", metadata: ["worker.id": "\(workerId)", "bus.workers": "\(pool.workerCount)"])
                workersGauge.record(pool.workerCount)
                publisher.publish(callId: nil, .workerJoined(WorkerInfo(workerId: workerId)))
            case .workerLeft(let workerId):
                logger.info("worker left", metadata: ["worker.id": "\(workerId)", "bus.workers": "\(pool.workerCount)"])
                workersGauge.record(pool.workerCount)
                publisher.publish(callId: nil, .workerLeft(WorkerInfo(workerId: workerId)))
            case .workerLost(let workerId):
                logger.warning("worker lost (no heartbeat)", metadata: ["worker.id": "\(workerId)", "bus.workers": "\(pool.workerCount)"])
                workersGauge.record(pool.workerCount)
                publisher.publish(callId: nil, .workerLost(WorkerInfo(workerId: workerId)))
            case .refused(let code, let message):
                sockets.refusedFrames.increment()
                logger.warning("refused decisions message", metadata: ["bus.error": "\(code)", "bus.reason": "\(message)"])
            case .expired(let requestId):
                logger.debug("decision request expired", metadata: ["bus.request_id": "\(requestId)"])
            }
        }
    }
}
