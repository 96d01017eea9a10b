import ArgumentParser
import Logging

/// `switchboard-worker accounting`: writes a CDR per call from a bridge's events, exactly once.
///
/// ```sh
/// switchboard-worker accounting --db cdr.sqlite --events tcp://127.0.0.1:5570 --replay tcp://127.0.0.1:5572
/// ```
struct AccountingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accounting",
        abstract: "Run the accounting worker: call detail records in SQLite from a bridge's events.",
        discussion: """
        The database keeps the last event applied (per bridge) in the same transaction as the CDRs, so a \
        restarted worker replays from the bridge's journal exactly what it had not applied yet.
        """
    )

    @Option(name: .customLong("db"), help: "The CDR database (SQLite); created and migrated on first use.")
    var path: String
    @Option(help: "The bridge's events endpoint (PUB).")
    var events = "tcp://127.0.0.1:5570"
    @Option(help: "The bridge's replay endpoint (ROUTER).")
    var replay = "tcp://127.0.0.1:5572"
    @Option(help: "Resume from this bridge's cursor (needed only when the database holds several).")
    var bridgeId: String?
    @Option(help: "Seconds without traffic before asking the journal for missed events.")
    var idleCheckInterval = 3.0
    @Option(help: "Serve Prometheus /metrics on HOST:PORT (rated calls, talk time, charges, PDD); none by default.")
    var metricsListen: String?
    @OptionGroup var curve: CurveClientOptions
    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        if !(idleCheckInterval > 0) { throw ValidationError("--idle-check-interval must be a positive number of seconds") }
        if let metricsListen, Self.hostPort(metricsListen) == nil {
            throw ValidationError("--metrics-listen must be HOST:PORT such as 127.0.0.1:9092, got \(metricsListen)")
        }
    }

    /// `127.0.0.1:9092` → ("127.0.0.1", 9092); the port may be 0..65535.
    static func hostPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        let host = String(text[..<colon])
        return host.isEmpty ? nil : (host, port)
    }

    func run() async throws {
        var logger = Logger(label: "switchboard.accounting") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = logLevel
        var configuration = AccountingConfiguration(databasePath: path, events: events, replay: replay, bridgeId: bridgeId)
        configuration.idleCheckInterval = .milliseconds(Int((idleCheckInterval * 1000).rounded()))
        configuration.curve = try curve.load()
        configuration.metricsListen = metricsListen.flatMap(Self.hostPort)
        let group = try buildAccountingWorker(configuration: configuration, logger: logger)
        try await group.run()
    }
}
