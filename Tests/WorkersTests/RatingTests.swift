import Billing
import BusSchema
import Foundation
import Prometheus
import Testing
@testable import Workers

/// Rated CDRs: known calls through the store's events → known charges, PDD and totals.
@Suite struct RatingTests {
    let path = temporaryDatabasePath()
    static let base = AccountingTests.base

    static func event(_ seq: UInt64, call: String, at seconds: Double, _ body: EventBody) -> Event {
        Event(bridgeId: "b1", seq: seq, timestamp: base.addingTimeInterval(seconds), callId: call, body: body)
    }

    static func offered(_ seq: UInt64, call: String, to number: String = "12025550100", account: String? = "alice", at: Double) -> Event {
        event(seq, call: call, at: at, .callOffered(offer(to: number, authUser: account)))
    }

    /// A bridged call: offered at `start`, rings after `pdd`, connects, talks `talk` seconds, ends.
    static func bridgedCall(_ seq: UInt64, call: String, to number: String = "12025550100", account: String? = "alice", start: Double,
                            pdd: Double = 0.8, talk: Double) -> [Event] {
        let answer = start + pdd + 1
        return [
            offered(seq, call: call, to: number, account: account, at: start),
            event(seq + 1, call: call, at: start + 0.01, .callRouted(Routed(action: .bridge, targets: [Target(uri: "sip:bob@x")],
                                                                           workerId: "w", fallback: false, decisionMs: 1))),
            event(seq + 2, call: call, at: start + pdd, .callRinging(Ringing(leg: .b, status: 180, earlyMedia: false))),
            event(seq + 3, call: call, at: start + pdd + 0.5, .callRinging(Ringing(leg: .b, status: 183, earlyMedia: true))),
            event(seq + 4, call: call, at: answer, .callConnected(Connected(a: "sip:alice@a", b: "sip:bob@x"))),
            event(seq + 5, call: call, at: answer + talk, .callEnded(Ended(cause: .normalClearing, by: .a, durationMs: (answer + talk - start) * 1000,
                                                                          talkMs: talk * 1000))),
        ]
    }

    static func failedCall(_ seq: UInt64, call: String, start: Double) -> [Event] {
        [offered(seq, call: call, at: start),
         event(seq + 1, call: call, at: start + 0.01, .callRouted(Routed(action: .bridge, targets: [Target(uri: "sip:bob@x")],
                                                                        workerId: "w", fallback: false, decisionMs: 1))),
         event(seq + 2, call: call, at: start + 2, .callEnded(Ended(cause: .busy, status: 486, by: .b, durationMs: 2000, talkMs: 0)))]
    }

    func store() throws -> CDRStore {
        let store = try CDRStore(path: path)
        try store.setRate(Rate(route: "us-dc", prefix: "1202", perMinute: "0.0120", increment: "60/60"))
        try store.setRate(Rate(route: "us", prefix: "1", perMinute: "0.0100", increment: "1/1"))
        try store.setRate(Rate(route: "us-dc", account: "bob", perMinute: "0.0060", increment: "1/1"))
        return store
    }

    func cdr(_ store: CDRStore, _ call: String) throws -> CDR {
        try #require(try store.cdrs().first { $0.callId == call })
    }

    @Test func aCallIsRatedWhenItEnds60Over60() throws {
        let store = try store()
        let events = Self.bridgedCall(1, call: "c1", start: 0, talk: 61)
        for event in events.dropLast() { try store.apply(event) }
        var cdr = try cdr(store, "c1")
        #expect(cdr.ringingAt == "2027-01-15T08:00:00.800Z" && cdr.pddMs == 800)
        #expect(cdr.chargeMicros == nil && cdr.billedSeconds == nil)
        try store.apply(events.last!)
        cdr = try self.cdr(store, "c1")
        #expect(cdr.rateRoute == "us-dc" && cdr.ratePlan == "default")
        #expect(cdr.ratePerMinuteMicros == 12_000 && cdr.rateIncrement == "60/60")
        #expect(cdr.billedSeconds == 120 && cdr.chargeMicros == 24_000 && cdr.currency == "USD")
    }

    @Test func theLongestPrefixPicksTheRouteAnd1Over1BillsSeconds() throws {
        let store = try store()
        for event in Self.bridgedCall(1, call: "c1", to: "+1 (415) 555-0100", start: 0, talk: 61) { try store.apply(event) }
        let cdr = try cdr(store, "c1")
        #expect(cdr.rateRoute == "us" && cdr.billedSeconds == 61 && cdr.chargeMicros == 10_167)   // 61 × 0.01 / 60, rounded up
    }

    @Test func anAccountPlanOverridesTheRoutesRate() throws {
        let store = try store()
        for event in Self.bridgedCall(1, call: "c1", account: "bob", start: 0, talk: 61) { try store.apply(event) }
        let cdr = try cdr(store, "c1")
        #expect(cdr.rateRoute == "us-dc" && cdr.ratePlan == "bob")
        #expect(cdr.billedSeconds == 61 && cdr.chargeMicros == 6_100)
    }

