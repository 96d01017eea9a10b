import Billing
import Foundation
import HTTPTypes
import Hummingbird

/// `GET /cdrs.csv` (the CDRs of a period as CSV) and `GET /stats` (calls, ASR, ACD, PDD, billed time
/// and charges of a period, in total, per account or per route, and per interval for the operator
/// view's chart). Admin principals see every account's calls, others only their own, as `/cdrs`.
struct StatsRoutes: Sendable {
    let reader: CDRReader?
    /// Most rows one CSV response carries; a longer period is refused with the count.
    var exportLimit = 100_000
    /// Most rows the statistics sum in one request.
    var statisticsLimit = 500_000

    func register(on group: RouterGroup<GatewayContext>) {
        group.get("cdrs.csv", use: export)
        group.get("stats", use: statistics)
    }

    /// The period of a request: `since` and `until` (ISO 8601), by default the 24 hours up to now; one
    /// that ends where or before it starts is empty (as `/cdrs` reads it), not an error.
    private func period(_ request: Request) throws -> (since: Date, until: Date) {
        let parameters = request.uri.queryParameters
        func time(_ name: String) throws -> Date? {
            guard let raw = parameters.get(name) else { return nil }
            guard let date = Timestamp.parse(raw) else {
                throw Problem.badRequest("`\(name)` must be an ISO 8601 time such as 2026-11-26T20:00:00Z", field: name)
            }
            return date
        }
        let until = try time("until") ?? Date()
        let since = try time("since") ?? until.addingTimeInterval(-86_400)
        return (since, max(since, until))
    }

    private func read(_ since: Date, _ until: Date, account: String?, limit: Int,
                      context: GatewayContext) async throws -> (rows: [CDRRow], currency: String?) {
        guard let reader else {
            throw Problem(status: .serviceUnavailable, kind: "no-cdrs", title: "No CDR database",
                          detail: "the gateway has no cdr_database configured")
        }
        do {
            return try await reader.rows(since: Timestamp.format(since), until: Timestamp.format(until), account: account, limit: limit)
        } catch let tooMany as CDRReader.TooMany {
            throw Problem.badRequest("the period holds \(tooMany.count) CDRs, more than \(tooMany.limit): ask for a shorter one",
                                     field: "since")
        } catch {
            context.logger.error("CDR database unreadable", metadata: ["gateway.error": "\(error)"])
            throw Problem(status: .serviceUnavailable, kind: "no-cdrs", title: "CDR database unavailable",
                          detail: "the CDR database could not be read")
        }
    }

    @Sendable func export(_ request: Request, context: GatewayContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let (since, until) = try period(request)
        let (rows, _) = try await read(since, until, account: principal.policy.admin ? nil : principal.owner, limit: exportLimit,
                                       context: context)
        let name = "cdrs-\(Timestamp.format(since))-\(Timestamp.format(until)).csv".replacingOccurrences(of: ":", with: "")
        return Response(status: .ok, headers: [.contentType: CDRExport.mediaType, .contentDisposition: "attachment; filename=\"\(name)\"",
                                               .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: CDRExport.csv(rows))))
    }

    @Sendable func statistics(_ request: Request, context: GatewayContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let parameters = request.uri.queryParameters
        let (since, until) = try period(request)
        let grouping: CallStatistics.Grouping
        switch parameters.get("by") {
        case nil: grouping = .route
        case .some(let raw):
            guard let parsed = CallStatistics.Grouping(rawValue: raw) else {
                throw Problem.badRequest("`by` must be `account` or `route`", field: "by")
            }
            grouping = parsed
        }
        var interval = 3600
        if let raw = parameters.get("interval") {
            guard let seconds = Int(raw), (60...2_678_400).contains(seconds) else {
                throw Problem.badRequest("`interval` must be a whole number of seconds in 60...2678400", field: "interval")
            }
            interval = seconds
        }
        // A long period with a short interval is drawn coarser rather than refused; `interval_s` says which was used.
        let span = until.timeIntervalSince(since)
        interval = max(interval, Int((span / Double(CallStatistics.maximumIntervals)).rounded(.up)))
        let (rows, currency) = try await read(since, until, account: principal.policy.admin ? nil : principal.owner,
                                              limit: statisticsLimit, context: context)
        let stats: CallStatistics
        do {
            stats = try CallStatistics(rows.compactMap(CallRecord.init(row:)), since: since, until: until, interval: interval, by: grouping)
        } catch {
            throw Problem.badRequest(error.description, field: "interval")
        }
        return try json(StatsBody(stats, currency: currency))
    }
}

/// The JSON of `GET /stats`.
struct StatsBody: Encodable {
    struct Totals: Encodable {
        var key: String?
        var attempts, answered, failed, redirected, inProgress, rated: Int
        var asr, acdS, pddMs: Double?
        var talkS: Double
        var billedS: Int64
        var charge: String

        enum CodingKeys: String, CodingKey {
            case key, attempts, answered, failed, redirected, inProgress = "in_progress", rated, asr, acdS = "acd_s", pddMs = "pdd_ms"
            case talkS = "talk_s", billedS = "billed_s", charge
        }

        init(_ totals: CallTotals, key: String? = nil) {
            self.key = key
            (attempts, answered, failed, redirected, inProgress, rated) =
                (totals.attempts, totals.answered, totals.failed, totals.redirected, totals.inProgress, totals.rated)
            (asr, acdS, pddMs) = (totals.asr, totals.acdSeconds, totals.pddMs)
            talkS = Double(totals.talkMs) / 1000
            billedS = totals.billedSeconds
            charge = totals.charge.description
        }
    }

    struct Interval: Encodable {
        var start: String
        var total: Totals
        var keys: [Totals]
    }

    var since, until: String
    var intervalS: Int
    var by: String
    var currency: String?
    var total: Totals
    var keys: [Totals]
    var intervals: [Interval]

    enum CodingKeys: String, CodingKey {
        case since, until, intervalS = "interval_s", by, currency, total, keys, intervals
    }

    init(_ stats: CallStatistics, currency: String?) {
        since = Timestamp.format(stats.since)
        until = Timestamp.format(stats.until)
        intervalS = stats.interval
        by = stats.grouping.rawValue
        self.currency = currency
        total = Totals(stats.overall)
        keys = stats.totals.keys.sorted().map { Totals(stats.totals[$0]!, key: $0) }
        intervals = stats.intervals.map { interval in
            Interval(start: Timestamp.format(interval.start), total: Totals(interval.overall),
                     keys: interval.byKey.keys.sorted().map { Totals(interval.byKey[$0]!, key: $0) })
        }
    }
}
