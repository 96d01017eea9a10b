import ArgumentParser
import Logging
import WorkerSDK

/// `switchboard-worker pbx`: answers the bridges' offers, and their failure steps, from the PBX rules.
///
/// ```sh
/// switchboard-worker pbx --db pbx.sqlite --bridge tcp://127.0.0.1:5571 --domain switchboard.local
/// ```
struct PBXCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pbx",
        abstract: "Run the PBX worker: forwards, hunt groups, schedules and do-not-disturb from the PBX database.",
        discussion: """
        Rules are edited with `pbx-rules` (or the gateway's /api/pbx) while it runs; it reloads them within \
        --reload-interval. An extension with a busy, no-answer or unreachable forward is rung with on_failure=ask: \
        the bridge asks again when it fails, and the forward for the failure's cause takes the call.
        """
    )

    @Option(name: .customLong("db"), help: "The PBX database (SQLite); created and migrated on first use.")
    var path: String
    @Option(name: .customLong("bridge"), help: "A bridge's decisions endpoint; repeat for several bridges.")
    var bridges: [String]
    @Option(help: "A route database (routes, block): calls to users without a PBX rule are routed by its dial plan.")
    var routes: String?
    @Option(help: "The host for bare names (bob → sip:bob@DOMAIN); default: the host of the called party's To URI.")
    var domain: String?
    @Option(help: "The name this worker gives the bridges (default pbx-<host>-<pid>).")
    var workerId: String?
    @Option(help: "How many decisions may be in flight at once.")
    var capacity = 64
    @Option(help: "Seconds between checks of the database for edits.")
    var reloadInterval = 1.0
    @Option(help: "A bridge's events endpoint for registration events (with --replay); repeat per bridge. Without it a user is unreachable only when a call fails.")
    var events: [String] = []
    @Option(help: "The replay endpoint of each --events bridge, in the same order.")
    var replay: [String] = []
    @OptionGroup var curve: CurveClientOptions
    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        if bridges.isEmpty { throw ValidationError("--bridge is required") }
        if capacity < 1 { throw ValidationError("--capacity must be at least 1") }
        if !(reloadInterval > 0) { throw ValidationError("--reload-interval must be a positive number of seconds") }
        if events.count != replay.count { throw ValidationError("give one --replay for each --events") }
    }

    func run() async throws {
        var logger = Logger(label: "switchboard.pbx") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = logLevel
        var configuration = PBXWorkerConfiguration(databasePath: path, bridges: bridges)
        configuration.workerId = workerId ?? configuration.workerId
        configuration.capacity = capacity
        configuration.domain = domain
        configuration.routesPath = routes
        configuration.reloadInterval = .milliseconds(Int((reloadInterval * 1000).rounded()))
        configuration.curve = try curve.load()
        configuration.registrations = zip(events, replay).map { RegistrationTable.Bridge(events: $0, replay: $1) }
        try await buildPBXWorker(configuration: configuration, logger: logger).run()
    }
}
