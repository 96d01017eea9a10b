import BusSchema
import Foundation
import Logging
import Metrics
import ZeroMQ

/// The bridge's ZeroMQ side: the events PUB socket, the decisions ROUTER socket, the replay ROUTER
/// socket and the commands ROUTER socket, on a thread of their own, plus the event journal.
///
/// ZeroMQ sockets belong to one thread, so the SIP side never touches them: it queues commands here
/// (`publish`, `offer`) and gets resolutions back through `onResolution`, on the bus thread;
/// the receiver hops to its own event loop.
///
/// Events are numbered on the bus thread, handed to the journal's writer thread in a batch per pass of
/// the loop, and published when that batch comes back committed, so an event on the wire is always
/// replayable. Decision requests do not wait for the journal: only the PUB send does.
final class BusEndpoints: @unchecked Sendable {
    struct Configuration {
        var bridgeId: String
        var eventsEndpoint: String
        var decisionsEndpoint: String
        var replayEndpoint: String
        var commandsEndpoint: String
        var journal: EventJournal.Configuration
        var heartbeatInterval: Duration = .seconds(1)
        var liveness: Int = 3
        /// CURVE on every bus socket, admitting only these client keys; nil serves plain ZeroMQ.
        var curve: CurveServer?
    }

    /// The bridge's CURVE identity and the clients (workers, subscribers) it admits.
    struct CurveServer {
        var keyPair: CurveKeyPair
        var allowedClients: Set<CurvePublicKey>
    }

    /// How a decision request ended, as the pool saw it.
    enum Resolution {
        case decided(Decision, workerId: String)
        case fallback(DecisionCause)
    }

    private enum Command {
        case publish(callId: String?, body: EventBody)
        /// Publishes `call.offered` and asks the pool, in one hand-over.
        case offer(requestId: String, callId: String, offer: CallOffer, deadline: ContinuousClock.Instant)
        /// A command's reply, back to the client that sent it.
        case reply(envelope: [[UInt8]], frame: [UInt8])
    }

