import BusSchema
import Logging
import Metrics
import ZeroMQ

/// The bridge's ZeroMQ side: the events PUB socket (``EventPublisher``), the decisions ROUTER socket
/// (``DecisionBroker``), the replay ROUTER socket (``ReplayServer``) and the commands ROUTER socket
/// (``CommandServer``), on one ``ZMQServiceLoop`` of their own, plus the event journal.
///
/// ZeroMQ sockets belong to one thread, so the SIP side never touches them: it queues work here
/// (`publish`, `offer`, `reply`) and gets resolutions back through `onResolution`, on the bus loop;
/// the receiver hops to its own event loop. Decision requests do not wait for the journal: only the
/// PUB send does.
final class BusEndpoints: Sendable {
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

    /// Who uses a bus socket; its name is the socket's ZAP domain, so a key can be admitted for one role only.
    enum Role: String, CaseIterable {
        /// The decisions socket.
        case workers
        /// The events and replay sockets.
        case subscribers
        /// The commands socket.
        case commanders
    }

    /// The bridge's CURVE identity and the clients it admits: on every socket, or on one role's.
    struct CurveServer {
        var keyPair: CurveKeyPair
        var keys: BusKeys
        /// Where `keys` came from, read again every `reloadInterval` (``BusAdmission``); nil: `keys` for the whole run.
        var directories: BusKeys.Directories?
        var reloadInterval: Duration = .seconds(2)
    }

    /// How a decision request ended, as the pool saw it.
    enum Resolution {
        case decided(Decision, workerId: String)
        case fallback(DecisionCause)
    }

    /// The four socket owners, on the loop; work from the SIP side waits here until `start`.
    private final class Owners {
        let publisher: EventPublisher
        let replay: ReplayServer
        let decisions: DecisionBroker
        let commands: CommandServer
        /// Work queued before `start`, run after `bridge.started` so that it is the run's first event.
        var held: [() -> Void]? = []

        init(publisher: EventPublisher, replay: ReplayServer, decisions: DecisionBroker, commands: CommandServer) {
            self.publisher = publisher
            self.replay = replay
            self.decisions = decisions
            self.commands = commands
        }

        func runOrHold(_ work: @escaping (Owners) -> Void) {
            guard held != nil else { return work(self) }
            held?.append { [unowned self] in work(self) }
        }
    }

    private let context: ZMQContext
    private let zap: ZAPAuthenticator?
    private let admission: BusAdmission?
    private let journal: EventJournal
    private let loop: ZMQServiceLoop
    private let owners: ZMQLoopBound<Owners>
    private let committed: EventPublisher.Committed
    private let liveWorkers: DecisionBroker.WorkerCount

    /// The endpoints actually bound (a `:*` port resolved), for logs and tests.
    let boundEvents: String
    let boundDecisions: String
    let boundReplay: String
    let boundCommands: String

    /// Opens the journal and binds every socket at once, so that a bad file or endpoint fails start-up
    /// rather than the first call.
    init(configuration: Configuration, logger: Logger) throws {
        let context = try ZMQContext()
        // What is open so far, closed in reverse order when a later step fails.
        var opened: [() -> Void] = [context.close]
        do {
            let zap = try configuration.curve.map { curve in
                // The ZAP handler must run before a CURVE socket binds: without one libzmq admits any key.
                let denied = Counter(label: "switchboard_bus_clients_refused_total")
                return try ZAPAuthenticator(context: context, allowedKeys: curve.keys.everySocket, domainKeys: curve.keys.domainKeys) { [logger] denial in
                    denied.increment()
                    logger.warning("bus client refused", metadata: ["bus.peer_key": "\(denial.publicKey.map(\.z85) ?? "-")",
                                                                    "bus.peer": "\(denial.address)", "bus.reason": "\(denial.statusText)"])
                }
            }
            if let zap { opened.append(zap.stop) }
            let admission = configuration.curve.map { curve in
                BusAdmission(keys: curve.keys, directories: curve.directories, reloadInterval: curve.reloadInterval, logger: logger) { keys in
                    zap?.setAllowedKeys(keys.everySocket, domainKeys: keys.domainKeys)
                }
            }
            let journal = try EventJournal(configuration: configuration.journal, logger: logger)
            opened.append(journal.stop)
            let loop = try ZMQServiceLoop(name: "switchboard-bus")
            opened.append { try? loop.stop() }
            let sockets = BusSocketFactory(context: context, curve: configuration.curve, admission: admission, loop: loop,
                                           refusedFrames: Counter(label: "switchboard_bus_frames_refused_total"), logger: logger)
            let (committed, liveWorkers) = (EventPublisher.Committed(), DecisionBroker.WorkerCount())
            let (owners, bound) = try loop.submit {
                let publisher = try EventPublisher(endpoint: configuration.eventsEndpoint, bridgeId: configuration.bridgeId,
                                                   journal: journal, committed: committed, sockets: sockets)
                let decisions = try DecisionBroker(endpoint: configuration.decisionsEndpoint,
                                                   pool: .init(bridgeId: configuration.bridgeId,
                                                               heartbeatInterval: configuration.heartbeatInterval,
                                                               liveness: configuration.liveness),
                                                   publisher: publisher, workerCount: liveWorkers, sockets: sockets)
                let replay = try ReplayServer(endpoint: configuration.replayEndpoint, bridgeId: configuration.bridgeId,
                                              journal: journal, sockets: sockets)
                let commands = try CommandServer(endpoint: configuration.commandsEndpoint, sockets: sockets)
                // Added last, so it runs before the owners close their sockets.
                loop.onStop { failure in
                    if let failure { logger.critical("bus loop failed; the bus stops", metadata: ["bus.error": "\(failure)"]) }
                    publisher.finish()
                }
                return (ZMQLoopBound(Owners(publisher: publisher, replay: replay, decisions: decisions, commands: commands), loop: loop),
                        [publisher.bound, decisions.bound, replay.bound, commands.bound])
            }
            (self.context, self.zap, self.admission, self.journal, self.loop, self.owners) = (context, zap, admission, journal, loop, owners)
            (self.committed, self.liveWorkers) = (committed, liveWorkers)
            (boundEvents, boundDecisions, boundReplay, boundCommands) = (bound[0], bound[1], bound[2], bound[3])
        } catch {
            for close in opened.reversed() { close() }
            throw error
        }
        if configuration.curve == nil {
            for endpoint in [boundEvents, boundDecisions, boundReplay, boundCommands] where !Self.isLocal(endpoint) {
                logger.warning("bus endpoint reachable beyond loopback without CURVE: anyone who can connect can route calls and read events",
                               metadata: ["bus.endpoint": "\(endpoint)"])
            }
        }
    }

