import BusSchema
import Foundation
import Logging
import ServiceLifecycle
import ZeroMQ

/// Where a subscriber listens, where it replays from, and where it starts.
public struct SubscriberConfiguration: Sendable {
    /// The bridge's events endpoint (PUB), e.g. `tcp://127.0.0.1:5570`.
    public var events: String
    /// The same bridge's replay endpoint (ROUTER), e.g. `tcp://127.0.0.1:5572`.
    public var replay: String
    /// Topic prefixes to deliver (`"call."`); `[""]` is everything. Filtered events still advance the
    /// sequence, so a filter saves handler calls, not bus traffic.
    public var topics: [String]
    /// The last sequence number the application has durably processed; delivery starts right after it,
    /// replaying what was missed. Nil: start with the first live event heard.
    public var resumeAfter: UInt64?
    /// After this long without traffic the subscriber asks the replay endpoint for anything newer, so
    /// events lost at the tail of the stream are found without waiting for the next live event.
    public var idleCheckInterval: Duration
    /// A replay request unanswered within this is sent again; after `replayAttempts` tries a gap is a loss.
    public var replayTimeout: Duration
    /// Tries before a gap that cannot be replayed is reported through `onLoss`.
    public var replayAttempts: Int
    /// Events asked for per replay request.
    public var replayBatch: Int
    /// Events handed out but not yet handled above which the subscriber stops reading the bus; what
    /// it misses meanwhile is replayed afterwards.
    public var maxBacklog: Int
    /// CURVE client settings when the bridge requires CURVE (the same as a worker's).
    public var curve: WorkerConfiguration.Curve?

    /// ```swift
    /// SubscriberConfiguration(events: "tcp://127.0.0.1:5570", replay: "tcp://127.0.0.1:5572", resumeAfter: cursor)
    /// ```
    public init(events: String, replay: String, topics: [String] = [""], resumeAfter: UInt64? = nil,
                idleCheckInterval: Duration = .seconds(3), replayTimeout: Duration = .seconds(2), replayAttempts: Int = 3,
                replayBatch: Int = 1000, maxBacklog: Int = 5000, curve: WorkerConfiguration.Curve? = nil) {
        self.events = events
        self.replay = replay
        self.topics = topics
        self.resumeAfter = resumeAfter
        self.idleCheckInterval = idleCheckInterval
        self.replayTimeout = replayTimeout
        self.replayAttempts = replayAttempts
        self.replayBatch = replayBatch
        self.maxBacklog = maxBacklog
        self.curve = curve
    }
}

/// What a subscriber has seen so far in this run.
public struct SubscriberStatistics: Equatable, Sendable {
    /// Events given to the handler.
    public var delivered = 0
    /// Of those, how many were delivered while catching up through the replay endpoint.
    public var replayed = 0
    /// Events received twice (live and replayed) and dropped.
    public var duplicates = 0
    /// Events of a type this build does not know, skipped (their sequence numbers still count).
    public var unknownSkipped = 0
    /// Events outside the topic filter, skipped.
    public var filtered = 0
    /// Events reported through `onLoss`.
    public var lost: UInt64 = 0
    /// Replay requests sent.
    public var replayRequests = 0
}

/// Receives a bridge's call events in sequence order, each exactly once, replaying what the live
/// stream missed (late start, a dropped message, a restart of this process) from the bridge's journal.
///
/// ```swift
/// let cursor = try store.lastSeq()          // what the application already processed
/// let subscriber = EventSubscriber(configuration: .init(events: "tcp://127.0.0.1:5570",
///                                                       replay: "tcp://127.0.0.1:5572",
///                                                       resumeAfter: cursor), logger: logger)
/// subscriber.onEvent { event in
///     try store.write { db in                 // effects and cursor in one transaction: exactly once
///         try apply(event, db)
///         try saveCursor(event.bridgeId, event.seq, db)
///     }
/// }
/// subscriber.onLoss { loss in logger.error("events lost", metadata: ["bus.loss": "\(loss)"]) }
/// try await ServiceGroup(services: [subscriber], gracefulShutdownSignals: [.sigterm], logger: logger).run()
/// ```
///
/// The handler is awaited before the next event is delivered (back-pressure). When it throws, the
/// subscriber stops and `run()` rethrows, so the process restarts from its durable cursor rather than
/// skip an event. The ZeroMQ sockets live on a thread of their own, as in ``Worker``.
public final class EventSubscriber: Service, @unchecked Sendable {
    public typealias EventHandler = @Sendable (Event) async throws -> Void
    public typealias LossHandler = @Sendable (EventLoss) async -> Void

    private enum Delivery {
        case event(Event, replayed: Bool)
        case loss(EventLoss)
    }

    private let configuration: SubscriberConfiguration
    private let logger: Logger
    // Guards the handlers, `stopping`, `backlog`, `stats` and `failure`, shared by the bus thread and the run task.
    private let lock = NSLock()
    private var eventHandler: EventHandler?
    private var lossHandler: LossHandler?
    private var stopping = false
    private var backlog = 0
    private var stats = SubscriberStatistics()
    private var failure: Error?
    private let wakeup: Wakeup