    @Test func theBillToAccountsPlanPricesTheCallAndItIsTheCallsAccount() async throws {
        let store = try store()
        var events = Self.bridgedCall(1, call: "c1", account: "alice", start: 0, talk: 61)
        var offered = offer(to: "12025550100", authUser: "alice")
        offered.headers = ["x-switchboard-billing-account": "bob"]
        events[0] = Self.event(1, call: "c1", at: 0, .callOffered(offered))
        let registry = PrometheusCollectorRegistry()
        for event in events {
            if let finished = try await store.apply(event).finished { AccountingMetrics(registry: registry).record(finished) }
        }
        let cdr = try cdr(store, "c1")
        #expect(cdr.authAccount == "alice" && cdr.billTo == "bob" && cdr.ratePlan == "bob" && cdr.chargeMicros == 6_100)
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self).contains(#"switchboard_cdr_calls_total{account="bob",route="us-dc",result="answered"} 1"#))
    }

    @Test func failedZeroLengthRejectedAndRedirectedCalls() throws {
        let store = try store()
        for event in Self.failedCall(1, call: "busy", start: 0) { try store.apply(event) }
        for event in Self.bridgedCall(10, call: "zero", start: 10, talk: 0) { try store.apply(event) }
        try store.apply(Self.offered(20, call: "rej", at: 20))
        try store.apply(AccountingTests.rejected(21, call: "rej"))
        try store.apply(Self.offered(22, call: "302", at: 22))
        try store.apply(AccountingTests.routed(23, call: "302"))
        let busy = try cdr(store, "busy"), zero = try cdr(store, "zero"), rejected = try cdr(store, "rej"), redirected = try cdr(store, "302")
        #expect(busy.rateRoute == "us-dc" && busy.billedSeconds == 0 && busy.chargeMicros == 0)
        #expect(zero.sipStatus == 200 && zero.billedSeconds == 0 && zero.chargeMicros == 0)
        #expect(rejected.rateRoute == "us-dc" && rejected.chargeMicros == 0)
        // The bridge never sees a redirected call's talk time: routed, not charged.
        #expect(redirected.rateRoute == "us-dc" && redirected.chargeMicros == nil && redirected.billedSeconds == nil)
    }

    @Test func aCallNoRateMatchesIsUnrated() throws {
        let store = try store()
        for event in Self.bridgedCall(1, call: "c1", to: "4420", start: 0, talk: 30) { try store.apply(event) }
        let cdr = try cdr(store, "c1")
        #expect(cdr.rateRoute == nil && cdr.chargeMicros == nil && cdr.currency == nil)
    }

    @Test func rerateAppliesTheCurrentRatesToAPeriod() throws {
        let store = try store()
        for event in Self.bridgedCall(1, call: "c1", start: 0, talk: 61) { try store.apply(event) }
        try store.setRate(Rate(route: "us-dc", prefix: "1202", perMinute: "0.0300", increment: "30/6"))
        try store.setCurrency("EUR")
        let (count, total) = try store.rerate(since: "2027-01-15T08:00:00.000Z", until: "2027-01-15T09:00:00.000Z")
        #expect(count == 1 && total == Money(micros: 33_000))   // 66 s × 0.03 / 60
        let cdr = try cdr(store, "c1")
        #expect(cdr.billedSeconds == 66 && cdr.chargeMicros == 33_000 && cdr.currency == "EUR" && cdr.rateIncrement == "30/6")
    }

