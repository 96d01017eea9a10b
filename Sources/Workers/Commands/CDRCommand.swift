import ArgumentParser
import Billing
import BusSchema
import Foundation

/// `switchboard-worker cdrs list`: the call detail records the accounting worker wrote.
///
/// ```sh
/// switchboard-worker cdrs list --db cdr.sqlite --limit 20
/// switchboard-worker cdrs list --db cdr.sqlite --json --since 2026-11-26T00:00:00Z
/// switchboard-worker cdrs export --db cdr.sqlite --since 2026-11-01T00:00:00Z --until 2026-12-01T00:00:00Z > nov.csv
/// switchboard-worker cdrs totals --db cdr.sqlite --since 2026-11-01T00:00:00Z --until 2026-12-01T00:00:00Z --by route
/// ```
struct CDRCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cdrs",
        abstract: "Show, export and total call detail records.",
        subcommands: [List.self, Export.self, Totals.self]
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

    /// Writes the CDRs of a period as CSV (``CDRExport``: the gateway's `/api/v1/cdrs.csv` columns).
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the CDRs of a period as CSV, oldest first.")

        @OptionGroup var database: CDRDatabaseOptions
        @OptionGroup var period: PeriodOptions
        @Option(help: "Only this account's calls.")
        var account: String?

        func run() throws { print(try execute(), terminator: "") }

        func execute() throws -> String {
            let (since, until) = try period.bounds()
            return CDRExport.csv(try database.openStore().rows(since: since, until: until, account: account))
        }
    }

    /// Per-account or per-route totals of a period: calls, ASR, ACD, PDD, billed time and charges.
    struct Totals: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Total the CDRs of a period per account or per route.")

        @OptionGroup var database: CDRDatabaseOptions
        @OptionGroup var period: PeriodOptions
        @Option(help: "account or route.")
        var by: String = "route"

        func validate() throws {
            if CallStatistics.Grouping(rawValue: by) == nil { throw ValidationError("--by must be account or route, got \(by)") }
        }

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            let (since, until) = try period.bounds()
            let store = try database.openStore()
            let records = try store.rows(since: since, until: until).compactMap(CallRecord.init(row:))
            let start = CDRTimestamp.parse(since)!, end = CDRTimestamp.parse(until)!
            let span = Int(end.timeIntervalSince(start).rounded(.up))
            let stats = try CallStatistics(records, since: start, until: end, interval: max(1, span), by: CallStatistics.Grouping(rawValue: by)!)
            let currency = try store.currency()
            func row(_ key: String, _ totals: CallTotals) -> [String] {
                [key, "\(totals.attempts)", "\(totals.answered)", "\(totals.failed)", "\(totals.redirected)",
                 totals.asr.map { String(format: "%.1f%%", $0 * 100) } ?? "-", totals.acdSeconds.map { String(format: "%.1f", $0) } ?? "-",
                 totals.pddMs.map { String(format: "%.0f", $0) } ?? "-", "\(totals.billedSeconds)", "\(totals.charge) \(currency)"]
            }
            return TextTable.render(
                header: [by.uppercased(), "CALLS", "ANSWERED", "FAILED", "REDIRECTED", "ASR", "ACD S", "PDD MS", "BILLED S", "CHARGE"],
                rows: stats.totals.keys.sorted().map { row($0, stats.totals[$0]!) } + [row("total", stats.overall)]
            )
        }
    }
}
