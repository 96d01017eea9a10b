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
        let frame = event.jsonBytes()
        #expect(event.type == "call.offered")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(frame)) as? [String: Any])
        #expect(json["v"] as? Int == 1)
        #expect(json["type"] as? String == "call.offered")
        #expect(json["bridge_id"] as? String == "b1")
        #expect((json["ts"] as? String)?.hasSuffix("Z") == true)
        #expect((json["offer"] as? [String: Any])?["sip_call_id"] as? String == "abc@host")
        let decoded = try Event.decode(frame)
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
            .error(ErrorReply(code: .badJSON, message: "x", requestId: nil)),
        ]
        for message in messages { #expect(try BridgeMessage.decode(message.encoded()) == message) }
    }

    /// A phone's REFER asks for its target's leg with the offer's optional `transfer` member.
    @Test func aTransferOfferRoundTripsAndItsMemberIsPinned() throws {
        var offer = offer
        offer.transfer = TransferOffer(callId: "b1-7", referrer: .b, referredBy: "<sip:bob@b>")
        let message = BridgeMessage.decisionRequest(requestId: "b1-7-t1", callId: "b1-7", deadlineMs: 500, offer: offer)
        let frame = message.encoded()
        #expect(try BridgeMessage.decode(frame) == message)
        #expect(String(decoding: frame, as: UTF8.self).contains(#""transfer":{"call_id":"b1-7","referrer":"b","referred_by":"<sip:bob@b>"}"#))
        let plain = BridgeMessage.decisionRequest(requestId: "r1", callId: "c1", deadlineMs: 500, offer: self.offer).encoded()
        #expect(!String(decoding: plain, as: UTF8.self).contains("transfer"), "absent unless a REFER asks")
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
            #expect(error.code.rawValue == code)
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
        (.reject(status: 486, reason: "a\r\nb"), "control character"),
        (.reject(status: 486, reason: "a\rb"), "control character"),
        (.reject(status: 486, headers: ["contact": "<sip:evil@x>"]), "header contact is reserved"),
        (.reject(status: 486, headers: ["Bad Name": "x"]), "not a SIP token"),
    ])
    func unusableDecisionsAreNamed(decision: Decision, problem: String) {
        #expect(decision.problem?.contains(problem) == true)
    }

    @Test func validDecisionHasNoProblem() {
        #expect(Decision.redirect([Target(uri: "sip:1@gw", q: 1), Target(uri: "tel:+1202")]).problem == nil)
        #expect(Decision.reject(status: 603, reason: "Decline", headers: ["Retry-After": "5"]).problem == nil)
        // HTAB is the one control a header value may hold (RFC 3261 §25.1: LWS).
        #expect(Decision.reject(status: 603, headers: ["Warning": "399 pbx\t\"closed\""]).problem == nil)
        #expect(Decision.bridge(Self.route).problem == nil)
        let edges = BridgeRoute(targets: (1...16).map { BridgeTarget(uri: "sips:\($0)@pbx", ringTimeoutMs: $0 == 1 ? 1000 : 600_000) })
        #expect(Decision.bridge(edges).problem == nil)
    }

    static let route = BridgeRoute(
        targets: [BridgeTarget(uri: "sip:bob@switchboard.local", ringTimeoutMs: 20_000), BridgeTarget(uri: "sip:carol@switchboard.local")],
        mode: .parallel, callerId: CallerID(uri: "sip:+12025550100@switchboard.local", displayName: "Support"), headers: ["X-Account": "acme"])

    @Test(arguments: [
        (BridgeRoute(targets: []), "at least one target"),
        (BridgeRoute(targets: Array(repeating: BridgeTarget(uri: "sip:a@b"), count: 17)), "17 targets, more than 16"),
        (BridgeRoute(targets: [BridgeTarget(uri: "mailto:bob@b")]), "not a sip:"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b> x")]), "forbidden"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b", ringTimeoutMs: 999)]), "ring_timeout_ms 999 is outside 1000...600000"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b", ringTimeoutMs: 600_001)]), "ring_timeout_ms 600001"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")], callerId: CallerID(uri: "bob")), "caller_id uri"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")], callerId: CallerID(displayName: "Sup\"port")), "display_name"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")], callerId: CallerID(displayName: "Sup\r\nport")), "display_name"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")], headers: ["X:Bad": "v"]), "not a SIP token"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")], headers: ["X-Ok": "v\r\nVia: evil"]), "control character"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")], headers: ["X-Ok": "v\rVia: evil"]), "control character"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")], headers: ["X-Ok": "v\u{7F}"]), "control character"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")], headers: ["X-Ok": "v\u{0}"]), "control character"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")], headers: ["Via": "SIP/2.0/UDP evil"]), "header Via is reserved"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")], headers: ["v": "SIP/2.0/UDP evil"]), "header v is reserved"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")], headers: ["TO": "<sip:x@y>"]), "header TO is reserved"),
        (BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")], headers: ["x-switchboard-source": "trusted"]), "reserved"),
    ])
    func unusableBridgesAreNamed(route: BridgeRoute, problem: String) {
        #expect(Decision.bridge(route).problem?.contains(problem) == true, "\(Decision.bridge(route).problem ?? "no problem")")
    }

    @Test func bridgeDecisionsRoundTrip() throws {
        for route in [Self.route, BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")])] {
            let frame = WorkerMessage.decision(requestId: "r1", decision: .bridge(route)).encoded()
            #expect(try WorkerMessage.decode(frame) == .decision(requestId: "r1", decision: .bridge(route)))
        }
    }

    /// Bridge decisions are new on the wire; redirect and reject must read exactly as before.
    @Test func decisionWireTextIsPinned() {
        func text(_ decision: Decision) -> String {
            String(decoding: WorkerMessage.decision(requestId: "r", decision: decision).encoded(), as: UTF8.self)
        }
        #expect(text(.bridge(Self.route)) == #"{"v":1,"type":"decision","request_id":"r","decision":{"action":"bridge","targets":[{"uri":"sip:bob@switchboard.local","ring_timeout_ms":20000},{"uri":"sip:carol@switchboard.local"}],"mode":"parallel","caller_id":{"uri":"sip:+12025550100@switchboard.local","display_name":"Support"},"headers":{"X-Account":"acme"}}}"#)
        #expect(text(.redirect([Target(uri: "sip:a@b", q: 0.5)])) == #"{"v":1,"type":"decision","request_id":"r","decision":{"action":"redirect","targets":[{"uri":"sip:a@b","q":0.5}]}}"#)
        #expect(text(.reject(status: 503, reason: "Busy", headers: ["Retry-After": "30"]))
            == #"{"v":1,"type":"decision","request_id":"r","decision":{"action":"reject","status":503,"reason":"Busy","headers":{"Retry-After":"30"}}}"#)
    }

    @Test func bridgeModeDefaultsToSerial() throws {
        let frame = #"{"v":1,"type":"decision","request_id":"r","decision":{"action":"bridge","targets":[{"uri":"sip:bob@b"}]}}"#
        #expect(try WorkerMessage.decode(Array(frame.utf8)) == .decision(requestId: "r", decision: .bridge(BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@b")]))))
    }

    @Test(arguments: [
        (#"{"action":"bridge"}"#, "invalid decision: missing field decision.targets"),
        (#"{"action":"bridge","targets":[{}]}"#, "invalid decision: missing field decision.targets[0].uri"),
        (#"{"action":"bridge","targets":[{"uri":"sip:b@b","ring_timeout_ms":1.5}]}"#, "invalid decision: decision.targets[0].ring_timeout_ms must be an integer"),
        (#"{"action":"bridge","targets":[{"uri":"sip:b@b"}],"mode":"random"}"#, #"invalid decision: decision.mode must be one of serial, parallel, got "random""#),
        (#"{"action":"bridge","targets":[{"uri":"sip:b@b"}],"caller_id":"Support"}"#, "invalid decision: decision.caller_id must be an object"),
        (#"{"action":"teleport"}"#, #"invalid decision: decision.action: unknown action "teleport" (expected redirect, reject, bridge or answer)"#),
    ])
    func badBridgeDecisionsNameTheField(decision: String, message: String) {
        let frame = #"{"v":1,"type":"decision","request_id":"r","decision":"# + decision + "}"
        #expect(throws: BusDecodingError(code: .badMessage, message: message)) { try WorkerMessage.decode(Array(frame.utf8)) }
    }
}
