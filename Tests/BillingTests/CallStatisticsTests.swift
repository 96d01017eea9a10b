import Billing
import Foundation
import Testing

/// Known calls → known totals, ASR, ACD, PDD and calls per interval.
@Suite struct CallStatisticsTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func at(_ seconds: Double) -> Date { start.addingTimeInterval(seconds) }

    static let records: [CallRecord] = [
        CallRecord(decidedAt: at(10), account: "alice", route: "us", outcome: .answered, talkMs: 61_000, pddMs: 800,
                   billedSeconds: 120, charge: Money(micros: 24_000)),
        CallRecord(decidedAt: at(20), account: "alice", route: "us", outcome: .answered, talkMs: 29_000, pddMs: 1_200,
                   billedSeconds: 60, charge: Money(micros: 12_000)),
        CallRecord(decidedAt: at(30), account: "alice", route: "us", outcome: .failed, pddMs: 400, charge: .zero),
        CallRecord(decidedAt: at(3_700), account: "bob", route: "uk", outcome: .failed, charge: .zero),
        CallRecord(decidedAt: at(3_800), account: nil, route: nil, outcome: .redirected),
        CallRecord(decidedAt: at(3_900), account: "bob", route: "uk", outcome: .inProgress),
        // outside the period
        CallRecord(decidedAt: at(7_200), account: "alice", route: "us", outcome: .answered, talkMs: 1_000),
        CallRecord(decidedAt: at(-1), account: "alice", route: "us", outcome: .answered, talkMs: 1_000),
    ]

    @Test func totalsPerRouteWithASRACDAndPDD() throws {
        let stats = try CallStatistics(Self.records, since: Self.start, until: Self.at(7_200), interval: 3_600, by: .route)
        let us = try #require(stats.totals["us"])
        #expect(us.attempts == 3 && us.answered == 2 && us.failed == 1)
        #expect(us.asr == 2.0 / 3.0)
        #expect(us.acdSeconds == 45)         // (61 + 29) / 2
        #expect(us.pddMs == 800)             // (800 + 1200 + 400) / 3
        #expect(us.billedSeconds == 180)
        #expect(us.charge == Money(micros: 36_000))
        #expect(us.rated == 3)
        let uk = try #require(stats.totals["uk"])
        #expect(uk.attempts == 2 && uk.failed == 1 && uk.inProgress == 1 && uk.asr == 0 && uk.acdSeconds == nil && uk.pddMs == nil)
        let unrated = try #require(stats.totals[CallStatistics.unrated])
        #expect(unrated.redirected == 1 && unrated.asr == nil && unrated.rated == 0)
        #expect(stats.overall.attempts == 6)
        #expect(stats.overall.asr == 2.0 / 4.0)
    }

    @Test func callsPerIntervalAndPerAccount() throws {
        let stats = try CallStatistics(Self.records, since: Self.start, until: Self.at(7_200), interval: 3_600, by: .account)
        #expect(stats.intervals.map(\.start) == [Self.start, Self.at(3_600)])
        #expect(stats.intervals.map(\.overall.attempts) == [3, 3])
        #expect(stats.intervals[0].byKey["alice"]?.answered == 2)
        #expect(stats.intervals[1].byKey["bob"]?.attempts == 2)
        #expect(stats.intervals[1].byKey[CallStatistics.noAccount]?.redirected == 1)
        #expect(stats.totals.keys.sorted() == [CallStatistics.noAccount, "alice", "bob"])
    }

    @Test func aPartialLastIntervalIsKept() throws {
        let stats = try CallStatistics([], since: Self.start, until: Self.at(5_000), interval: 3_600, by: .route)
        #expect(stats.intervals.count == 2)
        #expect(stats.overall.attempts == 0 && stats.overall.asr == nil)
    }

    @Test func anEmptyPeriodHoldsNothing() throws {
        let stats = try CallStatistics(Self.records, since: Self.at(20), until: Self.at(20), interval: 60, by: .route)
        #expect(stats.intervals.isEmpty && stats.overall.attempts == 0 && stats.totals.isEmpty)
    }

    @Test func badIntervalsAreRefusedByName() {
        #expect(throws: StatisticsError.badInterval(0)) {
            try CallStatistics([], since: Self.start, until: Self.at(60), interval: 0, by: .route)
        }
        #expect(throws: StatisticsError.tooManyIntervals(86_400)) {
            try CallStatistics([], since: Self.start, until: Self.at(86_400), interval: 1, by: .route)
        }
    }

    @Test func outcomesFromCDRColumns() {
        #expect(CallRecord.outcome(cdrOutcome: "routed", sipStatus: 302, endedAt: nil) == .redirected)
        #expect(CallRecord.outcome(cdrOutcome: "rejected", sipStatus: 503, endedAt: nil) == .failed)
        #expect(CallRecord.outcome(cdrOutcome: "bridged", sipStatus: 200, endedAt: "x") == .answered)
        #expect(CallRecord.outcome(cdrOutcome: "bridged", sipStatus: 486, endedAt: "x") == .failed)
        #expect(CallRecord.outcome(cdrOutcome: "originated", sipStatus: 0, endedAt: nil) == .inProgress)
    }
}