    /// Creates a subscriber; call ``onEvent(_:)`` and then run it.
    public init(configuration: SubscriberConfiguration, logger: Logger) {
        precondition(configuration.replayBatch > 0 && configuration.replayAttempts > 0 && configuration.maxBacklog > 0)
        self.configuration = configuration
        self.logger = logger
        // A pipe can only fail when the process is out of descriptors.
        self.wakeup = try! Wakeup()
    }

    /// Sets the function that processes each event, in sequence order, one at a time.
    ///
    /// ```swift
    /// subscriber.onEvent { event in print(event.seq, event.type) }
    /// ```
    public func onEvent(_ handler: @escaping EventHandler) {
        lock.withLock { eventHandler = handler }
    }

    /// Sets the function told about events that can no longer be had (journal retention, replay
    /// endpoint unreachable). They are also logged and counted in ``statistics``.
    ///
    /// ```swift
    /// subscriber.onLoss { loss in alarms.raise("billing lost \(loss.count) events") }
    /// ```
    public func onLoss(_ handler: @escaping LossHandler) {
        lock.withLock { lossHandler = handler }
    }

    /// Counters for this run.
    public var statistics: SubscriberStatistics { lock.withLock { stats } }

    /// Subscribes and delivers until graceful shutdown (or until the handler throws).
    public func run() async throws {
        let context = try ZMQContext()
        defer { context.close() }
        let (stream, continuation) = AsyncStream.makeStream(of: Delivery.self)
        let thread = Thread { [self] in
            do {
                try serve(context: context, deliveries: continuation)
            } catch {
                logger.error("subscriber stopped", metadata: ["bus.error": "\(error)"])
                lock.withLock { failure = error }
            }
            continuation.finish()
        }
        thread.name = "switchboard-subscriber-bus"
        thread.start()

        var handlerError: Error?
        await withGracefulShutdownHandler {
            var iterator = stream.makeAsyncIterator()
            while let delivery = await iterator.next() {
                do {
                    try await self.deliver(delivery)
                } catch {
                    handlerError = error
                    break
                }
            }
            self.stop()
            // Wait for the bus thread to close its sockets before the context closes.
            while await iterator.next() != nil {}
        } onGracefulShutdown: { [self] in
            stop()
        }
        if let handlerError { throw handlerError }
        if let failure = lock.withLock({ failure }) { throw failure }
    }

    private func stop() {
        lock.withLock { stopping = true }
        wakeup.signal()
    }

    private func deliver(_ delivery: Delivery) async throws {
        switch delivery {
        case .event(let event, let replayed):
            let handler = lock.withLock { eventHandler }
            defer {
                let resume = lock.withLock { () -> Bool in
                    backlog -= 1
                    stats.delivered += 1
                    if replayed { stats.replayed += 1 }
                    return backlog == configuration.maxBacklog / 2
                }
                if resume { wakeup.signal() }
            }
            try await handler?(event)
        case .loss(let loss):
            let handler = lock.withLock { lossHandler }
            await handler?(loss)
        }
    }

    // MARK: The bus thread

    private func serve(context: ZMQContext, deliveries: AsyncStream<Delivery>.Continuation) throws {
        let sub = try ZMQSocket(context: context, type: .sub)
        defer { sub.close() }
        try sub.setMaxMessageSize(Int64(BusSchema.maxFrameSize))
        // libzmq's default of 1,000 queued messages drops silently under a burst; gaps are replayed,
        // but a deeper queue avoids most of them.
        try sub.setHighWaterMarks(send: 1_000, receive: 50_000)
        for topic in configuration.topics { try sub.subscribe(topic) }
        if let curve = configuration.curve {
            try sub.setCurveClient(keyPair: curve.keyPair, serverKey: curve.serverKey(for: configuration.events))
        }
        try sub.connect(configuration.events)
        let dealer = try ZMQSocket(context: context, type: .dealer)
        defer { dealer.close() }
        // Replay replies carry up to a batch of events.
        try dealer.setMaxMessageSize(Int64(BusSchema.maxFrameSize) * 64)
        if let curve = configuration.curve {
            try dealer.setCurveClient(keyPair: curve.keyPair, serverKey: curve.serverKey(for: configuration.replay))
        }
        try dealer.connect(configuration.replay)

        var machine = SubscriptionMachine(
            resumeAfter: configuration.resumeAfter,
            configuration: .init(batch: configuration.replayBatch, idleInterval: configuration.idleCheckInterval,
                                 replayTimeout: configuration.replayTimeout, attempts: configuration.replayAttempts),
            now: .now
        )
        logger.info("subscribing", metadata: [
            "bus.events": "\(configuration.events)", "bus.replay": "\(configuration.replay)",
            "bus.resume_after": "\(configuration.resumeAfter.map(String.init) ?? "-")",
        ])
        perform(machine.start(now: .now), replayed: true, dealer: dealer, deliveries: deliveries)
        let tickInterval = min(configuration.idleCheckInterval, configuration.replayTimeout) / 4

        while true {
            let paused = lock.withLock { backlog >= configuration.maxBacklog }
            var poller = ZMQPoller()
            let wakeIndex = poller.add(fileDescriptor: wakeup.fileDescriptor)
            let subIndex = paused ? -1 : poller.add(sub)
            let dealerIndex = paused ? -1 : poller.add(dealer)
            let ready = try poller.poll(timeout: tickInterval)
            if ready.contains(wakeIndex) { wakeup.drain() }
            if lock.withLock({ stopping }) {
                logger.info("subscriber stopped", metadata: ["bus.last_seq": "\(machine.last.map(String.init) ?? "-")"])
                return
            }
            if paused { continue }
            let now = ContinuousClock.now
            if ready.contains(subIndex) {
                while let frames = try sub.receive(dontWait: true) {
                    guard let frame = frames.last, let event = parseEvent(frame) else { continue }
                    perform(machine.receiveLive(event, now: now), replayed: false, dealer: dealer, deliveries: deliveries)
                }
            }
            if ready.contains(dealerIndex) {
                while let frames = try dealer.receive(dontWait: true) {
                    guard let frame = frames.last else { continue }
                    perform(handleReplayReply(frame, machine: &machine, now: now), replayed: true, dealer: dealer, deliveries: deliveries)
                }
            }
            perform(machine.tick(now: .now), replayed: true, dealer: dealer, deliveries: deliveries)
            let duplicates = machine.duplicates
            lock.withLock { stats.duplicates = duplicates }
        }
    }

