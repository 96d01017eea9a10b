import BusSchema
import Foundation
import Testing
@testable import Workers

/// CDRs from events, exactly once: the store applies each event and moves the cursor together.
@Suite struct AccountingTests {
    let path = temporaryDatabasePath()
    static let base = Date(timeIntervalSince1970: 1_800_000_000)

    static func offered(_ seq: UInt64, call: String, authUser: String? = "alice", bridge: String = "b1") -> Event {
        Event(bridgeId: bridge, seq: seq, timestamp: base.addingTimeInterval(Double(seq)), callId: call,
              body: .callOffered(offer(to: "12025550100", from: "2125550199", authUser: authUser)))
    }

    static func routed(_ seq: UInt64, call: String) -> Event {
        Event(bridgeId: "b1", seq: seq, timestamp: base.addingTimeInterval(Double(seq)), callId: call,
              body: .callRouted(Routed(targets: [Target(uri: "sip:12025550100@gw1", q: 1), Target(uri: "sip:12025550100@gw2", q: 0.5)],
                                       workerId: "router-1", fallback: false, decisionMs: 0.8)))
    }

    static func rejected(_ seq: UInt64, call: String) -> Event {
        Event(bridgeId: "b1", seq: seq, timestamp: base.addingTimeInterval(Double(seq)), callId: call,
              body: .callRejected(Rejected(status: 503, reason: "Service Unavailable", workerId: nil, fallback: true,
                                           cause: "no_worker", decisionMs: 0.1)))
    }

    @Test func anOfferAndItsOutcomeMakeOneCDR() throws {
        let store = try CDRStore(path: path)
        #expect(try store.apply(Self.offered(1, call: "b1-1")) == .pending)
        #expect(try store.cdrs().isEmpty)
        #expect(try store.apply(Self.routed(2, call: "b1-1")) == .recorded)
        let cdr = try #require(try store.cdrs().first)
        #expect(cdr.bridgeId == "b1")
        #expect(cdr.callId == "b1-1")
        #expect(cdr.sipCallId == "a84b4c76e66710@pc33.example.com")
        #expect(cdr.caller == "alice")
        #expect(cdr.callee == "12025550100")
        #expect(cdr.authAccount == "alice")
        #expect(cdr.outcome == "routed")
        #expect(cdr.sipStatus == 302)
        #expect(cdr.route == #"[{"q":1,"uri":"sip:12025550100@gw1"},{"q":0.5,"uri":"sip:12025550100@gw2"}]"#)
        #expect(cdr.workerId == "router-1")
        #expect(cdr.fallback == false)
        #expect(cdr.decisionMs == 0.8)
        #expect(cdr.offeredAt == "2027-01-15T08:00:01.000Z")
        #expect(cdr.decidedAt == "2027-01-15T08:00:02.000Z")
        #expect(cdr.answeredAt == nil && cdr.endedAt == nil && cdr.talkMs == nil && cdr.endCause == nil)
        #expect(try store.pendingCount() == 0)
        #expect(try store.cursor(bridgeId: nil)?.lastSeq == 2)
    }

    @Test func callerIsTheFromUserWithoutAuthentication() throws {
        let store = try CDRStore(path: path)
        try store.apply(Self.offered(1, call: "b1-1", authUser: nil))
        try store.apply(Self.rejected(2, call: "b1-1"))
        let cdr = try #require(try store.cdrs().first)
        #expect(cdr.caller == "2125550199")
        #expect(cdr.authAccount == nil)
        #expect(cdr.outcome == "rejected")
        #expect(cdr.sipStatus == 503)
        #expect(cdr.fallback == true)
        #expect(cdr.fallbackCause == "no_worker")
        #expect(cdr.route == nil)
    }

