import Billing
import GRDB

/// One line of the rate sheet in the CDR database. A default rate (no account) names a route and
/// the destination prefix it covers; an account's rate prices the same route differently for that
/// account (its plan). Prices are micro-units of the database's currency (`rates currency`).
///
/// ```swift
/// let route = try Rate(route: "us-dc", prefix: "1202", perMinute: "0.0120", increment: "60/60")
/// let plan = try Rate(route: "us-dc", account: "alice", perMinute: "0.0080", increment: "1/1")
/// ```
struct Rate: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey {
        case id, route, account, prefix, perMinuteMicros = "per_minute_micros"
        case firstIncrement = "first_increment", nextIncrement = "next_increment"
    }

    var id: Int64?
    var route: String
    /// The account whose plan this is; "" for the default rate every account pays.
    var account: String
    /// Destination digits the route covers ("" matches every number); only on a default rate.
    var prefix: String?
    var perMinuteMicros: Int64
    var firstIncrement: Int
    var nextIncrement: Int

    /// - Throws: ``RatingError`` or the ``Billing`` error naming the bad value.
    init(route: String, account: String? = nil, prefix: String? = nil, perMinute: String, increment: String) throws {
        guard !route.isEmpty, route.count <= 64, !route.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw RatingError.badRoute(route)
        }
        if let account, account.isEmpty { throw RatingError.badAccount }
        switch (account, prefix) {
        case (nil, nil): throw RatingError.prefixRequired(route)
        case (.some, .some): throw RatingError.prefixOnPlan
        case (nil, .some(let prefix)):
            guard prefix.isEmpty || DialString.digits(of: prefix) != nil else { throw RatingError.badPrefix(prefix) }
            self.prefix = prefix.isEmpty ? "" : DialString.digits(of: prefix)
        case (.some, nil): self.prefix = nil
        }
        let tariff = Tariff(perMinute: try Money(parsing: perMinute), increment: try BillingIncrement(parsing: increment))
        self.route = route
        self.account = account ?? ""
        perMinuteMicros = tariff.perMinute.micros
        firstIncrement = tariff.increment.first
        nextIncrement = tariff.increment.next
    }

    var tariff: Tariff? {
        (try? BillingIncrement(first: firstIncrement, next: nextIncrement)).map { Tariff(perMinute: Money(micros: perMinuteMicros), increment: $0) }
    }

    static func createTables(_ db: Database) throws {
        try db.create(table: "rates") { table in
            table.autoIncrementedPrimaryKey("id")
            table.column("route", .text).notNull()
            table.column("account", .text).notNull().defaults(to: "")
            table.column("prefix", .text)
            table.column("per_minute_micros", .integer).notNull().check { $0 >= 0 }
            table.column("first_increment", .integer).notNull().check { $0 > 0 }
            table.column("next_increment", .integer).notNull().check { $0 > 0 }
            table.uniqueKey(["route", "account"])
        }
        // One row: the currency every amount in this file is in.
        try db.create(table: "rating_settings") { table in
            table.column("id", .integer).primaryKey().check { $0 == 1 }
            table.column("currency", .text).notNull()
        }
        try db.execute(sql: "INSERT INTO rating_settings (id, currency) VALUES (1, ?)", arguments: [RateSheet.defaultCurrency])
    }
}

extension Rate: FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "rates"

    mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

/// The rate sheet read once per rating: finds a call's route by the longest matching prefix, then
/// the caller's account plan for that route, if any.
///
/// ```swift
/// let sheet = RateSheet(rates: rates, currency: "USD")
/// sheet.match(callee: "12025550100", account: "alice")?.plan   // "alice" when alice has a plan for the route
/// ```
struct RateSheet: Sendable {
    /// The currency of a new database, until `rates currency --set` changes it.
    static let defaultCurrency = "USD"
    /// The plan name of a default rate.
    static let defaultPlan = "default"

    struct Match: Equatable {
        var route: String
        var plan: String
        var tariff: Tariff
    }

    let currency: String
    private let routes: [Rate]
    private let plans: [String: Rate]

    init(rates: [Rate], currency: String) {
        self.currency = currency
        routes = rates.filter { $0.account.isEmpty && $0.prefix != nil }.sorted { ($0.prefix?.count ?? 0) > ($1.prefix?.count ?? 0) }
        plans = Dictionary(rates.filter { !$0.account.isEmpty }.map { ("\($0.route)\u{0}\($0.account)", $0) }) { first, _ in first }
    }

    static func load(_ db: Database) throws -> RateSheet {
        RateSheet(rates: try Rate.fetchAll(db),
                  currency: try String.fetchOne(db, sql: "SELECT currency FROM rating_settings WHERE id = 1") ?? defaultCurrency)
    }

    /// The route whose prefix is the longest one `callee` starts with (a callee that is no number,
    /// such as `bob`, matches only the "" prefix), priced by `account`'s plan when it has one.
    func match(callee: String?, account: String?) -> Match? {
        let number = callee.map(Self.user).flatMap(DialString.digits)
        guard let route = routes.first(where: { rate in
            guard let prefix = rate.prefix else { return false }
            return prefix.isEmpty || number?.hasPrefix(prefix) == true
        }) else { return nil }
        let plan = account.flatMap { plans["\(route.route)\u{0}\($0)"] }
        guard let tariff = (plan ?? route).tariff else { return nil }
        return Match(route: route.route, plan: plan?.account ?? Self.defaultPlan, tariff: tariff)
    }

