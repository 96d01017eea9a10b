import BusSchema
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
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
/// skip an event. The ZeroMQ sockets live on a ``ZMQServiceLoop`` of their own, as in ``Worker``.
public final class EventSubscriber: Service, Sendable {
    public typealias EventHandler = @Sendable (Event) async throws -> Void
    public typealias LossHandler = @Sendable (EventLoss) async -> Void
    public typealias CaughtUpHandler = @Sendable () async -> Void

    fileprivate enum Delivery: Sendable {
        case event(Event, replayed: Bool)
        case loss(EventLoss)
        case caughtUp
    }

    private struct Handlers {
        var event: EventHandler?
        var loss: LossHandler?
        var caughtUp: CaughtUpHandler?
    }

    private let configuration: SubscriberConfiguration
    private let logger: Logger
    private let handlers = Mutex(Handlers())
    /// Events handed to the run task and not yet handled; the loop stops reading the bus at `maxBacklog`.
    fileprivate let backlog = Mutex(0)
    fileprivate let stats = Mutex(SubscriberStatistics())

    /// Creates a subscriber; call ``onEvent(_:)`` and then run it.
    public init(configuration: SubscriberConfiguration, logger: Logger) {
        precondition(configuration.replayBatch > 0 && configuration.replayAttempts > 0 && configuration.maxBacklog > 0)
        self.configuration = configuration
        self.logger = logger
    }

    /// Sets the function that processes each event, in sequence order, one at a time.
    ///
    /// ```swift
    /// subscriber.onEvent { event in print(event.seq, event.type) }
    /// ```
    public func onEvent(_ handler: @escaping EventHandler) {
        handlers.withLock { $0.event = handler }
    }

    /// Sets the function told about events that can no longer be had (journal retention, replay
    /// endpoint unreachable). They are also logged and counted in ``statistics``.
    ///
    /// ```swift
    /// subscriber.onLoss { loss in alarms.raise("billing lost \(loss.count) events") }
    /// ```
    public func onLoss(_ handler: @escaping LossHandler) {
        handlers.withLock { $0.loss = handler }
    }

    /// Sets the function called once the bridge's journal has been read to its end and the event handler
    /// has had every event it held: what was missed before this run is known, what follows is live. Called
    /// once per run; never while the replay endpoint cannot be reached. A subscriber started with
    /// `resumeAfter` nil asks the journal only after its first live event (at the idle check).
    ///
    /// ```swift
    /// subscriber.onCaughtUp { logger.info("caught up with the journal") }
    /// ```
    public func onCaughtUp(_ handler: @escaping CaughtUpHandler) {
        handlers.withLock { $0.caughtUp = handler }
    }

    /// Counters for this run.
    public var statistics: SubscriberStatistics { stats.withLock { $0 } }

    /// Subscribes and delivers until graceful shutdown (or until the handler throws).
    public func run() async throws {
        let context = try ZMQContext()
        defer { context.close() }
        let (stream, continuation) = AsyncStream.makeStream(of: Delivery.self)
        let loop = try ZMQServiceLoop(name: "switchboard-subscriber-bus")
        let session: ZMQLoopBound<SubscriptionSession>
        do {
            session = try loop.submit { [self] in
                ZMQLoopBound(try SubscriptionSession(subscriber: self, configuration: configuration, context: context,
                                                     loop: loop, deliveries: continuation, logger: logger), loop: loop)
            }
        } catch {
            logger.error("subscriber stopped", metadata: ["bus.error": "\(error)"])
            try? loop.stop()
            throw error
        }

        var handlerError: (any Error)?
        await withGracefulShutdownHandler {
            var iterator = stream.makeAsyncIterator()
            while let delivery = await iterator.next() {
                do {
                    try await self.deliver(delivery, session: session)
                } catch {
                    handlerError = error
                    break
                }
            }
            loop.requestStop()
            // Wait for the loop to close its sockets before the context closes.
            while await iterator.next() != nil {}
        } onGracefulShutdown: {
            loop.requestStop()
        }
        if let handlerError { throw handlerError }
        try await loop.waitUntilStopped()
    }

    private func deliver(_ delivery: Delivery, session: ZMQLoopBound<SubscriptionSession>) async throws {
        switch delivery {
        case .event(let event, let replayed):
            let handler = handlers.withLock { $0.event }
            defer {
                let resume = backlog.withLock { backlog -> Bool in
                    backlog -= 1
                    return backlog == configuration.maxBacklog / 2
                }
                stats.withLock { stats in
                    stats.delivered += 1
                    if replayed { stats.replayed += 1 }
                }
                if resume { session.loop.execute { session.value.resumeReading() } }
            }
            try await handler?(event)
        case .loss(let loss):
            let handler = handlers.withLock { $0.loss }
            await handler?(loss)
        case .caughtUp:
            let handler = handlers.withLock { $0.caughtUp }
            await handler?()
        }
    }
}

/// The subscriber's sockets on its loop: the SUB for live events, the DEALER for replay, and the
/// ``SubscriptionMachine`` that orders what they bring.
private final class SubscriptionSession {
    private let subscriber: EventSubscriber
    private let configuration: SubscriberConfiguration
    private let loop: ZMQServiceLoop
    private let deliveries: AsyncStream<EventSubscriber.Delivery>.Continuation
    private let logger: Logger
    private let sub: ZMQSocket
    private let dealer: ZMQSocket
    private var machine: SubscriptionMachine
    private var reading = false
    private var announcedCaughtUp = false