    @Test func replayedEventsAreAppliedOnce() throws {
        let store = try CDRStore(path: path)
        let events = [Self.offered(1, call: "b1-1"), Self.routed(2, call: "b1-1"), Self.offered(3, call: "b1-3"), Self.rejected(4, call: "b1-3")]
        for event in events { try store.apply(event) }
        for event in events { #expect(try store.apply(event) == .alreadyApplied) }
        #expect(try store.cdrs().map(\.callId) == ["b1-1", "b1-3"])
    }

    @Test func anOfferSurvivesARestartBeforeItsOutcome() throws {
        try CDRStore(path: path).apply(Self.offered(7, call: "b1-7"))
        let reopened = try CDRStore(path: path)
        #expect(try reopened.cursor(bridgeId: nil)?.lastSeq == 7)
        #expect(try reopened.pendingCount() == 1)
        try reopened.apply(Self.routed(8, call: "b1-7"))
        #expect(try reopened.cdrs().first?.caller == "alice")
    }

    @Test func anOutcomeWithoutItsOfferStillMakesACDR() throws {
        let store = try CDRStore(path: path)
        try store.apply(Self.rejected(40, call: "b1-39"))
        let cdr = try #require(try store.cdrs().first)
        #expect(cdr.sipCallId == nil)
        #expect(cdr.outcome == "rejected")
    }

    @Test func systemEventsMoveTheCursorOnly() throws {
        let store = try CDRStore(path: path)
        let joined = Event(bridgeId: "b1", seq: 3, timestamp: Self.base, callId: nil, body: .workerJoined(WorkerInfo(workerId: "w1")))
        #expect(try store.apply(joined) == .ignored)
        #expect(try store.cursor(bridgeId: "b1")?.lastSeq == 3)
        #expect(try store.cdrs().isEmpty)
    }

    @Test func severalBridgesNeedANamedCursor() throws {
        let store = try CDRStore(path: path)
        try store.apply(Self.offered(1, call: "b1-1"))
        try store.apply(Self.offered(5, call: "b2-5", bridge: "b2"))
        #expect(throws: AccountingError.ambiguousCursor(["b1", "b2"])) { try store.cursor(bridgeId: nil) }
        #expect(try store.cursor(bridgeId: "b2")?.lastSeq == 5)
    }

    private func list(_ arguments: [String]) throws -> String {
        let command = try SwitchboardWorker.parseAsRoot(["cdrs", "list", "--db", path] + arguments)
        return try #require(command as? CDRCommand.List).execute()
    }

    @Test func cdrsListPrintsATableOrJSON() throws {
        #expect(try list([]) == "no CDRs")
        let store = try CDRStore(path: path)
        for event in [Self.offered(1, call: "b1-1"), Self.routed(2, call: "b1-1"), Self.offered(3, call: "b1-3"), Self.rejected(4, call: "b1-3")] {
            try store.apply(event)
        }
        #expect(try list([]) == """
            DECIDED                   BRIDGE  CALL  CALLER  CALLEE       OUTCOME   STATUS  ROUTE/CAUSE                                MS   SIP CALL-ID
            2027-01-15T08:00:02.000Z  b1      b1-1  alice   12025550100  routed    302     sip:12025550100@gw1,sip:12025550100@gw2    0.8  a84b4c76e66710@pc33.example.com
            2027-01-15T08:00:04.000Z  b1      b1-3  alice   12025550100  rejected  503     Service Unavailable (fallback: no_worker)  0.1  a84b4c76e66710@pc33.example.com
            """)
        let json = try list(["--json", "--limit", "1"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        #expect(rows.count == 1)
        #expect(rows.first?["call_id"] as? String == "b1-3")
        #expect(rows.first?["sip_status"] as? Int == 503)
        #expect(try list(["--since", "2027-01-15T08:00:03Z", "--json"]).contains("\"b1-3\""))
        #expect(!(try list(["--since", "2027-01-15T08:00:03Z", "--json"]).contains("\"b1-1\"")))
        #expect(throws: AccountingError.invalidSince("yesterday")) { try list(["--since", "yesterday"]) }
    }
}
