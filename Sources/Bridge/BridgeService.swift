import BusSchema
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import SIPCore
import UnixSignals

/// Where a running bridge actually listens (ports resolved when the configuration asked for 0 / `*`).
struct BoundAddresses {
    var sipPort: Int
    var events: String
    var decisions: String
    var replay: String
    var commands: String
}

/// The bridge's SIP side, wired in the one place that knows every owner. Each owner holds only what it
/// uses, and ownership points one way: the edge → the decision gate → the B2BUA → the server
/// transactions (through `ServerResponder`) and the client; the bus and the wire sit behind `BridgeBus`
/// and `SIPTransport`, so tests build the same side on an `EmbeddedEventLoop` with fakes.
///
/// - `ServerTransactions`: server transaction tables, their timers and reply paths, Via stamping.
/// - `DecisionGate`: INVITEs waiting for a decision, the deadline, 100 Trying, fallback, 302/reject.
/// - `B2BUA` (+ `UACLegs`, `UASLegs`): admission, idempotency, each call's `CallFlow`, the legs' SIP,
///   in-dialog relay and glare, restart cleanup.
/// - `SIPClient`: client transactions. `SIPEdge`: parsing and dispatch, stateless answers.
///
/// Loop-bound: built and used on the SIP event loop.
struct SIPSide {
    let b2bua: B2BUA
    let gate: DecisionGate
    let edge: SIPEdge
    /// `decide` commands: calls a proxy holds (OpenSER 1.x through `switchboard-exec`).
    let handoffs: Handoffs
    private let bus: BridgeBus

    init(configuration: BridgeConfiguration, loop: EventLoop, bus: BridgeBus, transport: SIPTransport, store: DialogStore?,
         media mediaTransport: NGTransport? = nil, logger: Logger) {
        // Call ids stay unique across restarts of the same bridge id: the prefix carries the start time.
        let started = UInt64(NIODeadline.now().uptimeNanoseconds / 1_000_000) ^ UInt64.random(in: 0...UInt64(UInt32.max))
        let callPrefix = "\(configuration.bridgeId)-\(String(started, radix: 36))"
        self.bus = bus
        let transactions = ServerTransactions(loop: loop, timers: configuration.timers, transport: transport, logger: logger)
        let client = SIPClient(loop: loop, timers: configuration.timers, transport: transport, logger: logger)
        let media = mediaTransport.flatMap { transport in
            MediaService.Settings(configuration).map { MediaService(settings: $0, loop: loop, transport: transport, bus: bus, logger: logger) }
        }
        b2bua = B2BUA(configuration: configuration, loop: loop, bus: bus, client: client, transactions: transactions, store: store,
                      media: media, callPrefix: callPrefix, logger: logger)
        let overload = OverloadControl(configuration: configuration.overload, decisionTimeout: configuration.decisionTimeout, logger: logger)
        overload.endWindows(on: loop)
        gate = DecisionGate(configuration: configuration, loop: loop, bus: bus, transactions: transactions, b2bua: b2bua,
                            overload: overload, callPrefix: callPrefix, logger: logger)
        edge = SIPEdge(configuration: configuration, loop: loop, transactions: transactions, client: client, gate: gate, b2bua: b2bua,
                       registrations: RegistrationRelay(bus: bus, logger: logger), overload: overload, logger: logger)
        b2bua.transferDecider = gate
        b2bua.nextStepDecider = gate
        handoffs = Handoffs(configuration: configuration, loop: loop, bus: bus, destinations: b2bua.destinations, callPrefix: callPrefix,
                            logger: logger)
    }

    /// A command from the bus, carried out and answered.
    func command(_ request: CommandRequest, envelope: [[UInt8]], scope: CommandScope = .everyAccount) {
        // `decide` is answered once a worker (or the deadline) decides; a malformed one is the B2BUA's `bad_command`.
        if case .decide(let offer) = request.command, request.command.problem == nil {
            handoffs.decide(offer, request: request, envelope: envelope, scope: scope)
            return
        }
        switch request.command {
        case .play, .stopPlay, .record, .dtmf:
            return b2bua.executeMedia(request.command, scope: scope) { [bus] outcome in
                bus.reply(CommandReply(requestId: request.requestId, outcome: outcome), to: envelope)
            }
        default:
            break
        }
        bus.reply(CommandReply(requestId: request.requestId, outcome: b2bua.execute(request.command, scope: scope)), to: envelope)
    }

