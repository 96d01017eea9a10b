import Foundation
import Testing
@testable import BusSchema

/// The failure step of the decision protocol: `on_failure` on a bridge decision, `offer.failure` in the
/// `decision.request` that asks for the next step, `step` on the `call.routed` it leads to. All optional
/// members of schema v1, absent unless used.
@Suite struct RouteFailureTests {
    let offer = CallOffer(
        sipCallId: "abc@host", requestUri: Address(uri: "sip:bob@s", user: "bob", host: "s"),
        from: Address(uri: "sip:alice@s", user: "alice", host: "s"), to: Address(uri: "sip:bob@s", user: "bob", host: "s"),
        source: Source(address: "127.0.0.1", port: 5060, transport: "udp", peer: "127.0.0.1"),
        authUser: "alice", headers: [:], sdp: nil)

    @Test func aFailureStepRequestRoundTripsWithItsMemberPinned() throws {
        var offer = offer
        offer.failure = RouteFailure(status: 486, reason: "Busy Here", cause: .busy, ringMs: 1200,
                                     targets: [Target(uri: "sip:bob@s")], step: 1)
        let message = BridgeMessage.decisionRequest(requestId: "c1-f1", callId: "c1", deadlineMs: 500, offer: offer)
        let frame = message.encoded()
        #expect(try BridgeMessage.decode(frame) == message)
        #expect(String(decoding: frame, as: UTF8.self).hasSuffix(
            #""failure":{"status":486,"reason":"Busy Here","cause":"busy","ring_ms":1200,"targets":[{"uri":"sip:bob@s"}],"step":1}}}"#))
        let plain = BridgeMessage.decisionRequest(requestId: "c1", callId: "c1", deadlineMs: 500, offer: self.offer).encoded()
        #expect(!String(decoding: plain, as: UTF8.self).contains("failure"), "absent on a first decision")
    }

    @Test func onFailureAskIsWrittenOnlyWhenAsked() throws {
        let asking = BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@s", ringTimeoutMs: 5000)], onFailure: .ask)
        let frame = WorkerMessage.decision(requestId: "r1", decision: .bridge(asking)).encoded()
        #expect(String(decoding: frame, as: UTF8.self).contains(#""mode":"serial","on_failure":"ask"}"#))
        #expect(try WorkerMessage.decode(frame) == .decision(requestId: "r1", decision: .bridge(asking)))
        let plain = WorkerMessage.decision(requestId: "r1", decision: .bridge(BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@s")]))).encoded()
        #expect(!String(decoding: plain, as: UTF8.self).contains("on_failure"))
        // A worker may spell the default out.
        let explicit = #"{"v":1,"type":"decision","request_id":"r","decision":{"action":"bridge","targets":[{"uri":"sip:b@s"}],"on_failure":"end"}}"#
        #expect(try WorkerMessage.decode(Array(explicit.utf8)) == .decision(requestId: "r", decision: .bridge(BridgeRoute(targets: [BridgeTarget(uri: "sip:b@s")]))))
    }

    @Test func anUnknownOnFailureIsRefusedByName() {
        let frame = #"{"v":1,"type":"decision","request_id":"r","decision":{"action":"bridge","targets":[{"uri":"sip:b@s"}],"on_failure":"retry"}}"#
        do {
            _ = try WorkerMessage.decode(Array(frame.utf8))
            Issue.record("decoded on_failure retry")
        } catch {
            #expect(error.code == .badMessage)
            #expect(error.message.contains("on_failure"), "\(error.message)")
        }
    }

    @Test func aStepsRoutedEventCarriesItsStep() throws {
        let routed = Routed(action: .bridge, targets: [Target(uri: "sip:carol@s")], workerId: "pbx", fallback: false, decisionMs: 0.5, step: 2)
        let event = Event(bridgeId: "b1", seq: 3, timestamp: Date(timeIntervalSince1970: 0), callId: "c1", body: .callRouted(routed))
        let frame = event.jsonBytes()
        #expect(String(decoding: frame, as: UTF8.self).contains(#""decision_ms":0.5,"step":2}"#))
        #expect(try Event.decode(frame).body == .callRouted(routed))
    }
}
