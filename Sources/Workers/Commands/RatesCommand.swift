import ArgumentParser
import Billing
import BusSchema

/// `switchboard-worker rates set|list|remove|currency|rerate`: the rate sheet in the CDR database,
/// which the accounting worker prices each finished call with.
///
/// ```sh
/// switchboard-worker rates set --db cdr.sqlite --route us-dc --prefix 1202 --per-minute 0.0120 --increment 60/60
/// switchboard-worker rates set --db cdr.sqlite --route us-dc --account alice --per-minute 0.0080 --increment 1/1
/// switchboard-worker rates rerate --db cdr.sqlite --since 2026-11-01T00:00:00Z --until 2026-12-01T00:00:00Z
/// ```
struct RatesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rates",
        abstract: "Set, list and remove call rates; set the currency; re-rate CDRs.",
        discussion: """
        A route is a name and the dialled-number prefix it covers; a call is priced by the route with the \
        longest prefix its callee starts with, at the route's default rate or the caller's account plan \
        for that route. Changes apply to calls that end afterwards; `rerate` applies them to a past period.
        """,
        subcommands: [Set.self, List.self, Remove.self, CurrencyCommand.self, Rerate.self]
    )

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add or replace a route's rate, or an account's plan rate for a route.")

        @OptionGroup var database: CDRDatabaseOptions
        @Option(help: "The route's name, such as us-dc.")
        var route: String
        @Option(help: "Dialled numbers the route covers (digits; \"\" for every number). Only for a route's default rate.")
        var prefix: String?
        @Option(help: "Price this route for one account (its plan) instead of for everyone.")
        var account: String?
        @Option(help: "Price per minute in the database's currency, up to 6 decimals, such as 0.0120.")
        var perMinute: String
        @Option(help: "Billing increments FIRST/NEXT in seconds: 60/60 bills whole minutes, 1/1 each second.")
        var increment = "60/60"

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            let store = try database.openStore()
            let rate = try store.setRate(Rate(route: route, account: account, prefix: prefix, perMinute: perMinute, increment: increment))
            let whom = rate.account.isEmpty ? "prefix \(rate.prefix.map { $0.isEmpty ? "(any number)" : $0 } ?? "")" : "account \(rate.account)"
            return "rate \(rate.route) for \(whom): \(Money(micros: rate.perMinuteMicros)) \(try store.currency())/min, "
                + "\(rate.firstIncrement)/\(rate.nextIncrement)"
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List rates, each route's default first.")

        @OptionGroup var database: CDRDatabaseOptions
        @Flag(help: "Print a JSON array instead of a table.")
        var json = false

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            let store = try database.openStore()
            let rates = try store.rates()
            if json { return String(decoding: try BusSchema.makeEncoder().encode(rates), as: UTF8.self) }
            if rates.isEmpty { return "no rates (currency \(try store.currency()))" }
            let currency = try store.currency()
            return TextTable.render(
                header: ["ROUTE", "PREFIX", "PLAN", "PER MINUTE", "INCREMENT"],
                rows: rates.map { rate in
                    [rate.route, rate.prefix.map { $0.isEmpty ? "*" : $0 } ?? "", rate.account.isEmpty ? RateSheet.defaultPlan : rate.account,
                     "\(Money(micros: rate.perMinuteMicros)) \(currency)", "\(rate.firstIncrement)/\(rate.nextIncrement)"]
                }
            )
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a route (with every plan's rate of it), or one account's plan rate with --account.")

        @OptionGroup var database: CDRDatabaseOptions
        @Option(help: "The route's name.")
        var route: String
        @Option(help: "Remove only this account's plan rate.")
        var account: String?

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            try database.openStore().removeRate(route: route, account: account)
            return "removed \(route)\(account.map { " for \($0)" } ?? "")"
        }
    }

    struct CurrencyCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "currency",
            abstract: "Print the currency of every amount in the database, or set it (rates are not converted).")

        @OptionGroup var database: CDRDatabaseOptions
        @Option(name: .customLong("set"), help: "An ISO 4217 code such as EUR.")
        var code: String?

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            let store = try database.openStore()
            if let code { try store.setCurrency(code) }
            return try store.currency()
        }
    }

    struct Rerate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Price the CDRs of a period again with the current rates.")

        @OptionGroup var database: CDRDatabaseOptions
        @OptionGroup var period: PeriodOptions

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            let (since, until) = try period.bounds()
            let store = try database.openStore()
            let (count, total) = try store.rerate(since: since, until: until)
            return "re-rated \(count) CDRs: \(total) \(try store.currency())"
        }
    }
}

/// `--since` and `--until` (ISO 8601), as stored: calls decided in `since..<until`.
struct PeriodOptions: ParsableArguments {
    @Option(help: "Start of the period (ISO 8601, inclusive), such as 2026-11-01T00:00:00Z.")
    var since: String
    @Option(help: "End of the period (ISO 8601, exclusive).")
    var until: String

    func bounds() throws -> (since: String, until: String) {
        guard let start = CDRTimestamp.parse(since) else { throw AccountingError.invalidTime(option: "--since", value: since) }
        guard let end = CDRTimestamp.parse(until) else { throw AccountingError.invalidTime(option: "--until", value: until) }
        guard end > start else { throw ValidationError("--until must be after --since") }
        return (CDRTimestamp.format(start), CDRTimestamp.format(end))
    }
}

/// The `--db` option of the commands that read or edit the CDR file.
struct CDRDatabaseOptions: ParsableArguments {
    @Option(name: .customLong("db"), help: "The CDR database (SQLite).")
    var path: String

    func openStore() throws -> CDRStore {
        try CDRStore(path: path)
    }
}