    /// Ends every call (BYE/CANCEL) and answers every waiting INVITE with the fallback, so a stopping bridge
    /// leaves no caller hanging; returns how many calls it ended.
    func drain() -> Int {
        let ended = b2bua.shutdown()
        gate.drain()
        handoffs.drain()
        return ended
    }

    /// The bus' answers, a batch at a time: `decide` commands' first, the INVITEs' and REFERs' to the gate.
    func resolve(_ batch: [(requestId: String, resolution: BusEndpoints.Resolution)]) {
        gate.resolve(handoffs.resolve(batch))
    }
}

/// A bridge: the SIP side on UDP and TCP, plus the bus endpoints, wired together.
///
/// Tests call `start()` and `stop()` directly; the executable runs it as a `Service` until SIGTERM.
final class Bridge: Service, Sendable {
    /// What a started bridge holds until `stop`.
    private struct Running: Sendable {
        var bus: BusEndpoints
        var sip: NIOLoopBound<SIPSide>
        var store: DialogStore
        var listeners: SIPListeners
        var media: MediaChannels?
        var info: BridgeInfo
    }

    let configuration: BridgeConfiguration
    private let logger: Logger
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let running = Mutex<Running?>(nil)

    init(configuration: BridgeConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Workers connected to this bridge's decisions socket.
    var workerCount: Int { running.withLock { $0?.bus.workerCount } ?? 0 }

    /// Binds everything; throws (and leaves nothing open) when an address is unusable.
    func start() async throws -> BoundAddresses {
        let bus = try BusEndpoints(configuration: .init(bridgeId: configuration.bridgeId,
                                                        eventsEndpoint: configuration.eventsEndpoint,
                                                        decisionsEndpoint: configuration.decisionsEndpoint,
                                                        replayEndpoint: configuration.replayEndpoint,
                                                        commandsEndpoint: configuration.commandsEndpoint,
                                                        journal: .init(path: configuration.resolvedJournalPath,
                                                                       maxEvents: configuration.journalMaxEvents,
                                                                       maxAge: configuration.journalMaxAge,
                                                                       pruneInterval: configuration.journalPruneInterval),
                                                        heartbeatInterval: configuration.heartbeatInterval,
                                                        liveness: configuration.liveness,
                                                        curve: configuration.curve),
                                   logger: logger)
        let store: DialogStore
        let leftovers: [DialogStore.Record]
        do {
            store = try DialogStore(path: configuration.resolvedDialogStorePath, logger: logger)
            leftovers = try store.leftovers()
        } catch {
            bus.stop()
            try? await group.shutdownGracefully()
            throw error
        }
        let loop = group.next()
        let media: MediaChannels?
        do {
            if configuration.mediaRTPEngine != nil { try Tones.write(to: configuration.resolvedTonesPath) }
            media = try await MediaChannels.bind(configuration, loop: loop)
        } catch {
            bus.stop()
            try? await group.shutdownGracefully()
            throw error
        }
        let (sip, edge, transport, connections) = try await loop.submit { [configuration, logger] in
            let transport = NIOSIPTransport(logger: logger)
            let sip = SIPSide(configuration: configuration, loop: loop, bus: bus, transport: transport, store: store,
                              media: media?.transport, logger: logger)
            media?.service.value = sip.b2bua.media
            return (NIOLoopBound(sip, eventLoop: loop), NIOLoopBound(sip.edge, eventLoop: loop), NIOLoopBound(transport, eventLoop: loop),
                    NIOLoopBound(SIPConnectionGate(configuration: configuration), eventLoop: loop))
        }.get()
        // The bus thread starts once SIP is bound, so bridge.started (which names the SIP port) is the
        // run's first event; SIP that arrives meanwhile waits in the bus inbox.
        let listeners: SIPListeners
        do {
            listeners = try await SIPListeners.bind(host: configuration.sipHost, port: configuration.sipPort, group: group,
                                                    edge: edge, transport: transport, connections: connections,
                                                    limits: configuration.parserLimits, logger: logger)
        } catch {
            await media?.close()
            bus.stop()
            try? await group.shutdownGracefully()
            throw error
        }
        let bound = BoundAddresses(sipPort: listeners.udp.localAddress?.port ?? configuration.sipPort,
                                   events: bus.boundEvents, decisions: bus.boundDecisions, replay: bus.boundReplay,
                                   commands: bus.boundCommands)
        let info = BridgeInfo(version: BridgeConfiguration.version, sipListen: BridgeSetting.hostPort(configuration.sipHost, bound.sipPort),
                              events: bound.events, decisions: bound.decisions, replay: bound.replay,
                              journal: configuration.resolvedJournalPath,
                              decisionTimeoutMs: Int(configuration.decisionTimeout.milliseconds),
                              fallback: configuration.fallback.description)
        running.withLock { $0 = Running(bus: bus, sip: sip, store: store, listeners: listeners, media: media, info: info) }
        // The bus thread hands decisions (a batch at a time) and commands to the SIP loop.
        bus.start(announcing: .bridgeStarted(info), onResolution: { batch in loop.execute { sip.value.resolve(batch) } },
                  onCommand: { request, envelope, scope in loop.execute { sip.value.command(request, envelope: envelope, scope: scope) } })
        let advertised = configuration.advertisedAddress
        let (sipHost, sipPort) = (advertised?.host ?? configuration.sipHost, advertised.map { $0.port == 0 ? bound.sipPort : $0.port } ?? bound.sipPort)
        try await loop.submit {
            transport.value.bound(host: sipHost, port: sipPort)
            // Calls a crashed run left up end now, their events after this run's bridge.started.
            sip.value.b2bua.endLeftovers(leftovers)
        }.get()
        logger.info("bridge started", metadata: [
            "bridge.id": "\(configuration.bridgeId)",
            "sip.listen": "\(configuration.sipHost):\(bound.sipPort) udp+tcp",
            "bus.events": "\(bound.events)", "bus.decisions": "\(bound.decisions)", "bus.replay": "\(bound.replay)",
            "bus.commands": "\(bound.commands)", "sip.outbound_proxy": "\(configuration.outboundProxy.map { "\($0)" } ?? "none")",
            "sip.trusted_sources": "\(configuration.resolvedTrustedSources)",
            "journal.path": "\(configuration.resolvedJournalPath)", "journal.next_seq": "\(bus.nextSeqAtStart)",
            "decision.timeout": "\(configuration.decisionTimeout)", "decision.fallback": "\(configuration.fallback)",
        ])
        return bound
    }

    /// Stops taking SIP, answers every waiting INVITE with the fallback, then closes the bus.
    func stop() async {
        if let running = running.withLock({ running in defer { running = nil }; return running }) {
            running.bus.publish(callId: nil, .bridgeStopping(running.info))
            // Answer every waiting INVITE (and any that still arrives) with the fallback while the
            // sockets are open, so callers hear it instead of retransmitting to the next bridge.
            let sip = running.sip
            let ended = (try? await group.next().submit { sip.value.drain() }.get()) ?? 0
            // The BYEs and CANCELs of the calls just ended need a moment on the wire before the socket closes.
            if ended > 0 { try? await Task.sleep(for: .milliseconds(300)) }
            running.store.flush()
            await running.listeners.close()
            await running.media?.close()
            running.bus.stop()
        }
        try? await group.shutdownGracefully()
        logger.info("bridge stopped", metadata: ["bridge.id": "\(configuration.bridgeId)"])
    }

    /// Reads the bus key directories now rather than at the next `curve_reload_interval` (what SIGHUP does).
    func reloadBusKeys() {
        guard let bus = running.withLock({ $0?.bus }) else { return }
        logger.info(bus.reloadKeys() ? "bus keys: reading the key directories now" : "bus keys: no CURVE key directories to read")
    }

    func run() async throws {
        _ = try await start()
        // SIGHUP, as daemons take it: read the configuration that can change while running (the bus keys).
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let reloads = Task { for await _ in hangups { reloadBusKeys() } }
        try? await gracefulShutdown()
        reloads.cancel()
        await stop()
    }
}

/// The factory the executable and the tests share.
func buildBridge(configuration: BridgeConfiguration, logger: Logger) -> Bridge {
    Bridge(configuration: configuration, logger: logger)
}
