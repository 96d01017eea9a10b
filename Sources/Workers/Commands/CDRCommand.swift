import ArgumentParser
import BusSchema
import Foundation

/// `switchboard-worker cdrs list`: the call detail records the accounting worker wrote.
///
/// ```sh
/// switchboard-worker cdrs list --db cdr.sqlite --limit 20
/// switchboard-worker cdrs list --db cdr.sqlite --json --since 2026-11-26T00:00:00Z
/// ```
struct CDRCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cdrs",
        abstract: "Show call detail records.",
        subcommands: [List.self]
    )

    /// Prints CDRs as a table, or as JSON for scripts.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List CDRs, oldest first (the newest --limit of them).")

        @Option(name: .customLong("db"), help: "The CDR database (SQLite).")
        var path: String
        @Flag(help: "Print a JSON array instead of a table.")
        var json = false
        @Option(help: "Only the newest N records.")
        var limit: Int?
        @Option(help: "Only calls decided at or after this ISO 8601 time (e.g. 2026-11-26T20:00:00Z).")
        var since: String?

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() throws { print(try execute()) }

        /// Does the work and returns what `run` prints, so tests can check it.
        func execute() throws -> String {
            var sinceText: String?
            if let since {
                guard let date = CDRTimestamp.parse(since) else { throw AccountingError.invalidSince(since) }
                sinceText = CDRTimestamp.format(date)
            }
            let cdrs = try CDRStore(path: path).cdrs(limit: limit, since: sinceText)
            if json {
                return String(decoding: try BusSchema.makeEncoder().encode(cdrs), as: UTF8.self)
            }
            if cdrs.isEmpty { return "no CDRs" }
            return TextTable.render(
                header: ["DECIDED", "BRIDGE", "CALL", "CALLER", "CALLEE", "OUTCOME", "STATUS", "ROUTE/CAUSE", "MS", "SIP CALL-ID"],
                rows: cdrs.map { cdr in
                    [cdr.decidedAt, cdr.bridgeId, cdr.callId, cdr.caller ?? "", cdr.callee ?? "", cdr.outcome, "\(cdr.sipStatus)",
                     Self.routeOrCause(cdr), String(format: "%.1f", cdr.decisionMs), cdr.sipCallId ?? ""]
                }
            )
        }

        private static func routeOrCause(_ cdr: CDR) -> String {
            var parts: [String] = []
            if let route = cdr.route, let targets = try? JSONDecoder().decode([Target].self, from: Data(route.utf8)) {
                parts.append(targets.map(\.uri).joined(separator: ","))
            } else if let reason = cdr.reason {
                parts.append(reason)
            }
            if cdr.fallback { parts.append("(fallback: \(cdr.fallbackCause ?? "?"))") }
            return parts.joined(separator: " ")
        }
    }
}
