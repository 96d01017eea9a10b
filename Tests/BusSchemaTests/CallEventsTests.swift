import Foundation
import Testing
@testable import BusSchema

/// The B2BUA's call events: they read back as written, and their JSON is pinned.
@Suite struct CallEventsTests {
    static let time = Date(timeIntervalSince1970: 1_795_000_000.5)
    static let originate = Originate(
        a: Party(uri: "sip:alice@switchboard.local", callerId: CallerID(uri: "sip:c2c@switchboard.local", displayName: "Click2Call"),
                 ringTimeoutMs: 30_000),
        b: Party(uri: "sip:bob@switchboard.local"), idempotencyKey: "k-1", account: "acme", headers: ["X-Foo": JSONWriterTests.tricky])

    static let bodies: [EventBody] = [
        .callOriginated(originate),
        .callOriginated(Originate(a: Party(uri: "tel:+12025550100"), b: Party(uri: "sip:bob@b"))),
        .callDialing(Dialing(leg: .b, uri: "sip:bob@switchboard.local", sipCallId: JSONWriterTests.tricky, attempt: 2)),
        .callRinging(Ringing(leg: .a, status: 183, earlyMedia: true)),
        .callAnswered(Answered(leg: .b, uri: "sip:bob@switchboard.local", setupMs: 4210.5)),
        .callConnected(Connected(a: "sip:alice@switchboard.local", b: "sip:bob@switchboard.local")),
        .callLegFailed(LegFailed(leg: .b, uri: "sip:bob@b", status: 486, reason: "Busy Here", cause: .busy)),
        .callLegFailed(LegFailed(leg: .b, uri: "sip:bob@b", status: nil, reason: "ring timeout", cause: .noAnswer)),
        .callHeld(HoldChange(leg: .b, by: .command)),
        .callResumed(HoldChange(leg: .b, by: .a)),
        .callTransferred(Transferred(leg: .a, target: "sip:carol@switchboard.local")),
        .callTransferred(Transferred(leg: .a, target: "sip:carol@switchboard.local", by: .b)),
        .callEnded(Ended(cause: .normalClearing, by: .b, durationMs: 65_012.3, talkMs: 60_801.9)),
        .callEnded(Ended(cause: .busy, status: 486, durationMs: 3120, talkMs: 0)),
        .callRouted(Routed(action: .bridge, targets: [Target(uri: "sip:bob@b")], workerId: "pbx", fallback: false, decisionMs: 1.25)),
    ]

    @Test(arguments: bodies)
    func eventsDecodeBack(body: EventBody) throws {
        let event = Event(bridgeId: "b1", seq: 9, timestamp: Self.time, callId: "b1-9", body: body)
        #expect(try Event.decode(event.jsonBytes()) == event)
    }

