import BusSchema
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Where a running bridge actually listens (ports resolved when the configuration asked for 0 / `*`).
struct BoundAddresses {
    var sipPort: Int
    var events: String
    var decisions: String
    var replay: String
    var commands: String
}

/// A bridge: the SIP edge on UDP and TCP, plus the bus endpoints, wired together.
///
/// Tests call `start()` and `stop()` directly; the executable runs it as a `Service` until SIGTERM.
final class Bridge: Service, @unchecked Sendable {
    let configuration: BridgeConfiguration
    private let logger: Logger
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private var bus: BusEndpoints?
    private var edge: SIPEdge?
    private var store: DialogStore?
    private var listeners: SIPListeners?
    private var info: BridgeInfo?

    init(configuration: BridgeConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Workers connected to this bridge's decisions socket.
    var workerCount: Int { bus?.workerCount ?? 0 }

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
        let edge = SIPEdge(configuration: configuration, loop: loop, bus: bus, store: store, logger: logger)
        // The bus thread starts once SIP is bound, so bridge.started (which names the SIP port) is the
        // run's first event; SIP that arrives meanwhile waits in the bus inbox.
        let listeners: SIPListeners
        do {
            listeners = try await SIPListeners.bind(host: configuration.sipHost, port: configuration.sipPort, group: group,
                                                    edge: edge, limits: configuration.parserLimits)
        } catch {
            bus.stop()
            try? await group.shutdownGracefully()
            throw error
        }
        self.bus = bus
        self.edge = edge
        self.store = store
        self.listeners = listeners
        let bound = BoundAddresses(sipPort: listeners.udp.localAddress?.port ?? configuration.sipPort,
                                   events: bus.boundEvents, decisions: bus.boundDecisions, replay: bus.boundReplay,
                                   commands: bus.boundCommands)
        let info = BridgeInfo(version: BridgeConfiguration.version, sipListen: "\(configuration.sipHost):\(bound.sipPort)",
                              events: bound.events, decisions: bound.decisions, replay: bound.replay,
                              journal: configuration.resolvedJournalPath,
                              decisionTimeoutMs: Int(configuration.decisionTimeout.milliseconds),
                              fallback: configuration.fallback.description)
        self.info = info
        bus.start(announcing: .bridgeStarted(info), onResolution: { batch in edge.resolve(batch) },
                  onCommand: { request, envelope in
                      loop.execute {
                          bus.reply(CommandReply(requestId: request.requestId, outcome: edge.calls.execute(request.command)), to: envelope)
                      }
                  })
        let sipHost = configuration.sipHost
        try await loop.submit {
            edge.client.attach(listeners.udp, host: sipHost, port: bound.sipPort)
            // Calls a crashed run left up end now, their events after this run's bridge.started.
            edge.calls.endLeftovers(leftovers)
        }.get()
        logger.info("bridge started", metadata: [
            "bridge.id": "\(configuration.bridgeId)",
            "sip.listen": "\(configuration.sipHost):\(bound.sipPort) udp+tcp",
            "bus.events": "\(bound.events)", "bus.decisions": "\(bound.decisions)", "bus.replay": "\(bound.replay)",
            "bus.commands": "\(bound.commands)", "sip.outbound_proxy": "\(configuration.outboundProxy.map { "\($0)" } ?? "none")",
            "journal.path": "\(configuration.resolvedJournalPath)", "journal.next_seq": "\(bus.nextSeqAtStart)",
            "decision.timeout": "\(configuration.decisionTimeout)", "decision.fallback": "\(configuration.fallback)",
        ])
        return bound
    }

    /// Stops taking SIP, answers every waiting INVITE with the fallback, then closes the bus.
    func stop() async {
        if let bus, let info { bus.publish(callId: nil, .bridgeStopping(info)) }
        if let edge {
            // Answer every waiting INVITE (and any that still arrives) with the fallback while the
            // sockets are open, so callers hear it instead of retransmitting to the next bridge.
            try? await group.next().submit { edge.drain() }.get()
            // The BYEs and CANCELs of the calls just ended need a moment on the wire before the socket closes.
            if edge.calls.endedByShutdown > 0 { try? await Task.sleep(for: .milliseconds(300)) }
        }
        store?.flush()
        if let listeners { await listeners.close() }
        bus?.stop()
        try? await group.shutdownGracefully()
        listeners = nil
        edge = nil
        store = nil
        bus = nil
        info = nil
        logger.info("bridge stopped", metadata: ["bridge.id": "\(configuration.bridgeId)"])
    }

    func run() async throws {
        _ = try await start()
        try? await gracefulShutdown()
        await stop()
    }
}

/// The factory the executable and the tests share.
func buildBridge(configuration: BridgeConfiguration, logger: Logger) -> Bridge {
    Bridge(configuration: configuration, logger: logger)
}
