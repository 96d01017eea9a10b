import ArgumentParser
import Logging

/// `switchboard-worker router`: answers the bridges' routing requests from the dial plan.
///
/// ```sh
/// switchboard-worker router --db routes.sqlite --bridge tcp://127.0.0.1:5571 --bridge tcp://10.0.0.2:5571
/// ```
struct RouterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Run the router worker: least-cost routing and access lists from the route database.",
        discussion: "Routes and blocks may be edited with `routes` and `block` while it runs; it reloads them within --reload-interval."
    )

    @OptionGroup var database: DatabaseOptions
    @Option(name: .customLong("bridge"), help: "A bridge's decisions endpoint; repeat for several bridges.")
    var bridges: [String]
    @Option(help: "The name this worker gives the bridges (default router-<host>-<pid>).")
    var workerId: String?
    @Option(help: "How many decisions may be in flight at once.")
    var capacity = 64
    @Option(help: "Seconds between checks of the database for edits.")
    var reloadInterval = 2.0
    @Option(help: "redirect: answer 302 and let Kamailio follow the targets; bridge: the bridge calls them itself (B2BUA), one after the other.")
    var mode: RouterConfiguration.Mode = .redirect
    @Option(help: "With --mode bridge: seconds each target may ring (default: the bridge's).")
    var ringTimeout: Int?
    @OptionGroup var curve: CurveClientOptions
    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        if capacity < 1 { throw ValidationError("--capacity must be at least 1") }
        if !(reloadInterval > 0) { throw ValidationError("--reload-interval must be a positive number of seconds") }
        if let ringTimeout, ringTimeout < 1 { throw ValidationError("--ring-timeout must be at least 1 second") }
    }

    func run() async throws {
        var logger = Logger(label: "switchboard.router") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = logLevel
        var configuration = RouterConfiguration(databasePath: database.path, bridges: bridges, capacity: capacity)
        configuration.workerId = workerId ?? RouterConfiguration.defaultWorkerId
        configuration.reloadInterval = .milliseconds(Int((reloadInterval * 1000).rounded()))
        configuration.curve = try curve.load()
        configuration.mode = mode
        configuration.ringTimeout = ringTimeout.map { .seconds($0) }
        let group = try await buildRouterWorker(configuration: configuration, logger: logger)
        try await group.run()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension RouterConfiguration.Mode: ExpressibleByArgument {}