    /// The wire text of each new body, as subscribers in other languages read it.
    @Test(arguments: [
        (EventBody.callOriginated(originate), "call.originated", #""originate":{"a":{"uri":"sip:alice@switchboard.local","caller_id":{"uri":"sip:c2c@switchboard.local","display_name":"Click2Call"},"ring_timeout_ms":30000},"b":{"uri":"sip:bob@switchboard.local"},"idempotency_key":"k-1","account":"acme","headers":{"X-Foo":"x"}}"#),
        (.callDialing(Dialing(leg: .b, uri: "sip:bob@b", sipCallId: "s1", attempt: 1)), "call.dialing",
         #""dialing":{"leg":"b","uri":"sip:bob@b","sip_call_id":"s1","attempt":1}"#),
        (.callRinging(Ringing(leg: .b, status: 180, earlyMedia: false)), "call.ringing", #""ringing":{"leg":"b","status":180,"early_media":false}"#),
        (.callAnswered(Answered(leg: .a, uri: "sip:alice@a", setupMs: 812.5)), "call.answered", #""answered":{"leg":"a","uri":"sip:alice@a","setup_ms":812.5}"#),
        (.callConnected(Connected(a: "sip:alice@a", b: "sip:bob@b")), "call.connected", #""connected":{"a":"sip:alice@a","b":"sip:bob@b"}"#),
        (.callLegFailed(LegFailed(leg: .b, uri: "sip:bob@b", status: 603, reason: "Decline", cause: .rejected)), "call.leg_failed",
         #""leg_failed":{"leg":"b","uri":"sip:bob@b","status":603,"reason":"Decline","cause":"rejected"}"#),
        (.callLegFailed(LegFailed(leg: .b, uri: "sip:bob@b", status: nil, reason: "connection refused", cause: .failed)), "call.leg_failed",
         #""leg_failed":{"leg":"b","uri":"sip:bob@b","reason":"connection refused","cause":"failed"}"#),
        (.callHeld(HoldChange(leg: .b, by: .a)), "call.held", #""hold":{"leg":"b","by":"a"}"#),
        (.callResumed(HoldChange(leg: .b, by: .command)), "call.resumed", #""hold":{"leg":"b","by":"command"}"#),
        (.callTransferred(Transferred(leg: .a, target: "sip:carol@c")), "call.transferred", #""transferred":{"leg":"a","target":"sip:carol@c"}"#),
        (.callTransferred(Transferred(leg: .b, target: "sip:carol@c", by: .a)), "call.transferred",
         #""transferred":{"leg":"b","target":"sip:carol@c","by":"a"}"#),
        (.callEnded(Ended(cause: .hangupCommand, by: .command, durationMs: 9000.5, talkMs: 4000.25)), "call.ended",
         #""ended":{"cause":"hangup_command","by":"command","duration_ms":9000.5,"talk_ms":4000.25}"#),
        (.callEnded(Ended(cause: .noAnswer, status: 480, durationMs: 20000.5, talkMs: 0)), "call.ended",
         #""ended":{"cause":"no_answer","status":480,"duration_ms":20000.5,"talk_ms":0.0}"#),
        (.callRouted(Routed(action: .bridge, targets: [Target(uri: "sip:bob@b")], workerId: "pbx", fallback: false, decisionMs: 0.5)), "call.routed",
         #""routed":{"action":"bridge","targets":[{"uri":"sip:bob@b"}],"worker_id":"pbx","fallback":false,"decision_ms":0.5}"#),
        (.callRouted(Routed(targets: [Target(uri: "sip:1202@gw", q: 1)], workerId: nil, fallback: true, cause: .timeout, decisionMs: 0.5)), "call.routed",
         #""routed":{"targets":[{"uri":"sip:1202@gw","q":1.0}],"fallback":true,"cause":"timeout","decision_ms":0.5}"#),
    ])
    func wireTextIsPinned(body: EventBody, type: String, member: String) {
        var body = body
        if case .callOriginated(var originate) = body {
            originate.headers = ["X-Foo": "x"]
            body = .callOriginated(originate)
        }
        let event = Event(bridgeId: "b1", seq: 9, timestamp: Date(timeIntervalSince1970: 0), callId: "b1-9", body: body)
        #expect(String(decoding: event.jsonBytes(), as: UTF8.self)
            == #"{"v":1,"type":""# + type + #"","bridge_id":"b1","seq":9,"ts":"1970-01-01T00:00:00.000Z","call_id":"b1-9","# + member + "}")
    }

    @Test func routedWithoutActionIsARedirect() throws {
        let frame = #"{"v":1,"type":"call.routed","bridge_id":"b1","seq":1,"ts":"2026-11-26T20:00:00.000Z","call_id":"c","routed":{"targets":[{"uri":"sip:a@b"}],"fallback":false,"decision_ms":1}}"#
        guard case .callRouted(let routed) = try Event.decode(Array(frame.utf8)).body else {
            Issue.record("not a call.routed")
            return
        }
        #expect(routed.action == .redirect)
    }

    @Test(arguments: [
        (#""type":"call.dialing","dialing":{"leg":"c","uri":"u","sip_call_id":"s","attempt":1}"#, "dialing.leg"),
        (#""type":"call.ended","ended":{"duration_ms":1,"talk_ms":0}"#, "missing field ended.cause"),
        (#""type":"call.ended","ended":{"cause":"tired","duration_ms":1,"talk_ms":0}"#, "ended.cause"),
        (#""type":"call.held","hold":{"leg":"a","by":"nobody"}"#, "hold.by"),
        (#""type":"call.routed","routed":{"action":"teleport","targets":[],"fallback":false,"decision_ms":1}"#, "routed.action"),
        (#""type":"call.originated","originate":{"a":{"uri":"sip:a@a"}}"#, "missing field originate.b"),
    ])
    func badEventsNameTheField(members: String, path: String) {
        Self.expectRefusalNaming(path, members: members)
    }

    /// Decoding a call event with these members fails with `bad_message`, and the message names `path`.
    static func expectRefusalNaming(_ path: String, members: String) {
        let frame = #"{"v":1,"bridge_id":"b1","seq":1,"ts":"2026-11-26T20:00:00.000Z","call_id":"c","# + members + "}"
        do {
            _ = try Event.decode(Array(frame.utf8))
            Issue.record("decoded \(frame)")
        } catch {
            #expect(error.code == .badMessage)
            #expect(error.message.contains(path), "\(error.message)")
        }
    }

    @Test(arguments: [
        (486, EndCause.busy), (600, .busy), (408, .noAnswer), (480, .noAnswer), (404, .unavailable), (410, .unavailable),
        (484, .unavailable), (500, .unavailable), (503, .unavailable), (403, .rejected), (603, .rejected), (488, .rejected),
        (606, .rejected), (200, .failed), (302, .failed),
    ])
    func endCauseFollowsTheFinalStatus(status: Int, cause: EndCause) {
        #expect(EndCause(status: status) == cause)
    }

    @Test func enumsSpellTheSpec() {
        #expect(Leg.allCases.map(\.rawValue) == ["a", "b"])
        #expect(Initiator.allCases.map(\.rawValue) == ["a", "b", "command", "bridge"])
        #expect(EndCause.allCases.map(\.rawValue) == [
            "normal_clearing", "caller_cancelled", "busy", "no_answer", "rejected", "unavailable", "failed",
            "hangup_command", "bridge_restart", "shutdown", "limit",
            "session_expired",
        ])
    }
}