    /// Starts the journal and the sockets, whose first event is `announcement` (`bridge.started`).
    /// `onResolution` is called on the bus loop with the requests that ended other than by expiry
    /// (the caller's own deadline covers that), a batch per pass of the loop; `onCommand` with each
    /// well-formed command, to be answered with `reply(_:to:)`.
    func start(announcing announcement: EventBody,
               onResolution: @escaping @Sendable ([(requestId: String, resolution: Resolution)]) -> Void,
               onCommand: @escaping CommandServer.Handler) {
        let (loop, owners, committed, admission) = (loop, owners, committed, admission)
        journal.start { batch in
            committed.append(batch)
            loop.execute { owners.value.publisher.publishCommitted() }
        }
        loop.execute {
            let owners = owners.value
            owners.publisher.publish(callId: nil, announcement)
            // Pass hooks run in the order added: the broker's may number worker events, the publisher's then journals them.
            owners.decisions.start(on: loop, onResolution: onResolution)
            if let admission {
                loop.afterEachPass { now in
                    let (revoked, next) = admission.reloadIfDue(now: now)
                    owners.decisions.remove(revoked.filter { $0.role == .workers }.compactMap(\.identity))
                    return next
                }
            }
            owners.publisher.start(on: loop)
            owners.replay.start(on: loop)
            owners.commands.start(on: loop, onCommand: onCommand)
            let held = owners.held ?? []
            owners.held = nil
            for work in held { work() }
        }
    }

    /// Stops the bus loop after it has journaled and sent what is queued, and closes the sockets and the journal.
    func stop() {
        // A failure of the loop was logged when it happened; its sockets are closed either way.
        try? loop.stop()
        zap?.stop()
        context.close()
        journal.stop()
    }

    /// Reads the CURVE key directories at once rather than at the next reload interval (SIGHUP); false
    /// without CURVE, when there is nothing to read.
    func reloadKeys() -> Bool {
        guard let admission else { return false }
        admission.requestReload()
        // An empty job wakes the loop for a pass, whose hook then finds the reload due.
        loop.execute {}
        return true
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

    /// The journal's commits and events so far (bench-events prints the events per commit).
    var journalStatistics: EventJournal.Statistics { journal.statistics }

    /// Workers in the pool right now (for health checks and tests).
    var workerCount: Int { liveWorkers.value }

    /// Queues an event; it gets the next sequence number on the bus loop, so numbers follow send order.
    func publish(callId: String?, _ body: EventBody) {
        run { $0.publisher.publish(callId: callId, body) }
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
        run { [frame] in $0.commands.send(frame, to: envelope) }
    }

    /// Publishes `call.offered` for a new call and queues its decision request for the worker pool.
    func offer(requestId: String, callId: String, offer: CallOffer, deadline: ContinuousClock.Instant) {
        run { owners in
            // A REFER's target, or a failure step's next route, is no new call: its call was offered already.
            if offer.transfer == nil, offer.failure == nil { owners.publisher.publish(callId: callId, .callOffered(offer)) }
            owners.decisions.submit(requestId: requestId, callId: callId, offer: offer, deadline: deadline)
        }
    }

    private func run(_ work: @escaping @Sendable (Owners) -> Void) {
        let owners = owners
        loop.execute { owners.value.runOrHold(work) }
    }
}
