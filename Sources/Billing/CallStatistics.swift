import Foundation

/// What statistics need of one CDR.
///
/// ```swift
/// let record = CallRecord(decidedAt: date, account: "alice", route: "us-dc", outcome: .answered, talkMs: 61_000, pddMs: 850)
/// ```
public struct CallRecord: Sendable, Equatable {
    /// How the call went, as far as statistics care.
    public enum Outcome: String, Sendable {
        /// Connected (talk time may be 0 for a call hung up at once).
        case answered
        /// Rejected, busy, unanswered, cancelled: an attempt that never connected.
        case failed
        /// Sent on with a 302: the bridge never learns whether it was answered.
        case redirected
        /// Bridged or originated and not ended yet.
        case inProgress = "in_progress"
    }

    public var decidedAt: Date
    public var account: String?
    public var route: String?
    public var outcome: Outcome
    public var talkMs: Int64
    /// From the offer to the first 18x; nil when nothing rang.
    public var pddMs: Int64?
    public var billedSeconds: Int64
    /// Nil when the call has no rate (no matching route, or a redirected call).
    public var charge: Money?

    public init(decidedAt: Date, account: String?, route: String?, outcome: Outcome, talkMs: Int64 = 0, pddMs: Int64? = nil,
                billedSeconds: Int64 = 0, charge: Money? = nil) {
        self.decidedAt = decidedAt
        self.account = account
        self.route = route
        self.outcome = outcome
        self.talkMs = talkMs
        self.pddMs = pddMs
        self.billedSeconds = billedSeconds
        self.charge = charge
    }

    /// The outcome of a CDR's columns: `outcome` (`routed`, `rejected`, `bridged`, `originated`),
    /// and for bridged and originated calls whether `call.connected` (`answered_at` with status 200)
    /// and `call.ended` (`ended_at`) came.
    public static func outcome(cdrOutcome: String, sipStatus: Int, endedAt: String?) -> Outcome {
        switch cdrOutcome {
        case "routed": .redirected
        case "rejected": .failed
        default: sipStatus == 200 ? .answered : endedAt == nil ? .inProgress : .failed
        }
    }
}

/// Counts and sums of a set of calls, and the ratios telephony people read them by.
public struct CallTotals: Sendable, Equatable {
    public var attempts = 0
    public var answered = 0
    public var failed = 0
    public var redirected = 0
    public var inProgress = 0
    public var talkMs: Int64 = 0
    public var billedSeconds: Int64 = 0
    public var charge = Money.zero
    /// Calls with a charge (rated); the rest have no rate.
    public var rated = 0
    var pddSumMs: Int64 = 0
    var pddCount = 0

    public init() {}

    public mutating func add(_ record: CallRecord) {
        attempts += 1
        switch record.outcome {
        case .answered: answered += 1
        case .failed: failed += 1
        case .redirected: redirected += 1
        case .inProgress: inProgress += 1
        }
        talkMs += max(0, record.talkMs)
        billedSeconds += record.billedSeconds
        if let charge = record.charge {
            self.charge += charge
            rated += 1
        }
        if let pdd = record.pddMs {
            pddSumMs += pdd
            pddCount += 1
        }
    }

    /// Answer-seizure ratio: answered over answered + failed. Redirected calls (whose answer the
    /// bridge never sees) and calls still in progress are left out; nil with nothing to divide.
    public var asr: Double? {
        answered + failed == 0 ? nil : Double(answered) / Double(answered + failed)
    }

    /// Average call duration: talk time over answered calls, seconds.
    public var acdSeconds: Double? {
        answered == 0 ? nil : Double(talkMs) / 1000 / Double(answered)
    }

    /// Average post-dial delay (offer to first 18x) of the calls that rang, milliseconds.
    public var pddMs: Double? {
        pddCount == 0 ? nil : Double(pddSumMs) / Double(pddCount)
    }
}

/// Totals of a period per account or per route, and the same per interval for a chart.
///
/// ```swift
/// let stats = try CallStatistics(records, since: start, until: end, interval: 3600, by: .route)
/// stats.totals["us-dc"]?.asr
/// stats.intervals.map(\.overall.attempts)   // calls per hour
/// ```
public struct CallStatistics: Sendable {
    /// What the totals are keyed by.
    public enum Grouping: String, Sendable, CaseIterable {
        case account, route
    }

    /// One interval: its start and its totals, overall and per key.
    public struct Interval: Sendable {
        public var start: Date
        public var overall = CallTotals()
        public var byKey: [String: CallTotals] = [:]
    }

    /// The key of calls without an account (an unauthenticated caller).
    public static let noAccount = "(none)"
    /// The key of calls no rate matched.
    public static let unrated = "(unrated)"
    /// More intervals than a chart can show are refused.
    public static let maximumIntervals = 2000

    public let since: Date
    public let until: Date
    public let interval: Int
    public let grouping: Grouping
    public private(set) var overall = CallTotals()
    public private(set) var totals: [String: CallTotals] = [:]
    public private(set) var intervals: [Interval]

    /// Sums `records` decided in `since..<until` into intervals of `interval` seconds from `since`; a
    /// period that ends where (or before) it starts holds no call and no interval.
    /// - Throws: ``StatisticsError`` for a non-positive interval or too many intervals.
    public init(_ records: [CallRecord], since: Date, until: Date, interval: Int, by grouping: Grouping) throws(StatisticsError) {
        guard interval > 0 else { throw .badInterval(interval) }
        let span = max(0, until.timeIntervalSince(since))
        let count = Int((span / Double(interval)).rounded(.up))
        guard count <= Self.maximumIntervals else { throw .tooManyIntervals(count) }
        self.since = since
        self.until = until
        self.interval = interval
        self.grouping = grouping
        intervals = (0..<count).map { Interval(start: since.addingTimeInterval(Double($0 * interval))) }
        for record in records where record.decidedAt >= since && record.decidedAt < until {
            let key = Self.key(of: record, by: grouping)
            overall.add(record)
            totals[key, default: CallTotals()].add(record)
            let index = min(count - 1, Int(record.decidedAt.timeIntervalSince(since)) / interval)
            intervals[index].overall.add(record)
            intervals[index].byKey[key, default: CallTotals()].add(record)
        }
    }

    public static func key(of record: CallRecord, by grouping: Grouping) -> String {
        switch grouping {
        case .account: record.account ?? noAccount
        case .route: record.route ?? unrated
        }
    }
}

/// Why a statistics request was refused.
public enum StatisticsError: Error, Equatable, CustomStringConvertible {
    case badInterval(Int)
    case tooManyIntervals(Int)

    public var description: String {
        switch self {
        case .badInterval(let seconds): "the interval must be a positive number of seconds, got \(seconds)"
        case .tooManyIntervals(let count):
            "the period holds \(count) intervals, more than \(CallStatistics.maximumIntervals): choose a longer interval"
        }
    }
}
