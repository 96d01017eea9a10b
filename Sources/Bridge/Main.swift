import ArgumentParser
import Logging
import Metrics
import MetricsEndpoint
import Prometheus
import ServiceLifecycle

/// `switchboard-bridge`: the SIP edge Kamailio hands calls to.
@main
struct BridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard-bridge",
        abstract: "Answer calls Kamailio hands over, by asking workers over ZeroMQ.",
        usage: "switchboard-bridge [--config FILE] [--check-config] [--SETTING VALUE ...]",
        discussion: """
            Every setting has one name: `max_calls` in the JSON file given with --config, --max-calls on the \
            command line, SWITCHBOARD_BRIDGE_MAX_CALLS in the environment. The command line wins over the \
            environment, which wins over the file.

            Example: switchboard-bridge --sip-listen 127.0.0.1:5080 --fallback reject:503 --fallback-retry-after 30

            SETTINGS (default in brackets):
            \(BridgeSetting.all.map { "  --\($0.key.replacingOccurrences(of: "_", with: "-")) [\($0.defaultText)]\n      \($0.help)" }.joined(separator: "\n"))
            """,
        version: BridgeConfiguration.version
    )

    @Option(help: "A JSON file of settings, e.g. {\"sip_listen\": \"127.0.0.1:5080\", \"max_calls\": 5000}.")
    var config: String?

    @Flag(help: "Check the settings, print each with where it came from, and exit.")
    var checkConfig = false

    @Argument(parsing: .allUnrecognized, help: .hidden)
    var settings: [String] = []

    func run() async throws {
        // The hidden `bench-events` (bench/events-throughput): the settings argument captures every word, so no subcommand.
        if settings.first == EventsBenchCommand.configuration.commandName {
            return EventsBenchCommand.main(Array(settings.dropFirst()))
        }
        var loader = BridgeSettingsLoader(file: config)
        let configuration: BridgeConfiguration
        do {
            loader.commandLine = try BridgeSettingsLoader.commandLineValues(settings)
            configuration = try await loader.load()
        } catch let error as BridgeSettingsError {
            throw ValidationError(error.description)
        }
        if checkConfig {
            for setting in BridgeSetting.all {
                print("\(setting.key) = \(setting.current(configuration) ?? setting.unset)  (\(loader.sources[setting.key] ?? "default"))")
            }
            return
        }

        var logger = Logger(label: "switchboard.bridge")
        logger.logLevel = configuration.logLevel
        var services: [Service] = [buildBridge(configuration: configuration, logger: logger)]
        if let listen = configuration.metricsListen {
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            // Decisions and journal commits take about a millisecond: the default buckets start at 5 ms.
            factory.defaultDurationHistogramBuckets = [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500].map { .microseconds(Int64($0 * 1000)) }
            MetricsSystem.bootstrap(factory)
            services.append(makeMetricsServer(registry: registry, host: listen.host, port: listen.port,
                                              serverName: "switchboard-bridge", logger: logger))
        }
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
