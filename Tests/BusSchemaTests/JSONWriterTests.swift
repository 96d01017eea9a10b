import Foundation
import Testing
@testable import BusSchema

/// The hand-written encoders must say exactly what the Codable ones say.
@Suite struct JSONWriterTests {
    static let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é 漢 🎉"

    static let offers = [
        CallOffer(sipCallId: tricky, requestUri: Address(uri: "sip:+1202@b;user=phone", user: "+1202", host: "b"),
                  from: Address(uri: "sip:alice@a", user: "alice", host: "a", displayName: tricky),
                  to: Address(uri: "tel:+1202"), source: Source(address: "::1", port: 5060, transport: "tcp", peer: "127.0.0.1"),
                  authUser: nil, headers: ["X-Customer-Id": "42", "X-Quote": tricky], sdp: nil),
        CallOffer(sipCallId: "c", requestUri: Address(uri: "sip:1@b", user: "1", host: "b"), from: Address(uri: "sip:a@a"),
                  to: Address(uri: "sip:1@a"), source: Source(address: "192.0.2.1", port: 1, transport: "udp", peer: "192.0.2.1"),
                  authUser: "alice", headers: [:],
                  sdp: SDPSummary(connection: nil, media: [.init(kind: "audio", port: 4000, proto: "RTP/AVP", formats: ["0", "101"]),
                                                           .init(kind: "video", port: 0, proto: "RTP/AVP", formats: [])])),
    ]

    static func object(_ bytes: [UInt8]) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? NSDictionary)
    }

    static func codable<T: Encodable>(_ value: T) throws -> NSDictionary {
        try object(Array(try BusSchema.makeEncoder().encode(value)))
    }

    @Test(arguments: [0, 1])
    func eventsMatchCodable(offerIndex: Int) throws {
        let offer = Self.offers[offerIndex]
        let bodies: [EventBody] = [
            .callOffered(offer),
            .callRouted(Routed(targets: [Target(uri: "sip:a@b", q: 1), Target(uri: "sip:c@d", q: nil)], workerId: nil, fallback: true,
                               cause: "timeout", decisionMs: 0.123456)),
            .callRejected(Rejected(status: 486, reason: Self.tricky, workerId: "w", fallback: false, cause: nil, decisionMs: 12)),
        ]
        for body in bodies {
            let event = Event(bridgeId: "b1", seq: UInt64.max, timestamp: Date(timeIntervalSince1970: 1_795_000_000.5), callId: "c1", body: body)
            #expect(try Self.object(event.jsonBytes()) == Self.codable(event))
            #expect(try Event.decode(event.jsonBytes()).body == body)
        }
    }

    @Test func bridgeAndWorkerMessagesDecodeBackToThemselves() throws {
        let messages: [BridgeMessage] = Self.offers.map { .decisionRequest(requestId: "r", callId: "c", deadlineMs: 500, offer: $0) }
            + [.error(ErrorReply(code: "bad_json", message: Self.tricky, requestId: "r"))]
        for message in messages { #expect(try BridgeMessage.decode(message.encoded()) == message) }
        let decisions: [Decision] = [.redirect([Target(uri: "sip:a@b", q: 0.25)]), .reject(status: 503, reason: nil, headers: ["Retry-After": "30"])]
        for decision in decisions {
            let frame = WorkerMessage.decision(requestId: Self.tricky, decision: decision).encoded()
            #expect(try WorkerMessage.decode(frame) == .decision(requestId: Self.tricky, decision: decision))
            #expect(try Self.object(frame)["decision"] as? NSDictionary == Self.codable(decision))
        }
    }

    @Test func timestampsAreUTCWithMilliseconds() {
        #expect(BusTimestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(BusTimestamp.format(Date(timeIntervalSince1970: 1_795_726_167.0429)) == "2026-11-26T20:49:27.042Z")
        #expect(BusTimestamp.parse("2026-11-26T20:49:27.042Z").map { abs($0.timeIntervalSince1970 - 1_795_726_167.042) < 0.0005 } == true)
        #expect(BusTimestamp.parse("yesterday") == nil)
    }
}