    @Test func ratesAreCheckedByName() throws {
        let store = try store()
        #expect(throws: RatingError.unknownRoute("uk")) { try store.setRate(Rate(route: "uk", account: "bob", perMinute: "1", increment: "1/1")) }
        #expect(throws: RatingError.prefixTaken(prefix: "1202", route: "us-dc")) {
            try store.setRate(Rate(route: "dc2", prefix: "+1 202", perMinute: "1", increment: "1/1"))
        }
        #expect(throws: RatingError.prefixRequired("uk")) { try Rate(route: "uk", perMinute: "1", increment: "1/1") }
        #expect(throws: RatingError.prefixOnPlan) { try Rate(route: "uk", account: "a", prefix: "44", perMinute: "1", increment: "1/1") }
        #expect(throws: RatingError.badPrefix("44x")) { try Rate(route: "uk", prefix: "44x", perMinute: "1", increment: "1/1") }
        #expect(throws: MoneyError.notADecimal("1,5")) { try Rate(route: "uk", prefix: "44", perMinute: "1,5", increment: "1/1") }
        #expect(throws: TariffError.badIncrement("60")) { try Rate(route: "uk", prefix: "44", perMinute: "1", increment: "60") }
        #expect(throws: MoneyError.badCurrency("euro")) { try store.setCurrency("euro") }
        try store.removeRate(route: "us-dc", account: nil)
        #expect(try store.rates().map(\.route) == ["us"])
        #expect(throws: RatingError.noSuchRate(route: "us-dc", account: "bob")) { try store.removeRate(route: "us-dc", account: "bob") }
    }

    @Test func finishedCDRsFeedTheMetrics() async throws {
        let store = try store()
        let registry = PrometheusCollectorRegistry()
        let metrics = AccountingMetrics(registry: registry)
        for event in Self.bridgedCall(1, call: "c1", start: 0, talk: 61) + Self.failedCall(10, call: "c2", start: 5) {
            if let finished = try await store.apply(event).finished { metrics.record(finished) }
        }
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#"switchboard_cdr_calls_total{account="alice",route="us-dc",result="answered"} 1"#))
        #expect(text.contains(#"switchboard_cdr_calls_total{account="alice",route="us-dc",result="failed"} 1"#))
        #expect(text.contains(#"switchboard_cdr_charge_micros_total{account="alice",route="us-dc",currency="USD"} 24000"#))
        #expect(text.contains(#"switchboard_cdr_billed_seconds_total{account="alice",route="us-dc"} 120"#))
        #expect(text.contains(#"switchboard_cdr_talk_seconds_total{account="alice",route="us-dc"} 61.0"#))
        #expect(text.contains(#"switchboard_cdr_pdd_seconds_count{account="alice",route="us-dc"} 1"#))
    }

    private func run(_ arguments: [String]) throws -> String {
        let command = try SwitchboardWorker.parseAsRoot(arguments)
        switch command {
        case let command as RatesCommand.Set: return try command.execute()
        case let command as RatesCommand.List: return try command.execute()
        case let command as RatesCommand.CurrencyCommand: return try command.execute()
        case let command as RatesCommand.Rerate: return try command.execute()
        case let command as CDRCommand.Export: return try command.execute()
        case let command as CDRCommand.Totals: return try command.execute()
        default: Issue.record("unexpected command \(command)"); return ""
        }
    }

    @Test func theCLISetsRatesExportsCSVAndTotals() throws {
        #expect(try run(["rates", "set", "--db", path, "--route", "us-dc", "--prefix", "1202", "--per-minute", "0.0120", "--increment", "60/60"])
                == "rate us-dc for prefix 1202: 0.012000 USD/min, 60/60")
        #expect(try run(["rates", "set", "--db", path, "--route", "us-dc", "--account", "bob", "--per-minute", "0.006"])
                == "rate us-dc for account bob: 0.006000 USD/min, 60/60")
        #expect(try run(["rates", "currency", "--db", path, "--set", "EUR"]) == "EUR")
        #expect(try run(["rates", "list", "--db", path]) == """
            ROUTE  PREFIX  PLAN     PER MINUTE    INCREMENT
            us-dc  1202    default  0.012000 EUR  60/60
            us-dc          bob      0.006000 EUR  60/60
            """)
        let store = try CDRStore(path: path)
        for event in Self.bridgedCall(1, call: "c1", start: 0, talk: 61) + Self.failedCall(10, call: "c2", start: 100) { try store.apply(event) }
        let period = ["--since", "2027-01-15T08:00:00Z", "--until", "2027-01-15T09:00:00Z"]
        let csv = try run(["cdrs", "export", "--db", path] + period)
        let lines = csv.components(separatedBy: "\r\n")
        #expect(lines[0] == CDRExport.columns.joined(separator: ","))
        #expect(lines.count == 4 && lines[3].isEmpty)
        #expect(lines[1] == "2027-01-15T08:00:00.010Z,b1,c1,a84b4c76e66710@pc33.example.com,alice,12025550100,alice,,bridged,200,normal_clearing,"
                + "2027-01-15T08:00:00.000Z,2027-01-15T08:00:00.800Z,2027-01-15T08:00:01.800Z,2027-01-15T08:01:02.800Z,800,1800,61000,"
                + "us-dc,default,0.012000,60/60,120,0.024000,EUR,,,")
        #expect(lines[2].hasPrefix("2027-01-15T08:01:40.010Z,b1,c2,") && lines[2].hasSuffix(",us-dc,default,0.012000,60/60,0,0.000000,EUR,,,"))
        #expect(try run(["rates", "rerate", "--db", path] + period) == "re-rated 2 CDRs: 0.024000 EUR")
        #expect(try run(["cdrs", "totals", "--db", path, "--by", "route"] + period) == """
            ROUTE  CALLS  ANSWERED  FAILED  REDIRECTED  ASR    ACD S  PDD MS  BILLED S  CHARGE
            us-dc  2      1         1       0           50.0%  61.0   800     120       0.024000 EUR
            total  2      1         1       0           50.0%  61.0   800     120       0.024000 EUR
            """)
        #expect(throws: AccountingError.invalidTime(option: "--until", value: "soon")) {
            try run(["cdrs", "export", "--db", path, "--since", "2027-01-15T08:00:00Z", "--until", "soon"])
        }
    }
}
