import Testing
@testable import BusSchema

/// The `decide` command (OpenSER 1.x through `switchboard-exec`) and its reply: wire text and the checks.
@Suite struct HandoffTests {
    static let offer = HandoffOffer(requestUri: "sip:12025550100@switchboard.local", from: #""Alice" <sip:alice@switchboard.local>;tag=a1"#,
                                    to: "<sip:12025550100@switchboard.local>", sipCallId: "c-1@10.0.0.5",
                                    source: "10.0.0.5:5060;transport=udp", authUser: "alice")

    @Test func decideWireTextIsPinned() {
        let frame = CommandRequest(requestId: "r-1", command: .decide(HandoffOffer(requestUri: "sip:1@s", from: "<sip:a@s>;tag=x",
                                                                                    to: "<sip:1@s>", sipCallId: "c1")))
        #expect(String(decoding: frame.frame(), as: UTF8.self)
            == #"{"v":1,"type":"command","request_id":"r-1","command":{"name":"decide","request_uri":"sip:1@s","from":"<sip:a@s>;tag=x","to":"<sip:1@s>","sip_call_id":"c1"}}"#)
    }

    @Test func decidedReplyWireTextIsPinned() {
        let reply = CommandReply(requestId: "r-1", outcome: .decided(HandoffDecision(
            callId: "b1-h2", decision: .reject(status: 503, reason: "Service Unavailable"), workerId: nil, fallback: true, cause: .noWorker)))
        #expect(String(decoding: reply.frame(), as: UTF8.self)
            == #"{"v":1,"type":"command.reply","request_id":"r-1","ok":true,"result":{"call_id":"b1-h2","decision":{"action":"reject","status":503,"reason":"Service Unavailable"},"fallback":true,"cause":"no_worker"}}"#)
    }

    @Test func aWellFormedOfferHasNoProblem() {
        #expect(Command.decide(Self.offer).problem == nil)
    }

    @Test(arguments: [
        (HandoffOffer(requestUri: "http://x", from: "<sip:a@s>", to: "<sip:b@s>", sipCallId: "c"), "is not a sip:, sips: or tel: URI"),
        (HandoffOffer(requestUri: "sip:b@s", from: "<sip:a@s>", to: "<sip:b@s>", sipCallId: ""), "sip_call_id is empty"),
        (HandoffOffer(requestUri: "sip:b@s", from: "<sip:a@s>\r\nX: y", to: "<sip:b@s>", sipCallId: "c"), "from contains a control character"),
        (HandoffOffer(requestUri: "sip:b@s", from: "<sip:a@s>", to: "<sip:b@s>", sipCallId: "c", authUser: "a\u{0}"), "auth_user contains a control character"),
    ])
    func malformedOffersAreNamed(offer: HandoffOffer, problem: String) {
        #expect(Command.decide(offer).problem?.contains(problem) == true, "\(Command.decide(offer).problem ?? "nil")")
    }

    @Test func aMissingFieldIsNamed() {
        let frame = Array(#"{"v":1,"type":"command","request_id":"r-1","command":{"name":"decide","request_uri":"sip:1@s","from":"<sip:a@s>","to":"<sip:1@s>"}}"#.utf8)
        #expect(throws: BusDecodingError.self) { try CommandRequest.decode(frame) }
        do {
            _ = try CommandRequest.decode(frame)
        } catch {
            #expect(error.code == .badMessage)
            #expect(error.message.contains("sip_call_id"), "\(error.message)")
        }
    }
}