    /// Prices a CDR: its route and plan, and for a finished call the billed seconds and charge (a call
    /// that never connected costs 0). A redirected call gets its route but no charge: the bridge never
    /// sees its talk time. Without a matching rate every rating column is cleared (unrated).
    func rate(_ cdr: inout CDR) {
        guard let match = match(callee: cdr.callee, account: cdr.payingAccount) else {
            (cdr.rateRoute, cdr.ratePlan, cdr.ratePerMinuteMicros, cdr.rateIncrement) = (nil, nil, nil, nil)
            (cdr.billedSeconds, cdr.chargeMicros, cdr.currency) = (nil, nil, nil)
            return
        }
        cdr.rateRoute = match.route
        cdr.ratePlan = match.plan
        cdr.ratePerMinuteMicros = match.tariff.perMinute.micros
        cdr.rateIncrement = match.tariff.increment.description
        cdr.currency = currency
        let talkMs: Int64?
        switch cdr.outcome {
        case "routed": talkMs = nil
        case "rejected": talkMs = 0
        default: talkMs = cdr.endedAt == nil ? nil : cdr.sipStatus == 200 ? Int64((cdr.talkMs ?? 0).rounded()) : 0
        }
        if let talkMs {
            let (billed, charge) = match.tariff.rate(talkMs: talkMs)
            cdr.billedSeconds = billed
            cdr.chargeMicros = charge.micros
        } else {
            (cdr.billedSeconds, cdr.chargeMicros) = (nil, nil)
        }
    }

    /// The user part of `sip:user@host;...` (an originated call's callee), else the text itself.
    private static func user(_ text: String) -> String {
        guard text.hasPrefix("sip:") || text.hasPrefix("sips:") else { return text }
        let rest = text.drop { $0 != ":" }.dropFirst()
        guard let at = rest.firstIndex(of: "@") else { return "" }
        return String(rest[..<at])
    }
}

extension CDRStore {
    /// Adds or replaces the rate of (`route`, account); an account's plan needs the route's default rate.
    /// - Throws: ``RatingError`` when the prefix belongs to another route or the route does not exist.
    @discardableResult
    func setRate(_ rate: Rate) throws -> Rate {
        try database.write { db in
            if rate.account.isEmpty {
                if let other = try Rate.filter(Column("account") == "" && Column("prefix") == rate.prefix && Column("route") != rate.route).fetchOne(db) {
                    throw RatingError.prefixTaken(prefix: rate.prefix ?? "", route: other.route)
                }
            } else if try Rate.filter(Column("account") == "" && Column("route") == rate.route).fetchCount(db) == 0 {
                throw RatingError.unknownRoute(rate.route)
            }
            try Rate.filter(Column("route") == rate.route && Column("account") == rate.account).deleteAll(db)
            var saved = rate
            try saved.insert(db)
            return saved
        }
    }

    /// Removes a route's default rate (and with it every plan's rate of the route), or one account's plan rate.
    func removeRate(route: String, account: String?) throws {
        let deleted = try database.write { db in
            let rows = Rate.filter(Column("route") == route)
            return try (account.map { rows.filter(Column("account") == $0) } ?? rows).deleteAll(db)
        }
        if deleted == 0 { throw RatingError.noSuchRate(route: route, account: account) }
    }

    /// Every rate: routes by name, each route's default first.
    func rates() throws -> [Rate] {
        try database.read { db in try Rate.order(Column("route"), Column("account")).fetchAll(db) }
    }

    func currency() throws -> String {
        try database.read { db in try RateSheet.load(db).currency }
    }

    /// Changes the currency of every amount in the file; existing rates are not converted.
    func setCurrency(_ code: String) throws {
        let code = try Currency.validated(code)
        try database.write { db in try db.execute(sql: "UPDATE rating_settings SET currency = ? WHERE id = 1", arguments: [code]) }
    }

    /// Rates again, with the current sheet, every CDR decided in `since..<until`; returns how many
    /// and their new total.
    func rerate(since: String, until: String) throws -> (count: Int, total: Money) {
        try database.write { db in
            let sheet = try RateSheet.load(db)
            var total = Money.zero
            let cdrs = try CDR.filter(Column("decided_at") >= since && Column("decided_at") < until).fetchAll(db)
            for var cdr in cdrs {
                sheet.rate(&cdr)
                total += Money(micros: cdr.chargeMicros ?? 0)
                try cdr.update(db)
            }
            return (cdrs.count, total)
        }
    }
}

/// Why a rate or a rating command was refused.
enum RatingError: Error, Equatable, CustomStringConvertible {
    case badRoute(String)
    case badAccount
    case badPrefix(String)
    case prefixRequired(String)
    case prefixOnPlan
    case prefixTaken(prefix: String, route: String)
    case unknownRoute(String)
    case noSuchRate(route: String, account: String?)

    var description: String {
        switch self {
        case .badRoute(let route): "a route name is 1 to 64 characters without spaces, got \"\(route)\""
        case .badAccount: "--account must not be empty"
        case .badPrefix(let prefix): "--prefix must be digits (a leading + and separators are ignored), got \"\(prefix)\""
        case .prefixRequired(let route): "route \(route) needs --prefix: the dialled numbers it covers (\"\" for every number)"
        case .prefixOnPlan: "an account's plan prices an existing route: give --route and --account without --prefix"
        case .prefixTaken(let prefix, let route): "prefix \"\(prefix)\" already belongs to route \(route)"
        case .unknownRoute(let route): "no route \(route): create it first with --route \(route) --prefix DIGITS"
        case .noSuchRate(let route, let account): "no rate for route \(route)\(account.map { " and account \($0)" } ?? "")"
        }
    }
}
