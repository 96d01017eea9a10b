import Foundation
import Testing
@testable import BusSchema

@Suite struct SchemaTests {
    let offer = CallOffer(
        sipCallId: "abc@host", requestUri: Address(uri: "sip:12025550100@b", user: "12025550100", host: "b"),
        from: Address(uri: "sip:alice@a", user: "alice", host: "a", displayName: "Alice"),
        to: Address(uri: "sip:12025550100@a", user: "12025550100", host: "a"),
        source: Source(address: "192.0.2.1", port: 5060, transport: "udp", peer: "127.0.0.1"),
        authUser: "alice", headers: ["X-Switchboard-Auth-User": "alice"],
        sdp: SDPSummary(connection: "192.0.2.1", media: [.init(kind: "audio", port: 4000, proto: "RTP/AVP", formats: ["0", "8"])]))

    @Test func eventRoundTripsWithTopicAndSnakeCaseFields() throws {
        let event = Event(bridgeId: "b1", seq: 7, timestamp: Date(timeIntervalSince1970: 1_800_000_000.123), callId: "b1-7", body: .callOffered(offer))
        let frames = try event.frames()
        #expect(frames[0] == Array("call.offered".utf8))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(frames[1])) as? [String: Any])
        #expect(json["v"] as? Int == 1)
        #expect(json["type"] as? String == "call.offered")
        #expect(json["bridge_id"] as? String == "b1")
        #expect((json["ts"] as? String)?.hasSuffix("Z") == true)
        #expect((json["offer"] as? [String: Any])?["sip_call_id"] as? String == "abc@host")
        let decoded = try Event.decode(frames[1])
        #expect(decoded.body == event.body)
        #expect(decoded.seq == 7)
        #expect(abs(decoded.timestamp.timeIntervalSince(event.timestamp)) < 0.001)
    }

    @Test func decisionsRoundTrip() throws {
        for decision in [Decision.redirect([Target(uri: "sip:a@b", q: 0.5)]), .reject(status: 503, reason: "Busy", headers: ["Retry-After": "30"])] {
            let frame = WorkerMessage.decision(requestId: "r1", decision: decision).encoded()
            #expect(try WorkerMessage.decode(frame) == .decision(requestId: "r1", decision: decision))
        }
    }

    @Test func bridgeMessagesRoundTrip() throws {
        let messages: [BridgeMessage] = [
            .welcome(bridgeId: "b1", heartbeatMs: 1000), .heartbeat,
            .decisionRequest(requestId: "r1", callId: "c1", deadlineMs: 500, offer: offer),
            .error(ErrorReply(code: "bad_json", message: "x", requestId: nil)),
        ]
        for message in messages { #expect(try BridgeMessage.decode(message.encoded()) == message) }
    }

    @Test(arguments: [
        ("not json", "bad_json"),
        (#"{"type":"decision"}"#, "bad_json"),
        (#"{"v":99,"type":"decision"}"#, "unsupported_version"),
        (#"{"v":1,"type":"decision","request_id":"r"}"#, "bad_message"),
        (#"{"v":1,"type":"decision","request_id":"r","decision":{"action":"teleport"}}"#, "bad_message"),
        (#"{"v":1,"type":"worker.ready","worker_id":"w","capacity":0}"#, "bad_message"),
    ])
    func badWorkerFramesNameTheProblem(frame: String, code: String) {
        #expect(throws: BusDecodingError.self) { try WorkerMessage.decode(Array(frame.utf8)) }
        do {
            _ = try WorkerMessage.decode(Array(frame.utf8))
        } catch {
            #expect(error.code == code)
        }
    }

    @Test func missingFieldIsNamed() {
        do {
            _ = try WorkerMessage.decode(Array(#"{"v":1,"type":"decision","request_id":"r"}"#.utf8))
            Issue.record("decoded a decision without one")
        } catch {
            #expect(error.message.contains("decision"))
        }
    }

    @Test(arguments: [
        (Decision.redirect([]), "at least one target"),
        (.redirect([Target(uri: "http://x")]), "not a sip:"),
        (.redirect([Target(uri: "sip:a@b>\r\nX: y")]), "forbidden"),
        (.redirect([Target(uri: "sip:a@b", q: 2)]), "q-value"),
        (.reject(status: 200), "not a 4xx"),
        (.reject(status: 486, reason: "a\r\nb"), "line break"),
        (.reject(status: 486, headers: ["Bad Name": "x"]), "not a SIP token"),
    ])
    func unusableDecisionsAreNamed(decision: Decision, problem: String) {
        #expect(decision.problem?.contains(problem) == true)
    }

    @Test func validDecisionHasNoProblem() {
        #expect(Decision.redirect([Target(uri: "sip:1@gw", q: 1), Target(uri: "tel:+1202")]).problem == nil)
        #expect(Decision.reject(status: 603, reason: "Decline", headers: ["Retry-After": "5"]).problem == nil)
    }
}
