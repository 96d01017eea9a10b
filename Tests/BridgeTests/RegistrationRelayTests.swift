import BusSchema
import NIOCore
import SIPCore
import Testing
@testable import Bridge

/// Kamailio's registration notices at the edge: a good one becomes a `registration.*` event and a 200, a bad
/// one a 400 naming the problem and no event, and every other MESSAGE keeps the edge's usual answer.
@Suite struct RegistrationRelayTests {
    typealias Harness = SIPSideHarness

    static let body = #"{"v":1,"type":"registration.created","registration":{"aor":"sip:alice@switchboard.local","user":"alice","contact":"sip:alice@127.0.0.1:5070","transport":"udp","user_agent":"sipp","expires":300,"received":"127.0.0.1:5070"}}"#

    static func message(_ body: String, contentType: String? = RegistrationNotice.contentType, branch: String = "z9hG4bKreg1",
                        toTag: String? = nil) -> SIPRequest {
        var request = SIPRequest(method: .message, uri: SIPAnyURI("sip:127.0.0.1:5080")!)
        request.headers.add("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=\(branch)")
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", "<sip:registrar@switchboard.local>;tag=k1")
        request.headers.add("To", "<sip:127.0.0.1:5080>" + (toTag.map { ";tag=\($0)" } ?? ""))
        request.headers.add("Call-ID", "notice-\(branch)")
        request.headers.add("CSeq", "10 MESSAGE")
        if let contentType { request.headers.add("Content-Type", contentType) }
        request.body = Array(body.utf8)
        return request
    }

    func answer(_ harness: Harness, _ request: SIPRequest) throws -> SIPResponse {
        harness.receive(.request(request), from: Harness.caller)
        return try #require(harness.wire.take().compactMap(\.response).first)
    }

    @Test func aNoticeBecomesAnEventWithoutCallId() throws {
        let harness = Harness()
        let response = try answer(harness, Self.message(Self.body))
        #expect(response.status == 200)
        #expect(harness.bus.events.count == 1)
        let event = try #require(harness.bus.events.first)
        #expect(event.callId == nil)
        #expect(event.body == .registrationCreated(Registration(
            aor: "sip:alice@switchboard.local", user: "alice", contact: "sip:alice@127.0.0.1:5070", transport: "udp",
            userAgent: "sipp", expires: 300, received: "127.0.0.1:5070")))
    }

    @Test func theContentTypeIsMatchedWithoutCaseOrParameters() throws {
        let harness = Harness()
        let response = try answer(harness, Self.message(Self.body, contentType: "Application/VND.Switchboard.Registration+JSON; charset=utf-8"))
        #expect(response.status == 200)
        #expect(harness.bus.types == ["registration.created"])
    }

    @Test func aRetransmittedNoticeIsAnsweredAgainAndPublishedOnce() throws {
        let harness = Harness()
        #expect(try answer(harness, Self.message(Self.body)).status == 200)
        #expect(try answer(harness, Self.message(Self.body)).status == 200)
        #expect(harness.bus.events.count == 1)
    }

    @Test(arguments: [
        (#"{"v":1,"type":"registration.removed","registration":{"aor":"sip:alice@x","user":"alice","contact":"c","transport":"udp","expires":30}}"#,
         "Bad Registration Notice (registration.expires must be 0 for registration.removed)"),
        (#"{"v":1,"type":"registration.created"}"#, "Bad Registration Notice (missing field registration)"),
        ("alice is here", "Bad Registration Notice (not a bus message (need JSON with \"v\" and \"type\"): "),
        (#"{"v":1,"type":"registration.created","registration":{"aor":"sip:alice@x","user":"alice","contact":"c","transport":"udp\n","expires":5}}"#,
         "Bad Registration Notice (registration.transport contains a control character)"),
    ])
    func aBadNoticeIs400NamingTheProblemAndPublishesNothing(body: String, reason: String) throws {
        let harness = Harness()
        let response = try answer(harness, Self.message(body))
        #expect(response.status == 400)
        #expect(response.reason.hasPrefix(reason), "\(response.reason)")
        #expect(!response.reason.unicodeScalars.contains { $0.properties.generalCategory == .control })
        #expect(harness.bus.events.isEmpty)
    }

    @Test func aReasonPhraseStaysOneShortLine() {
        let phrase = RegistrationRelay.reasonPhrase("a\r\nb" + String(repeating: "x", count: 500))
        #expect(phrase.hasPrefix("a  b") && phrase.count == 200)
    }

    /// Another MESSAGE gets what it got before notices existed: 415 for a body of another type, 405 without one.
    @Test(arguments: [("text/plain", "hello", 415), (nil, "", 405)] as [(String?, String, Int)])
    func otherMessagesKeepTheirAnswer(contentType: String?, body: String, status: Int) throws {
        let harness = Harness()
        let response = try answer(harness, Self.message(body, contentType: contentType))
        #expect(response.status == status)
        #expect(harness.bus.events.isEmpty)
    }

    @Test func aNoticeInADialogIsNoNotice() throws {
        let harness = Harness()
        let response = try answer(harness, Self.message(Self.body, toTag: "t1"))
        #expect(response.status != 200)
        #expect(harness.bus.events.isEmpty)
    }
}