    private func perform(_ actions: [SubscriptionMachine.Action], replayed: Bool, dealer: ZMQSocket,
                         deliveries: AsyncStream<Delivery>.Continuation) {
        for action in actions {
            switch action {
            case .deliver(let sequenced):
                guard let event = sequenced.event else {
                    lock.withLock { stats.unknownSkipped += 1 }
                    logger.debug("skipped an event of unknown type", metadata: ["bus.type": "\(sequenced.type)", "bus.seq": "\(sequenced.seq)"])
                    continue
                }
                guard configuration.topics.contains(where: { sequenced.type.hasPrefix($0) }) else {
                    lock.withLock { stats.filtered += 1 }
                    continue
                }
                lock.withLock { backlog += 1 }
                deliveries.yield(.event(event, replayed: replayed))
            case .loss(let loss):
                lock.withLock { stats.lost += loss.count }
                logger.error("events lost", metadata: [
                    "bridge.id": "\(loss.bridgeId ?? "-")", "bus.loss.from": "\(loss.range.lowerBound)",
                    "bus.loss.to": "\(loss.range.upperBound)", "bus.loss.reason": "\(loss.reason.rawValue)",
                ])
                deliveries.yield(.loss(loss))
            case .requestReplay(let requestId, let fromSeq, let max):
                lock.withLock { stats.replayRequests += 1 }
                do {
                    try dealer.send([ReplayRequest(requestId: requestId, fromSeq: fromSeq, max: max).encoded()], dontWait: true)
                    logger.debug("replay requested", metadata: ["bus.request_id": "\(requestId)", "bus.from_seq": "\(fromSeq)"])
                } catch {
                    // Not connected yet, or the queue is full: the machine's timeout sends it again.
                    logger.debug("could not send replay request", metadata: ["bus.error": "\(error)"])
                }
            }
        }
    }

    private func handleReplayReply(_ frame: [UInt8], machine: inout SubscriptionMachine,
                                   now: ContinuousClock.Instant) -> [SubscriptionMachine.Action] {
        let reply: ReplayReply
        do {
            reply = try ReplayReply.decode(frame)
        } catch {
            logger.warning("refused a replay reply", metadata: ["bus.error": "\(error)"])
            return []
        }
        switch reply {
        case .events(let requestId, let events):
            return machine.receiveReplayEvents(requestId: requestId, events: events.map(SequencedEvent.init), now: now)
        case .end(let end):
            return machine.receiveReplayEnd(requestId: end.requestId, bridgeId: end.bridgeId, firstSeq: end.firstSeq,
                                            lastSeq: end.lastSeq, nextSeq: end.nextSeq, now: now)
        case .error(let error):
            logger.warning("replay refused", metadata: [
                "bus.request_id": "\(error.requestId ?? "")", "bus.error": "\(error.code): \(error.message)",
            ])
            return machine.receiveReplayError(requestId: error.requestId ?? "", now: now)
        }
    }

    /// Reads the sequence fields every event has, then the event itself when its type is known.
    private func parseEvent(_ frame: [UInt8]) -> SequencedEvent? {
        let received: ReceivedEvent
        do {
            received = try ReceivedEvent.decode(frame)
        } catch {
            logger.warning("refused an event without type, bridge_id and seq", metadata: ["bus.error": "\(error)"])
            return nil
        }
        if received.event == nil {
            logger.debug("event not decodable by this build", metadata: ["bus.type": "\(received.type)", "bus.seq": "\(received.seq)"])
        }
        return SequencedEvent(received)
    }
}

extension SequencedEvent {
    init(_ received: ReceivedEvent) {
        self.init(bridgeId: received.bridgeId, seq: received.seq, type: received.type, event: received.event)
    }
}