    init(subscriber: EventSubscriber, configuration: SubscriberConfiguration, context: ZMQContext, loop: ZMQServiceLoop,
         deliveries: AsyncStream<EventSubscriber.Delivery>.Continuation, logger: Logger) throws {
        self.subscriber = subscriber
        self.configuration = configuration
        self.loop = loop
        self.deliveries = deliveries
        self.logger = logger
        sub = try ZMQSocket(context: context, type: .sub)
        do {
            dealer = try ZMQSocket(context: context, type: .dealer)
        } catch {
            sub.close()
            throw error
        }
        machine = SubscriptionMachine(
            resumeAfter: configuration.resumeAfter,
            configuration: .init(batch: configuration.replayBatch, idleInterval: configuration.idleCheckInterval,
                                 replayTimeout: configuration.replayTimeout, attempts: configuration.replayAttempts),
            now: .now
        )
        loop.onStop { [self] failure in
            sub.close()
            dealer.close()
            if let failure {
                logger.error("subscriber stopped", metadata: ["bus.error": "\(failure)"])
            } else {
                logger.info("subscriber stopped", metadata: ["bus.last_seq": "\(machine.last.map(String.init) ?? "-")"])
            }
            deliveries.finish()
        }
        try sub.setMaxMessageSize(Int64(BusSchema.maxFrameSize))
        // libzmq's default of 1,000 queued messages drops silently under a burst; gaps are replayed,
        // but a deeper queue avoids most of them.
        try sub.setHighWaterMarks(send: 1_000, receive: 50_000)
        for topic in configuration.topics { try sub.subscribe(topic) }
        if let curve = configuration.curve {
            try sub.setCurveClient(keyPair: curve.keyPair, serverKey: curve.serverKey(for: configuration.events))
        }
        try sub.connect(configuration.events)
        // Replay replies carry up to a batch of events.
        try dealer.setMaxMessageSize(Int64(BusSchema.maxFrameSize) * 64)
        if let curve = configuration.curve {
            try dealer.setCurveClient(keyPair: curve.keyPair, serverKey: curve.serverKey(for: configuration.replay))
        }
        try dealer.connect(configuration.replay)

        logger.info("subscribing", metadata: [
            "bus.events": "\(configuration.events)", "bus.replay": "\(configuration.replay)",
            "bus.resume_after": "\(configuration.resumeAfter.map(String.init) ?? "-")",
        ])
        perform(machine.start(now: .now), replayed: true)
        resumeReading()
        let tickInterval = min(configuration.idleCheckInterval, configuration.replayTimeout) / 4
        loop.afterEachPass { [self] now in
            // Paused, the machine's clock stops too: what it would ask for waits until reading resumes.
            guard reading else { return nil }
            perform(machine.tick(now: .now), replayed: true)
            let duplicates = machine.duplicates
            subscriber.stats.withLock { $0.duplicates = duplicates }
            // A full backlog stops reading until the run task has worked it down (`resumeReading`).
            if subscriber.backlog.withLock({ $0 >= configuration.maxBacklog }) {
                pauseReading()
                return nil
            }
            return now + tickInterval
        }
    }

    /// Reads the bus again once the run task has worked the backlog down.
    func resumeReading() {
        guard !reading else { return }
        reading = true
        loop.watch(sub) { [unowned self] in
            let now = ContinuousClock.now
            while let frames = try sub.receive(dontWait: true) {
                guard let frame = frames.last, let event = parseEvent(frame) else { continue }
                perform(machine.receiveLive(event, now: now), replayed: false)
            }
        }
        loop.watch(dealer) { [unowned self] in
            let now = ContinuousClock.now
            while let frames = try dealer.receive(dontWait: true) {
                guard let frame = frames.last else { continue }
                perform(handleReplayReply(frame, machine: &machine, now: now), replayed: true)
                if machine.caughtUp, !announcedCaughtUp {
                    // Queued behind the events just delivered, so the handler runs after them.
                    announcedCaughtUp = true
                    deliveries.yield(.caughtUp)
                }
            }
        }
    }

    private func pauseReading() {
        guard reading else { return }
        reading = false
        loop.unwatch(sub)
        loop.unwatch(dealer)
    }

    private func perform(_ actions: [SubscriptionMachine.Action], replayed: Bool) {
        for action in actions {
            switch action {
            case .deliver(let sequenced):
                guard let event = sequenced.event else {
                    subscriber.stats.withLock { $0.unknownSkipped += 1 }
                    logger.debug("skipped an event of unknown type", metadata: ["bus.type": "\(sequenced.type)", "bus.seq": "\(sequenced.seq)"])
                    continue
                }
                guard configuration.topics.contains(where: { sequenced.type.hasPrefix($0) }) else {
                    subscriber.stats.withLock { $0.filtered += 1 }
                    continue
                }
                subscriber.backlog.withLock { $0 += 1 }
                deliveries.yield(.event(event, replayed: replayed))
            case .loss(let loss):
                subscriber.stats.withLock { $0.lost += loss.count }
                logger.error("events lost", metadata: [
                    "bridge.id": "\(loss.bridgeId ?? "-")", "bus.loss.from": "\(loss.range.lowerBound)",
                    "bus.loss.to": "\(loss.range.upperBound)", "bus.loss.reason": "\(loss.reason.rawValue)",
                ])
                deliveries.yield(.loss(loss))
            case .requestReplay(let requestId, let fromSeq, let max):
                subscriber.stats.withLock { $0.replayRequests += 1 }
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