    private let configuration: Configuration
    private let logger: Logger
    private let context: ZMQContext
    private let events: ZMQSocket
    private let decisions: ZMQSocket
    private let replay: ZMQSocket
    private let commands: ZMQSocket
    private let wakeup: Wakeup
    private var zap: ZAPAuthenticator?
    private let deniedClients = Counter(label: "switchboard_bus_clients_refused_total")
    private let journal: EventJournal
    // Guards `inbox`, `committed` and `stopping`, shared by the SIP event loop, the journal's writer
    // thread and the bus thread.
    private let lock = NSLock()
    private var inbox: [Command] = []
    /// Batches the journal has committed, waiting to be published (in seq order).
    private var committed: [[EventJournal.Entry]] = []
    private var stopping = false
    private var liveWorkers = 0
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)
    private var onResolution: (@Sendable ([(requestId: String, resolution: Resolution)]) -> Void)?
    private var onCommand: (@Sendable (_ request: CommandRequest, _ envelope: [[UInt8]]) -> Void)?
    /// Resolutions gathered during one pass of the bus loop, handed over together.
    private var resolved: [(requestId: String, resolution: Resolution)] = []

    // Touched by the bus thread only.
    private var pool: DecisionPool
    private var sequence: UInt64
    /// Events numbered in this pass of the loop, handed to the journal at its end.
    private var unjournaled: [EventJournal.Entry] = []

    private let publishedEvents = Counter(label: "switchboard_bus_events_published_total")
    private let refusedFrames = Counter(label: "switchboard_bus_frames_refused_total")
    private let workersGauge = Gauge(label: "switchboard_bus_workers")

    /// The endpoints actually bound (a `:*` port resolved), for logs and tests.
    let boundEvents: String
    let boundDecisions: String
    let boundReplay: String
    let boundCommands: String

    /// Opens the journal and binds every socket at once, so that a bad file or endpoint fails start-up
    /// rather than the first call.
    init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        context = try ZMQContext()
        events = try ZMQSocket(context: context, type: .pub)
        decisions = try ZMQSocket(context: context, type: .router)
        replay = try ZMQSocket(context: context, type: .router)
        commands = try ZMQSocket(context: context, type: .router)
        wakeup = try Wakeup()
        do {
            if let curve = configuration.curve {
                // The ZAP handler must run before a CURVE socket binds: without one libzmq admits any key.
                let denied = deniedClients
                zap = try ZAPAuthenticator(context: context, allowedKeys: curve.allowedClients) { [logger] denial in
                    denied.increment()
                    logger.warning("bus client refused", metadata: ["bus.peer_key": "\(denial.publicKey.map(\.z85) ?? "-")",
                                                                    "bus.peer": "\(denial.address)", "bus.reason": "\(denial.statusText)"])
                }
                for socket in [events, decisions, replay, commands] {
                    try socket.setZAPDomain("switchboard")
                    try socket.setCurveServer(secretKey: curve.keyPair.secretKey)
                }
            }
            // Let the last events (bridge.stopping, the shutdown fallbacks) leave before the socket closes.
            try events.setLinger(.seconds(1))
            // A PUB drops silently past its high-water mark (libzmq's default is 1,000 per subscriber),
            // and events are published in bursts after each journal commit: queue far more, bounded.
            // A subscriber that still falls behind finds the gap by seq and replays it from the journal.
            try events.setHighWaterMarks(send: 50_000, receive: 1_000)
            try decisions.setRouterMandatory(true)
            try decisions.setRouterHandover(true)
            try decisions.setMaxMessageSize(Int64(BusSchema.maxFrameSize))
            try replay.setRouterMandatory(true)
            try replay.setMaxMessageSize(Int64(BusSchema.maxFrameSize))
            try commands.setRouterMandatory(true)
            try commands.setMaxMessageSize(Int64(BusSchema.maxFrameSize))
            boundEvents = try events.bind(configuration.eventsEndpoint)
            boundDecisions = try decisions.bind(configuration.decisionsEndpoint)
            boundReplay = try replay.bind(configuration.replayEndpoint)
            boundCommands = try commands.bind(configuration.commandsEndpoint)
            journal = try EventJournal(configuration: configuration.journal, logger: logger)
        } catch {
            events.close()
            decisions.close()
            replay.close()
            commands.close()
            zap?.stop()
            context.close()
            throw error
        }
        if configuration.curve == nil {
            for endpoint in [boundEvents, boundDecisions, boundReplay, boundCommands] where !Self.isLocal(endpoint) {
                logger.warning("bus endpoint reachable beyond loopback without CURVE: anyone who can connect can route calls and read events",
                               metadata: ["bus.endpoint": "\(endpoint)"])
            }
        }
        sequence = journal.lastSeqAtOpen
        pool = DecisionPool(configuration: .init(bridgeId: configuration.bridgeId,
                                                 heartbeatInterval: configuration.heartbeatInterval,
                                                 liveness: configuration.liveness))
    }

    /// Starts the journal and the bus thread, whose first event is `announcement` (`bridge.started`).
    /// `onResolution` is called on the bus thread with the requests that ended other than by expiry
    /// (the caller's own deadline covers that), a batch per pass of the loop; `onCommand` with each
    /// well-formed command, to be answered with `reply(_:to:)`.
    func start(announcing announcement: EventBody,
               onResolution: @escaping @Sendable ([(requestId: String, resolution: Resolution)]) -> Void,
               onCommand: @escaping @Sendable (_ request: CommandRequest, _ envelope: [[UInt8]]) -> Void) {
        self.onResolution = onResolution
        self.onCommand = onCommand
        journal.start { [self] batch in
            lock.withLock { committed.append(batch) }
            wakeup.signal()
        }
        let thread = Thread { [self] in
            run(announcement: announcement)
            finished.signal()
        }
        thread.name = "switchboard-bus"
        self.thread = thread
        thread.start()
    }

    /// Stops the bus thread after it has journaled and sent what is queued, and closes the sockets and the journal.
    func stop() {
        lock.withLock { stopping = true }
        wakeup.signal()
        if thread != nil { finished.wait() }
        events.close()
        decisions.close()
        replay.close()
        commands.close()
        zap?.stop()
        context.close()
        journal.stop()
    }

    /// Loopback TCP, IPC and inproc endpoints are local; anything else can be reached from the network.
    static func isLocal(_ endpoint: String) -> Bool {
        guard endpoint.hasPrefix("tcp://") else { return endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") }
        let address = endpoint.dropFirst("tcp://".count)
        let host = address.lastIndex(of: ":").map { address[..<$0] } ?? address
        return host.hasPrefix("127.") || host == "localhost" || host == "[::1]" || host == "::1"
    }

    /// The sequence number of this run's first event (`bridge.started`): one past the journal's newest.
    var nextSeqAtStart: UInt64 { journal.lastSeqAtOpen + 1 }

    /// Workers in the pool right now (for health checks and tests).
    var workerCount: Int { lock.withLock { liveWorkers } }

    /// Queues an event; it gets the next sequence number on the bus thread, so numbers follow send order.
    func publish(callId: String?, _ body: EventBody) {
        enqueue(.publish(callId: callId, body: body))
    }

    /// Sends a command's reply to the client whose request came in `envelope`.
    func reply(_ reply: CommandReply, to envelope: [[UInt8]]) {
        var frame = reply.frame()
        if frame.count > BusSchema.maxFrameSize {
            // A client drops its connection on a frame over the limit, losing every reply in flight:
            // refuse this one by name instead (a `list` of more than about 800 calls).
            frame = CommandReply(requestId: reply.requestId, outcome: .failed(ErrorReply(
                code: .tooLarge, message: "the reply would be \(frame.count) bytes, over the bus limit of \(BusSchema.maxFrameSize)"))).frame()
        }
        enqueue(.reply(envelope: envelope, frame: frame))
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

    private func run(announcement: EventBody) {
        var poller = ZMQPoller()
        let wakeIndex = poller.add(fileDescriptor: wakeup.fileDescriptor)
        let decisionsIndex = poller.add(decisions)
        let replayIndex = poller.add(replay)
        let commandsIndex = poller.add(commands)
        send(callId: nil, announcement)
        journalPending()
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
            publishCommitted()
            for command in commands { execute(command) }
            if stop {
                // Shutdown may wait for the disk: journal and publish everything already numbered.
                journalPending()
                journal.flush()
                publishCommitted()
                return
            }
            if ready.contains(decisionsIndex) { drainDecisions() }
            if ready.contains(replayIndex) { drainReplay() }
            if ready.contains(commandsIndex) { drainCommands() }
            perform(pool.tick(now: .now))
            journalPending()
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
        case .reply(let envelope, let frame):
            do {
                try commands.send(envelope + [frame], dontWait: true)
            } catch {
                logger.warning("could not reach command client", metadata: ["bus.error": "\(error)"])
            }
        }
    }

    /// Reads every waiting command; a malformed one is answered here with the problem, the rest go to the SIP side.
    private func drainCommands() {
        while true {
            let frames: [[UInt8]]?
            do {
                frames = try commands.receive(dontWait: true)
            } catch {
                logger.error("commands receive failed", metadata: ["bus.error": "\(error)"])
                return
            }
            guard let frames else { return }
            guard frames.count >= 2, let payload = frames.last else {
                refusedFrames.increment()
                logger.warning("refused command", metadata: ["bus.reason": "expected [identity, json], got \(frames.count) frame(s)"])
                continue
            }
            let envelope = Array(frames.dropLast())
            do {
                onCommand?(try CommandRequest.decode(payload), envelope)
            } catch {
                refusedFrames.increment()
                logger.warning("refused command", metadata: ["bus.error": "\(error.code)", "bus.reason": "\(error.message)"])
                let reply = CommandReply(requestId: CommandRequest.requestId(in: payload) ?? "",
                                         outcome: .failed(ErrorReply(code: error.code, message: error.message)))
                execute(.reply(envelope: envelope, frame: reply.frame()))
            }
        }
    }

    /// Numbers one event and queues it for the journal (bus thread only); it is sent once committed.
    private func send(callId: String?, _ body: EventBody) {
        sequence += 1
        let event = Event(bridgeId: configuration.bridgeId, seq: sequence, timestamp: Date(), callId: callId, body: body)
        unjournaled.append(EventJournal.Entry(seq: sequence, type: event.type, callId: callId,
                                              ts: Event.wireTimestamp(event.timestamp), json: event.jsonBytes()))
    }

    /// Hands the events numbered in this pass to the journal's writer: one batch, one transaction at most.
    private func journalPending() {
        guard !unjournaled.isEmpty else { return }
        journal.append(unjournaled)
        unjournaled.removeAll(keepingCapacity: true)
    }

    /// Sends the batches the journal has committed, in seq order.
    private func publishCommitted() {
        let batches = lock.withLock { () -> [[EventJournal.Entry]] in
            defer { committed.removeAll(keepingCapacity: true) }
            return committed
        }
        for entry in batches.joined() {
            do {
                try events.send([Array(entry.type.utf8), entry.json], dontWait: true)
                publishedEvents.increment()
            } catch {
                logger.error("event not published", metadata: ["bus.topic": "\(entry.type)", "bus.seq": "\(entry.seq)", "bus.error": "\(error)"])
            }
        }
    }

    private func drainReplay() {
        while true {
            let frames: [[UInt8]]?
            do {
                frames = try replay.receive(dontWait: true)
            } catch {
                logger.error("replay receive failed", metadata: ["bus.error": "\(error)"])
                return
            }
            guard let frames else { return }
            guard frames.count >= 2, let payload = frames.last else {
                refusedFrames.increment()
                logger.warning("refused replay message", metadata: ["bus.reason": "expected [identity, json], got \(frames.count) frame(s)"])
                continue
            }
            // Replies go back with the same envelope (identity, and the empty delimiter a REQ-style client adds).
            answerReplay(payload, envelope: Array(frames.dropLast()))
        }
    }

    /// Answers one replay request from the journal's reader connection; `max` bounds the time it takes.
    private func answerReplay(_ payload: [UInt8], envelope: [[UInt8]]) {
        let request: ReplayRequest
        do {
            request = try ReplayRequest.decode(payload)
        } catch {
            refusedFrames.increment()
            logger.warning("refused replay message", metadata: ["bus.error": "\(error.error.code)", "bus.reason": "\(error.error.message)"])
            sendReplay(ReplayReply.error(error.reply).encoded(), to: envelope)
            return
        }
        let range: EventJournal.Range
        do {
            range = try journal.read(from: request.fromSeq, max: request.max)
        } catch {
            logger.error("journal read failed", metadata: ["journal.error": "\(error)", "bus.request_id": "\(request.requestId)"])
            sendReplay(ReplayReply.error(ErrorReply(code: .journalUnavailable, message: "the journal could not be read: \(error)",
                                                    requestId: request.requestId)).encoded(), to: envelope)
            return
        }
        var batch: [[UInt8]] = []
        var batchBytes = 0
        // Room for the frame's own fields, so a full batch stays under the bus' frame limit.
        let budget = BusSchema.maxFrameSize - 1024
        for (_, json) in range.events {
            if batch.count == ReplayReply.batchSize || (!batch.isEmpty && batchBytes + json.count + 1 > budget) {
                sendReplay(ReplayReply.eventsFrame(requestId: request.requestId, journaled: batch), to: envelope)
                batch.removeAll(keepingCapacity: true)
                batchBytes = 0
            }
            batch.append(json)
            batchBytes += json.count + 1
        }
        if !batch.isEmpty { sendReplay(ReplayReply.eventsFrame(requestId: request.requestId, journaled: batch), to: envelope) }
        let next = range.events.last.map { $0.seq + 1 } ?? max(request.fromSeq, range.lastSeq + 1)
        sendReplay(ReplayReply.end(ReplayEnd(requestId: request.requestId, bridgeId: configuration.bridgeId,
                                             firstSeq: range.firstSeq, lastSeq: range.lastSeq, nextSeq: next)).encoded(),
                   to: envelope)
    }

    private func sendReplay(_ frame: [UInt8], to envelope: [[UInt8]]) {
        do {
            try replay.send(envelope + [frame], dontWait: true)
        } catch {
            // The client went away (or stopped reading); it asks again from the last seq it got.
            logger.warning("could not reach replay client", metadata: ["bus.error": "\(error)"])
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
                send(callId: nil, .workerJoined(WorkerInfo(workerId: workerId)))
            case .workerLeft(let workerId):
                logger.info("worker left", metadata: ["worker.id": "\(workerId)", "bus.workers": "\(pool.workerCount)"])
                workersGauge.record(pool.workerCount)
                send(callId: nil, .workerLeft(WorkerInfo(workerId: workerId)))
            case .workerLost(let workerId):
                logger.warning("worker lost (no heartbeat)", metadata: ["worker.id": "\(workerId)", "bus.workers": "\(pool.workerCount)"])
                workersGauge.record(pool.workerCount)
                send(callId: nil, .workerLost(WorkerInfo(workerId: workerId)))
            case .refused(let code, let message):
                refusedFrames.increment()
                logger.warning("refused decisions message", metadata: ["bus.error": "\(code)", "bus.reason": "\(message)"])
            case .expired(let requestId):
                logger.debug("decision request expired", metadata: ["bus.request_id": "\(requestId)"])
            }
        }
    }
}
