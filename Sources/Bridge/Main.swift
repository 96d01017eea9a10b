import ArgumentParser
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import ZeroMQ

/// `switchboard-bridge`: the SIP edge Kamailio hands calls to.
@main
struct BridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard-bridge",
        abstract: "Answer calls Kamailio hands over, by asking workers over ZeroMQ.",
        discussion: """
            Every event is journaled in SQLite before it is published; a subscriber that was away asks the \
            replay endpoint for what it missed.

            Example: switchboard-bridge --sip-listen 127.0.0.1:5080 --fallback reject:503 --fallback-retry-after 30
            """,
        version: BridgeConfiguration.version
    )

    @Option(help: "Bridge id, carried in every event (unique per bridge).")
    var bridgeId = "bridge-1"
    @Option(help: "SIP address, UDP and TCP (host:port).")
    var sipListen = "127.0.0.1:5080"
    @Option(help: "Events PUB endpoint to bind.")
    var busEvents = "tcp://127.0.0.1:5570"
    @Option(help: "Decisions ROUTER endpoint to bind (workers connect here).")
    var busDecisions = "tcp://127.0.0.1:5571"
    @Option(help: "Replay ROUTER endpoint to bind (clients ask for journaled events from a sequence number).")
    var busReplay = "tcp://127.0.0.1:5572"
    @Option(help: "Commands ROUTER endpoint to bind (originate, hangup, transfer, hold, list, get).")
    var busCommands = "tcp://127.0.0.1:5573"
    @Option(help: "Outbound proxy for the calls the bridge places (host:port, UDP), normally Kamailio; empty: straight to each target.")
    var outboundProxy = "127.0.0.1:5060"
    @Option(help: "Dialogs of live calls, a SQLite file, so a restart can end them with BYE (default: ./bridge-<bridge-id>.dialogs.sqlite).")
    var dialogs: String?
    @Option(help: "Most calls the bridge holds at once (bridged and originated).")
    var maxCalls = 10_000
    @Option(help: "Most originated calls one account may have live at once (0: no limit).")
    var maxOriginatesPerAccount = 10
    @Option(help: "Ring timeout of a leg whose decision or command names none, in seconds.")
    var ringTimeout = 30
    @Option(help: "Longest ring timeout a decision or command may ask for, in seconds.")
    var maxRingTimeout = 300
    @Option(help: "Longest a connected call may last, in minutes, before the bridge hangs it up.")
    var maxCallDurationMinutes = 240
    @Option(help: "Event journal, a SQLite file (default: ./bridge-<bridge-id>.journal.sqlite).")
    var journal: String?
    @Option(help: "Keep at most this many events in the journal.")
    var journalMaxEvents = 1_000_000
    @Option(help: "Prune journaled events older than this many hours.")
    var journalMaxAgeHours = 72.0
    @Option(help: "How long a call waits for a worker's decision, in milliseconds.")
    var decisionTimeoutMs = 500
    @Option(help: "Answer when no worker decides in time: reject:STATUS[:REASON] or redirect:SIP-URI.")
    var fallback = "reject:503"
    @Option(help: "Retry-After seconds added to a reject fallback (0: none).")
    var fallbackRetryAfter = 30
    @Option(help: "CURVE key pair file of this bridge (switchboard-worker keygen); turns CURVE on for every bus socket.")
    var curveKey: String?
    @Option(help: "With --curve-key: directory of the client public keys (*.pub) admitted on the bus.")
    var curveClients: String?
    @Option(help: "Prometheus metrics address (host:port); empty to serve none.")
    var metricsListen = "127.0.0.1:9091"
    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func run() async throws {
        var logger = Logger(label: "switchboard.bridge")
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown --log-level \(logLevel)") }
        logger.logLevel = level

        var configuration = BridgeConfiguration()
        configuration.bridgeId = bridgeId
        (configuration.sipHost, configuration.sipPort) = try Self.hostPort(sipListen, option: "--sip-listen")
        configuration.eventsEndpoint = busEvents
        configuration.decisionsEndpoint = busDecisions
        configuration.replayEndpoint = busReplay
        configuration.commandsEndpoint = busCommands
        if !outboundProxy.isEmpty {
            let (host, port) = try Self.hostPort(outboundProxy, option: "--outbound-proxy")
            guard let address = try? SocketAddress(ipAddress: host, port: port) else {
                throw ValidationError("--outbound-proxy needs an IP address, got \(outboundProxy)")
            }
            configuration.outboundProxy = address
        }
        configuration.dialogStorePath = dialogs
        guard maxCalls > 0 else { throw ValidationError("--max-calls must be positive") }
        guard maxOriginatesPerAccount >= 0 else { throw ValidationError("--max-originates-per-account must be 0 or more") }
        guard ringTimeout > 0, maxRingTimeout >= ringTimeout else {
            throw ValidationError("--ring-timeout must be positive and at most --max-ring-timeout")
        }
        guard maxCallDurationMinutes > 0 else { throw ValidationError("--max-call-duration-minutes must be positive") }
        configuration.callLimits = .init(maxCalls: maxCalls, maxOriginatesPerAccount: maxOriginatesPerAccount,
                                         defaultRingTimeout: .seconds(ringTimeout), maxRingTimeout: .seconds(maxRingTimeout),
                                         maxCallDuration: .seconds(maxCallDurationMinutes * 60))
        configuration.journalPath = journal
        guard journalMaxEvents > 0 else { throw ValidationError("--journal-max-events must be positive") }
        configuration.journalMaxEvents = journalMaxEvents
        guard journalMaxAgeHours > 0 else { throw ValidationError("--journal-max-age-hours must be positive") }
        configuration.journalMaxAge = .milliseconds(Int64(journalMaxAgeHours * 3_600_000))
        guard decisionTimeoutMs > 0 else { throw ValidationError("--decision-timeout-ms must be positive") }
        configuration.decisionTimeout = .milliseconds(decisionTimeoutMs)
        guard let parsed = BridgeConfiguration.Fallback(argument: fallback, retryAfter: fallbackRetryAfter > 0 ? fallbackRetryAfter : nil) else {
            throw ValidationError("--fallback must be reject:STATUS[:REASON] (STATUS 400–699) or redirect:sip:URI, got \(fallback)")
        }
        configuration.fallback = parsed
        switch (curveKey, curveClients) {
        case (nil, nil):
            break
        case (let keyPath?, let clientsPath?):
            let clients = try CurveKeyFile.loadPublicKeys(directory: clientsPath)
            guard !clients.isEmpty else { throw ValidationError("--curve-clients \(clientsPath) holds no *.pub key: no worker could connect") }
            configuration.curve = .init(keyPair: try CurveKeyFile.loadKeyPair(from: keyPath), allowedClients: clients)
        default:
            throw ValidationError("--curve-key and --curve-clients go together")
        }

        var services: [Service] = [buildBridge(configuration: configuration, logger: logger)]
        if !metricsListen.isEmpty {
            let (host, port) = try Self.hostPort(metricsListen, option: "--metrics-listen")
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            // Decisions and journal commits take about a millisecond: the default buckets start at 5 ms.
            factory.defaultDurationHistogramBuckets = [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500].map { .microseconds(Int64($0 * 1000)) }
            MetricsSystem.bootstrap(factory)
            services.append(MetricsServer(registry: registry, host: host, port: port))
        }
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }

    static func hostPort(_ value: String, option: String) throws -> (String, Int) {
        guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(option) must be host:port, got \(value)")
        }
        var host = String(value[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }
}
