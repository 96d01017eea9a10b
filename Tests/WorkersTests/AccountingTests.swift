import Billing
import BusSchema
import Foundation
import GRDB
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
                                           cause: .noWorker, decisionMs: 0.1)))
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

    static func event(_ seq: UInt64, call: String, at seconds: Double? = nil, _ body: EventBody) -> Event {
        Event(bridgeId: "b1", seq: seq, timestamp: base.addingTimeInterval(seconds ?? Double(seq)), callId: call, body: body)
    }

    static func bridged(_ seq: UInt64, call: String) -> Event {
        event(seq, call: call, .callRouted(Routed(action: .bridge, targets: [Target(uri: "sip:bob@switchboard.local")],
                                                 workerId: "pbx", fallback: false, decisionMs: 1.5)))
    }

    @Test func aBridgedCallIsAnsweredAtConnectAndEndsWithItsTalkTime() throws {
        let store = try CDRStore(path: path)
        try store.apply(Self.offered(1, call: "b1-1"))
        #expect(try store.apply(Self.bridged(2, call: "b1-1")) == .recorded)
        var cdr = try #require(try store.cdrs().first)
        #expect(cdr.outcome == "bridged")
        #expect(cdr.sipStatus == 0)
        #expect(cdr.route == #"[{"uri":"sip:bob@switchboard.local"}]"#)

        try store.apply(Self.event(3, call: "b1-1", .callDialing(Dialing(leg: .b, uri: "sip:bob@switchboard.local", sipCallId: "s-b", attempt: 1))))
        try store.apply(Self.event(4, call: "b1-1", .callRinging(Ringing(leg: .b, status: 180, earlyMedia: false))))
        #expect(try store.apply(Self.event(5, call: "b1-1", at: 5.25, .callAnswered(Answered(leg: .b, uri: "sip:bob@switchboard.local", setupMs: 3250)))) == .updated)
        #expect(try store.apply(Self.event(6, call: "b1-1", at: 5.5, .callConnected(Connected(a: "sip:alice@a", b: "sip:bob@switchboard.local")))) == .updated)
        cdr = try #require(try store.cdrs().first)
        #expect(cdr.answeredAt == "2027-01-15T08:00:05.500Z")
        #expect(cdr.setupMs == 4500)
        #expect(cdr.sipStatus == 200)
        #expect(cdr.endedAt == nil && cdr.talkMs == nil && cdr.endCause == nil)

        #expect(try store.apply(Self.event(7, call: "b1-1", at: 65.5, .callEnded(Ended(cause: .normalClearing, by: .a, durationMs: 64_500, talkMs: 60_000)))) == .updated)
        cdr = try #require(try store.cdrs().first)
        #expect(cdr.endedAt == "2027-01-15T08:01:05.500Z")
        #expect(cdr.talkMs == 60_000)
        #expect(cdr.endCause == "normal_clearing")
        #expect(cdr.sipStatus == 200)
        #expect(cdr.caller == "alice" && cdr.callee == "12025550100" && cdr.workerId == "pbx")
        #expect(try store.cdrs().count == 1)
    }

    @Test func aBridgedCallThatFailsKeepsTheFailureStatus() throws {
        let store = try CDRStore(path: path)
        try store.apply(Self.offered(1, call: "b1-1"))
        try store.apply(Self.bridged(2, call: "b1-1"))
        #expect(try store.apply(Self.event(3, call: "b1-1", .callLegFailed(LegFailed(leg: .b, uri: "sip:bob@b", status: 486, reason: "Busy Here", cause: .busy)))) == .ignored)
        try store.apply(Self.event(4, call: "b1-1", .callEnded(Ended(cause: .busy, status: 486, by: .b, durationMs: 3000, talkMs: 0))))
        let cdr = try #require(try store.cdrs().first)
        #expect(cdr.sipStatus == 486)
        #expect(cdr.endCause == "busy")
        #expect(cdr.talkMs == 0)
        #expect(cdr.answeredAt == nil && cdr.setupMs == nil)
    }

    @Test func legBAnsweringWithoutAConnectStillMarksTheAnswer() throws {
        let store = try CDRStore(path: path)
        try store.apply(Self.offered(1, call: "b1-1"))
        try store.apply(Self.bridged(2, call: "b1-1"))
        // Leg A's answer (an originated call's first party) is not the call's answer.
        #expect(try store.apply(Self.event(3, call: "b1-1", .callAnswered(Answered(leg: .a, uri: "sip:alice@a", setupMs: 10)))) == .ignored)
        try store.apply(Self.event(4, call: "b1-1", .callAnswered(Answered(leg: .b, uri: "sip:bob@b", setupMs: 2000))))
        try store.apply(Self.event(5, call: "b1-1", .callEnded(Ended(cause: .callerCancelled, by: .a, durationMs: 4000, talkMs: 0))))
        let cdr = try #require(try store.cdrs().first)
        #expect(cdr.answeredAt == "2027-01-15T08:00:04.000Z")
        #expect(cdr.setupMs == nil)
        #expect(cdr.endCause == "caller_cancelled")
        #expect(cdr.sipStatus == 0)
    }

    @Test func anOriginatedCallGetsItsRowFromTheCommand() throws {
        let store = try CDRStore(path: path)
        let originate = Originate(a: Party(uri: "sip:alice@switchboard.local"), b: Party(uri: "sip:bob@switchboard.local"),
                                  idempotencyKey: "k-1", account: "acme")
        #expect(try store.apply(Self.event(1, call: "b1-o1", .callOriginated(originate))) == .recorded)
        var cdr = try #require(try store.cdrs().first)
        #expect(cdr.outcome == "originated")
        #expect(cdr.caller == "sip:alice@switchboard.local")
        #expect(cdr.callee == "sip:bob@switchboard.local")
        #expect(cdr.authAccount == "acme")
        #expect(cdr.offeredAt == "2027-01-15T08:00:01.000Z" && cdr.decidedAt == cdr.offeredAt)
        #expect(cdr.sipCallId == nil && cdr.route == nil && cdr.workerId == nil)

        try store.apply(Self.event(2, call: "b1-o1", .callAnswered(Answered(leg: .a, uri: "sip:alice@switchboard.local", setupMs: 900))))
        try store.apply(Self.event(3, call: "b1-o1", at: 9.123, .callConnected(Connected(a: "sip:alice@switchboard.local", b: "sip:bob@switchboard.local"))))
        try store.apply(Self.event(4, call: "b1-o1", at: 30, .callEnded(Ended(cause: .hangupCommand, by: .command, durationMs: 29_000, talkMs: 20_877))))
        cdr = try #require(try store.cdrs().first)
        #expect(cdr.answeredAt == "2027-01-15T08:00:09.123Z")
        #expect(cdr.setupMs == 8123)
        #expect(cdr.sipStatus == 200)
        #expect(cdr.endedAt == "2027-01-15T08:00:30.000Z")
        #expect(cdr.talkMs == 20_877)
        #expect(cdr.endCause == "hangup_command")
    }

    @Test func eventsForACallWithoutACDRChangeNothing() throws {
        let store = try CDRStore(path: path)
        #expect(try store.apply(Self.event(8, call: "b1-lost", .callConnected(Connected(a: "sip:a@a", b: "sip:b@b")))) == .ignored)
        #expect(try store.apply(Self.event(9, call: "b1-lost", .callEnded(Ended(cause: .normalClearing, durationMs: 1, talkMs: 1)))) == .ignored)
        #expect(try store.cdrs().isEmpty)
        #expect(try store.cursor(bridgeId: "b1")?.lastSeq == 9)
    }

    @Test func aRedirectedCallIsUntouchedByTheNewSchema() throws {
        let store = try CDRStore(path: path)
        try store.apply(Self.offered(1, call: "b1-1"))
        try store.apply(Self.routed(2, call: "b1-1"))
        let cdr = try #require(try store.cdrs().first)
        #expect(cdr.outcome == "routed" && cdr.sipStatus == 302)
    }

    /// A database written before bridging keeps its rows and accepts the new outcomes.
    @Test func aVersion1DatabaseIsMigrated() throws {
        let v1 = try DatabaseQueue(path: path)
        try CDRStore.migrator.migrate(v1, upTo: "v1: cdrs, pending offers, cursors")
        try v1.write { db in
            try db.execute(sql: """
                INSERT INTO cdrs (bridge_id, call_id, decided_at, outcome, sip_status, fallback, decision_ms)
                VALUES ('b1', 'b1-old', '2027-01-15T08:00:00.000Z', 'routed', 302, 0, 0.5)
                """)
        }
        try v1.close()
        let store = try CDRStore(path: path)
        #expect(try store.cdrs().map(\.callId) == ["b1-old"])
        try store.apply(Self.event(1, call: "b1-o1", .callOriginated(Originate(a: Party(uri: "sip:a@a"), b: Party(uri: "sip:b@b")))))
        #expect(try store.cdrs().map(\.outcome) == ["routed", "originated"])
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

    static func recorded(_ seq: UInt64, call: String, path: String, ms: Int, bytes: Int?) -> Event {
        event(seq, call: call, .callMediaRecorded(MediaRecorded(path: path, durationMs: ms, bytes: bytes)))
    }

    /// `call.media.recorded` comes before `call.ended`; a second recording of the call replaces the first in the CDR.
    @Test func aRecordedCallKeepsItsLastRecording() throws {
        let store = try CDRStore(path: path)
        try store.apply(Self.offered(1, call: "b1-1"))
        try store.apply(Self.bridged(2, call: "b1-1"))
        try store.apply(Self.event(3, call: "b1-1", .callConnected(Connected(a: "sip:alice@a", b: "sip:bob@switchboard.local"))))
        #expect(try store.apply(Self.event(4, call: "b1-1", .callDTMF(DTMFPressed(leg: .a, digit: "1", durationMs: 120)))) == .ignored)
        #expect(try store.apply(Self.recorded(5, call: "b1-1", path: "/rec/pcaps/b1-1-first.pcap", ms: 4_000, bytes: 70_000)) == .updated)
        var cdr = try #require(try store.cdrs().first)
        #expect(cdr.recordingPath == "/rec/pcaps/b1-1-first.pcap" && cdr.recordingMs == 4_000 && cdr.recordingBytes == 70_000)

        // The call's end stopped the second one: its size is not known yet.
        try store.apply(Self.recorded(6, call: "b1-1", path: "/rec/pcaps/b1-1-second.pcap", ms: 10_020, bytes: nil))
        try store.apply(Self.event(7, call: "b1-1", .callEnded(Ended(cause: .normalClearing, by: .a, durationMs: 6_000, talkMs: 4_000))))
        cdr = try #require(try store.cdrs().first)
        #expect(cdr.recordingPath == "/rec/pcaps/b1-1-second.pcap" && cdr.recordingMs == 10_020 && cdr.recordingBytes == nil)
        #expect(cdr.endCause == "normal_clearing" && cdr.talkMs == 4_000)

        let csv = CDRExport.csv(try store.rows(since: "2027-01-01T00:00:00Z", until: "2028-01-01T00:00:00Z"))
        let lines = csv.components(separatedBy: "\r\n")
        #expect(lines[0].hasSuffix(",currency,recording_path,recording_ms,recording_bytes"))
        #expect(lines[1].hasSuffix(",/rec/pcaps/b1-1-second.pcap,10020,"))
    }

    /// An IVR's call: the bridge answers it (`call.routed` `answer`, no targets), it is recorded, and it ends later.
    @Test func anAnsweredCallGoesOnLikeABridgedOne() async throws {
        let store = try CDRStore(path: path)
        try await store.apply(Self.offered(1, call: "b1-ivr"))
        let answered = Self.event(2, call: "b1-ivr", .callRouted(Routed(action: .answer, targets: [], workerId: "ivr", fallback: false,
                                                                       decisionMs: 0.4)))
        let routed: (result: CDRApplyResult, finished: CDR?) = try await store.apply(answered)
        #expect(routed.result == .recorded && routed.finished == nil)
        try await store.apply(Self.event(3, call: "b1-ivr", .callConnected(Connected(a: "sip:alice@a", b: "sip:800@switchboard.local"))))
        try await store.apply(Self.recorded(4, call: "b1-ivr", path: "/rec/pcaps/ivr.pcap", ms: 2_000, bytes: 40_000))
        let end = Self.event(5, call: "b1-ivr", .callEnded(Ended(cause: .hangupCommand, by: .command, durationMs: 3_000, talkMs: 2_500)))
        let ended: (result: CDRApplyResult, finished: CDR?) = try await store.apply(end)
        #expect(ended.finished?.outcome == "bridged")
        let cdr = try #require(try store.cdrs().first)
        #expect(cdr.outcome == "bridged" && cdr.sipStatus == 200 && cdr.route == "[]" && cdr.workerId == "ivr")
        #expect(cdr.talkMs == 2_500 && cdr.endCause == "hangup_command" && cdr.recordingPath == "/rec/pcaps/ivr.pcap")
    }

    @Test func aRecordingOfACallWithoutACDRChangesNothing() throws {
        let store = try CDRStore(path: path)
        #expect(try store.apply(Self.recorded(3, call: "b1-lost", path: "/rec/x.pcap", ms: 1, bytes: 24)) == .ignored)
        #expect(try store.cdrs().isEmpty)
        #expect(try store.cursor(bridgeId: "b1")?.lastSeq == 3)
    }

    /// A rated (v3) file gains the recording columns, its rows keep theirs and have no recording.
    @Test func aVersion3DatabaseGainsTheRecordingColumns() throws {
        let v3 = try DatabaseQueue(path: path)
        try CDRStore.migrator.migrate(v3, upTo: "v3: rating and post-dial delay")
        try v3.write { db in
            try db.execute(sql: """
                INSERT INTO cdrs (bridge_id, call_id, decided_at, outcome, sip_status, fallback, decision_ms, currency)
                VALUES ('b1', 'b1-old', '2027-01-15T08:00:00.000Z', 'bridged', 200, 0, 0.5, 'EUR')
                """)
        }
        try v3.close()
        let store = try CDRStore(path: path)
        let old = try #require(try store.cdrs().first)
        #expect(old.callId == "b1-old" && old.currency == "EUR" && old.recordingPath == nil && old.recordingMs == nil)
        try store.apply(Self.recorded(1, call: "b1-old", path: "/rec/old.pcap", ms: 500, bytes: 1_000))
        #expect(try store.cdrs().first?.recordingPath == "/rec/old.pcap")
    }
}
