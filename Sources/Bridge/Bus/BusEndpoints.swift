import BusSchema
import Foundation
import Logging
import Metrics
import ZeroMQ

/// The bridge's ZeroMQ side: the events PUB socket and the decisions ROUTER socket, on a thread of their own.
///
/// ZeroMQ sockets belong to one thread, so the SIP side never touches them: it queues commands here
/// (`publish`, `offer`) and gets resolutions back through `onResolution`, on the bus thread;
/// the receiver hops to its own event loop.
final class BusEndpoints: @unchecked Sendable {
    struct Configuration {
        var bridgeId: String
        var eventsEndpoint: String
        var decisionsEndpoint: String
        var heartbeatInterval: Duration = .seconds(1)
        var liveness: Int = 3
    }

    /// How a decision request ended, as the pool saw it.
    enum Resolution {
        case decided(Decision, workerId: String)
        case fallback(DecisionPool.FallbackCause)
    }

    private enum Command {
        case publish(callId: String, body: EventBody)
        /// Publishes `call.offered` and asks the pool, in one hand-over.
        case offer(requestId: String, callId: String, offer: CallOffer, deadline: ContinuousClock.Instant)
    }

    private let configuration: Configuration
    private let logger: Logger
    private let context: ZMQContext
    private let events: ZMQSocket
    private let decisions: ZMQSocket
    private let wakeup: Wakeup
    // Guards `inbox` and `stopping`, shared by the SIP event loop and the bus thread.
    private let lock = NSLock()
    private var inbox: [Command] = []
    private var stopping = false
    private var liveWorkers = 0
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)
    private var onResolution: (@Sendable ([(requestId: String, resolution: Resolution)]) -> Void)?
    /// Resolutions gathered during one pass of the bus loop, handed over together.
    private var resolved: [(requestId: String, resolution: Resolution)] = []

    // Touched by the bus thread only.
    private var pool: DecisionPool
    private var sequence: UInt64 = 0

    private let publishedEvents = Counter(label: "switchboard_bus_events_published_total")
    private let refusedFrames = Counter(label: "switchboard_bus_frames_refused_total")
    private let workersGauge = Gauge(label: "switchboard_bus_workers")

    /// The endpoints actually bound (a `:*` port resolved), for logs and tests.
    let boundEvents: String
    let boundDecisions: String

    /// Binds both sockets at once so that a bad endpoint fails start-up rather than the first call.
    init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        context = try ZMQContext()
        events = try ZMQSocket(context: context, type: .pub)
        decisions = try ZMQSocket(context: context, type: .router)
        wakeup = try Wakeup()
        do {
            try decisions.setRouterMandatory(true)
            try decisions.setRouterHandover(true)
            try decisions.setMaxMessageSize(Int64(BusSchema.maxFrameSize))
            boundEvents = try events.bind(configuration.eventsEndpoint)
            boundDecisions = try decisions.bind(configuration.decisionsEndpoint)
        } catch {
            events.close()
            decisions.close()
            context.close()
            throw error
        }
        pool = DecisionPool(configuration: .init(bridgeId: configuration.bridgeId,
                                                 heartbeatInterval: configuration.heartbeatInterval,
                                                 liveness: configuration.liveness))
    }

    /// Starts the bus thread. `onResolution` is called on that thread with the requests that ended
    /// other than by expiry (the caller's own deadline covers that), a batch per pass of the loop.
    func start(onResolution: @escaping @Sendable ([(requestId: String, resolution: Resolution)]) -> Void) {
        self.onResolution = onResolution
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "switchboard-bus"
        self.thread = thread
        thread.start()
    }

    /// Stops the bus thread after it has sent what is queued, and closes the sockets.
    func stop() {
        lock.withLock { stopping = true }
        wakeup.signal()
        if thread != nil { finished.wait() }
        events.close()
        decisions.close()
        context.close()
    }

    /// Workers in the pool right now (for health checks and tests).
    var workerCount: Int { lock.withLock { liveWorkers } }

    /// Queues an event; it gets the next sequence number on the bus thread, so numbers follow send order.
    func publish(callId: String, _ body: EventBody) {
        enqueue(.publish(callId: callId, body: body))
    }

    /// Publishes `call.offered` for a new call and queues its decision request for the worker pool.
    func offer(requestId: String, callId: String, offer: CallOffer, deadline: ContinuousClock.Instant) {
        enqueue(.offer(requestId: requestId, callId: callId, offer: offer, deadline: deadline))
    }

    private func enqueue(_ command: Command) {
        // One wake-up per batch: the bus thread empties the whole inbox each time it wakes.
        let wasEmpty = lock.withLock { () -> Bool in
            inbox.append(command)
            return inbox.count == 1
        }
        if wasEmpty { wakeup.signal() }
    }

    private func run() {
        var poller = ZMQPoller()
        let wakeIndex = poller.add(fileDescriptor: wakeup.fileDescriptor)
        let decisionsIndex = poller.add(decisions)
        while true {
            let now = ContinuousClock.now
            let ready: Set<Int>
            do {
                ready = try poller.poll(timeout: pool.nextTick(after: now) - now)
            } catch {
                logger.critical("bus poll failed; bus thread stops", metadata: ["bus.error": "\(error)"])
                return
            }
            if ready.contains(wakeIndex) { wakeup.drain() }
            let (commands, stop) = lock.withLock { () -> ([Command], Bool) in
                defer { inbox.removeAll(keepingCapacity: true) }
                return (inbox, stopping)
            }
            for command in commands { execute(command) }
            if stop { return }
            if ready.contains(decisionsIndex) { drainDecisions() }
            perform(pool.tick(now: .now))
            if !resolved.isEmpty {
                onResolution?(resolved)
                resolved.removeAll(keepingCapacity: true)
            }
        }
    }

    private func execute(_ command: Command) {
        switch command {
        case .publish(let callId, let body):
            send(callId: callId, body)
        case .offer(let requestId, let callId, let offer, let deadline):
            send(callId: callId, .callOffered(offer))
            perform(pool.submit(requestId: requestId, callId: callId, offer: offer, deadline: deadline, now: .now))
        }
    }

    /// Numbers and sends one event (bus thread only).
    private func send(callId: String, _ body: EventBody) {
        sequence += 1
        let event = Event(bridgeId: configuration.bridgeId, seq: sequence, timestamp: Date(), callId: callId, body: body)
        do {
            try events.send(event.frames(), dontWait: true)
            publishedEvents.increment()
        } catch {
            logger.error("event not published", metadata: ["bus.topic": "\(event.type)", "bus.seq": "\(sequence)", "bus.error": "\(error)"])
        }
    }

    private func drainDecisions() {
        while true {
            let frames: [[UInt8]]?
            do {
                frames = try decisions.receive(dontWait: true)
            } catch {
                logger.error("decisions receive failed", metadata: ["bus.error": "\(error)"])
                return
            }
            guard let frames else { return }
            // ROUTER gives [identity, payload]; a DEALER that adds an empty delimiter gives three frames.
            guard frames.count >= 2, let payload = frames.last else {
                refusedFrames.increment()
                logger.warning("refused decisions message", metadata: ["bus.reason": "expected [identity, json], got \(frames.count) frame(s)"])
                continue
            }
            perform(pool.receive(payload, from: frames[0], now: .now))
        }
    }

    private func perform(_ actions: [DecisionPool.Action]) {
        defer {
            let count = pool.workerCount
            lock.withLock { liveWorkers = count }
        }
        for action in actions {
            switch action {
            case .send(let identity, let message):
                do {
                    try decisions.send([identity, message.encoded()], dontWait: true)
                } catch {
                    // The worker disconnected: liveness removes it, and its requests are re-dispatched then.
                    logger.warning("could not reach worker", metadata: ["bus.type": "\(message.type)", "bus.error": "\(error)"])
                }
            case .deliver(let requestId, let decision, let workerId):
                resolved.append((requestId, .decided(decision, workerId: workerId)))
            case .fallback(let requestId, let cause):
                resolved.append((requestId, .fallback(cause)))
            case .workerJoined(let workerId):
                logger.info("worker joined", metadata: ["worker.id": "\(workerId)", "bus.workers": "\(pool.workerCount)"])
                workersGauge.record(pool.workerCount)
            case .workerLeft(let workerId):
                logger.info("worker left", metadata: ["worker.id": "\(workerId)", "bus.workers": "\(pool.workerCount)"])
                workersGauge.record(pool.workerCount)
            case .workerLost(let workerId):
                logger.warning("worker lost (no heartbeat)", metadata: ["worker.id": "\(workerId)", "bus.workers": "\(pool.workerCount)"])
                workersGauge.record(pool.workerCount)
            case .refused(let code, let message):
                refusedFrames.increment()
                logger.warning("refused decisions message", metadata: ["bus.error": "\(code)", "bus.reason": "\(message)"])
            case .expired(let requestId):
                logger.debug("decision request expired", metadata: ["bus.request_id": "\(requestId)"])
            }
        }
    }
}
