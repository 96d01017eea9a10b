import BusSchema
import Foundation
import NIOCore
import NIOEmbedded
import SIPCore
import Testing
@testable import Bridge

/// rtpengine as a test plays it: every ng request the bridge sends, answered when the test says.
final class FakeRTPEngine: NGTransport {
    private(set) var sent: [(cookie: String, request: Bencode)] = []
    var client: ((([UInt8]) -> Void))?

    func send(_ datagram: [UInt8]) {
        let space = datagram.firstIndex(of: UInt8(ascii: " "))!
        sent.append((String(decoding: datagram[..<space], as: UTF8.self), Bencode.decode(datagram[(space + 1)...])!))
    }

    var commands: [String] { sent.compactMap { $0.request["command"]?.text } }

    /// Answers the `index`th request (default the last) with `reply`'s members.
    func reply(_ members: [String: Bencode], to index: Int? = nil) {
        let cookie = sent[index ?? sent.count - 1].cookie
        client?(Array("\(cookie) ".utf8) + Bencode.dictionary(members).encoded())
    }
}

@Suite struct BencodeTests {
    @Test func encodesDictionariesWithSortedKeysAndDecodesThemBack() {
        let value: Bencode = .dictionary(["sdp": "v=0", "command": "offer", "flags": .list(["inject DTMF"]), "repeat-times": 2])
        let bytes = value.encoded()
        #expect(String(decoding: bytes, as: UTF8.self) == "d7:command5:offer5:flagsl11:inject DTMFe12:repeat-timesi2e3:sdp3:v=0e")
        #expect(Bencode.decode(bytes) == value)
    }

    @Test(arguments: ["", "i12", "5:abc", "d3:key", "l", "i1ei2e", "-1:x", "d1:a"])
    func refusesMalformedInput(_ text: String) {
        #expect(Bencode.decode(Array(text.utf8)) == nil)
    }

    @Test func refusesNestingPastTheLimit() {
        let deep = String(repeating: "l", count: 40) + String(repeating: "e", count: 40)
        #expect(Bencode.decode(Array(deep.utf8)) == nil)
        #expect(Bencode.decode(Array(deep.utf8), maxDepth: 64) != nil)
    }
}

@Suite struct NGClientTests {
    let loop = EmbeddedEventLoop()
    let engine = FakeRTPEngine()

    func client(timeout: TimeAmount = .milliseconds(1_000)) -> NGClient {
        let client = NGClient(loop: loop, transport: engine, timeout: timeout, logger: .init(label: "test"))
        engine.client = client.received
        return client
    }

    @Test func aReplyWithItsCookieCompletesTheRequest() throws {
        let client = client()
        var result: Result<Bencode, MediaError>?
        client.request("ping", [:]) { result = $0 }
        engine.reply(["result": "pong"])
        #expect(try result?.get()["result"]?.text == "pong")
    }

    @Test func anErrorReasonFailsTheRequestWithIt() {
        let client = client()
        var result: Result<Bencode, MediaError>?
        client.request("offer", ["call-id": "c1"]) { result = $0 }
        engine.reply(["result": "error", "error-reason": "Unknown call-id"])
        guard case .failure(let error)? = result else { Issue.record("no failure"); return }
        #expect(error.description == "rtpengine refused offer: Unknown call-id")
        #expect(error.code == .mediaUnavailable)
    }

    @Test func aLostDatagramGoesAgainUnderTheSameCookieUntilTheDeadline() {
        let client = client(timeout: .milliseconds(1_000))
        var result: Result<Bencode, MediaError>?
        client.request("offer", ["call-id": "c1"]) { result = $0 }
        loop.advanceTime(by: .milliseconds(250))
        loop.advanceTime(by: .milliseconds(500))
        #expect(engine.sent.count == 3)
        #expect(Set(engine.sent.map(\.cookie)).count == 1)
        loop.advanceTime(by: .milliseconds(250))
        guard case .failure(let error)? = result else { Issue.record("no timeout"); return }
        #expect(error.description == "rtpengine did not answer offer within 1000 ms")
        // A late reply finds nothing waiting.
        engine.reply(["result": "ok"])
    }

    @Test func aDatagramThatIsNotAReplyIsDropped() {
        let client = client()
        var result: Result<Bencode, MediaError>?
        client.request("ping", [:]) { result = $0 }
        client.received(Array("garbage".utf8))
        client.received(Array("nocookie d6:result4:ponge".utf8))
        #expect(result == nil)
    }
}

@Suite struct MediaServiceTests {
    @Test func theBridgesOwnAnswerSendsEveryOfferedFormatToTheDiscardPort() {
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\n"
            + "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\na=rtcp:40001\r\nm=video 40002 RTP/AVP 96\r\n"
        let answer = String(decoding: MediaService.discardAnswer(to: Array(offer.utf8)), as: UTF8.self)
        #expect(answer == "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0 101\r\n"
                + "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\nm=video 0 RTP/AVP 96\r\n")
    }

    @Test func tonesAreEightKilohertzSixteenBitMonoWAV() {
        let wav = Tones.wav(Tones.samples(.busy))
        #expect(wav.prefix(4) == Data("RIFF".utf8))
        #expect(wav.count == 44 + 8_000 * 2)
        #expect(Tones.samples(.ringback).count == 6 * 8_000)
    }

    @Test func digitsTheBridgeInjectedAreNotReportedAsTheSendersKeys() throws {
        let engine = FakeRTPEngine()
        let bus = FakeBus()
        let media = MediaService(settings: .init(rtpengine: try SocketAddress(ipAddress: "127.0.0.1", port: 2223), tones: "/tmp"),
                                 loop: EmbeddedEventLoop(), transport: engine, bus: bus, logger: .init(label: "test"))
        engine.client = media.received
        let call = Call(id: "c1", flow: CallFlow(inbound: nil, callerURI: "sip:alice@x", at: .now, defaultRingTimeout: .seconds(30)),
                        account: nil)
        media.anchor(call)
        var result: Result<Void, MediaError>?
        media.dtmf(call, from: .first, digits: "5", durationMs: 100) { result = $0 }
        // rtpengine may report the injected digit before it replies
        media.dtmfReport(Array(#"{"callid":"c1","source_tag":"leg0","event":5,"duration":100}"#.utf8))
        engine.reply(["result": "ok"])
        #expect(engine.sent.last?.request["code"]?.text == "5")
        #expect(throws: Never.self) { try result?.get() }
        media.dtmfReport(Array(#"{"callid":"c1","source_tag":"leg0","event":5,"duration":120}"#.utf8))
        #expect(bus.events.map(\.body) == [.callDTMF(DTMFPressed(leg: .a, digit: "5", durationMs: 120))])
    }

    @Test func aRecordingNeedsFreeSpaceAndAFreePlace() throws {
        let engine = FakeRTPEngine()
        func service(maxRecordings: Int, minFreeBytes: Int64) throws -> MediaService {
            MediaService(settings: .init(rtpengine: try SocketAddress(ipAddress: "127.0.0.1", port: 2223), tones: "/tmp",
                                         recordings: NSTemporaryDirectory(), maxRecordings: maxRecordings, minFreeBytes: minFreeBytes),
                         loop: EmbeddedEventLoop(), transport: engine, bus: FakeBus(), logger: .init(label: "test"))
        }
        let call = Call(id: "c1", flow: CallFlow(inbound: nil, callerURI: "sip:alice@x", at: .now, defaultRingTimeout: .seconds(30)),
                        account: nil)
        var results: [Result<Void, MediaError>] = []
        try service(maxRecordings: 10, minFreeBytes: .max).startRecording(call) { results.append($0) }
        try service(maxRecordings: 0, minFreeBytes: 0).startRecording(call) { results.append($0) }
        let errors = results.compactMap { result -> MediaError? in if case .failure(let error) = result { error } else { nil } }
        #expect(errors.map(\.code) == [.mediaUnavailable, .limitExceeded])
        #expect(errors.first?.description.hasSuffix("MB free, less than media_min_free_mb") == true)
        #expect(engine.sent.isEmpty)
    }

    @Test func dtmfReportsBecomeEventsOfTheLegThatPressedAndTheRestIsDropped() throws {
        let loop = EmbeddedEventLoop()
        let bus = FakeBus()
        let media = MediaService(settings: .init(rtpengine: try SocketAddress(ipAddress: "127.0.0.1", port: 2223), tones: "/tmp"),
                                 loop: loop, transport: FakeRTPEngine(), bus: bus, logger: .init(label: "test"))
        let call = Call(id: "c1", flow: CallFlow(inbound: nil, callerURI: "sip:alice@x", at: .now, defaultRingTimeout: .seconds(30)),
                        account: nil)
        media.anchor(call)
        media.dtmfReport(Array(#"{"callid":"c1","source_tag":"leg0","tags":["leg0","leg1"],"type":"DTMF","event":11,"duration":120,"volume":10}"#.utf8))
        media.dtmfReport(Array(#"{"callid":"other","source_tag":"leg0","event":1,"duration":120}"#.utf8))
        media.dtmfReport(Array(#"{"callid":"c1","source_tag":"bridge","event":1,"duration":120}"#.utf8))
        media.dtmfReport(Array(#"{"callid":"c1","source_tag":"leg0","event":16,"duration":120}"#.utf8))
        media.dtmfReport(Array("not json".utf8))
        #expect(bus.events.map(\.body) == [.callDTMF(DTMFPressed(leg: .a, digit: "#", durationMs: 120))])
    }
}

/// An anchored call through the SIP side: every SDP goes through rtpengine, and the flow sees events in order.
@Suite struct AnchoredCallTests {
    typealias Harness = SIPSideHarness
    static let engineOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
    static let engineAnswer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\n"

    let engine = FakeRTPEngine()
    let harness: Harness

    init() throws {
        var configuration = BridgeFixture.configuration()
        configuration.mediaRTPEngine = try SocketAddress(ipAddress: "127.0.0.1", port: 2223)
        harness = Harness(configuration: configuration, media: engine)
        engine.client = { [harness] datagram in harness.side.b2bua.media?.received(datagram) }
    }

    func anchoredInvite(_ decision: Decision) throws -> SIPRequest? {
        harness.receive(.request(harness.callerInvite()), from: Harness.caller)
        harness.resolveAll(.decided(decision, workerId: "w1"))
        return harness.wire.take().compactMap(\.request).first { $0.method == .invite }
    }

    @Test func theCalleeGetsRtpenginesOfferAndTheCallerItsAnswer() throws {
        let route = BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@127.0.0.2:5070")], media: .anchor)
        #expect(try anchoredInvite(.bridge(route)) == nil)
        let offer = try #require(engine.sent.last?.request)
        #expect(offer["command"]?.text == "offer")
        #expect(offer["from-tag"]?.text == "leg0")
        #expect(offer["sdp"]?.text == Harness.offer)
        engine.reply(["result": "ok", "sdp": .string(Self.engineOffer)])
        harness.loop.run()
        let invite = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(String(decoding: invite.body, as: UTF8.self).contains("m=audio 40000 RTP/AVP 0"))

        harness.receive(.response(Harness.calleeResponse(to: invite, status: 200, sdp: Harness.answer)), from: Harness.callee)
        let answer = try #require(engine.sent.last?.request)
        #expect(answer["command"]?.text == "answer")
        #expect(answer["from-tag"]?.text == "leg0")
        #expect(answer["to-tag"]?.text == "leg1")
        #expect(harness.wire.take().compactMap(\.response).filter { $0.status == 200 }.isEmpty)
        engine.reply(["result": "ok", "sdp": .string(Self.engineAnswer)])
        harness.loop.run()
        let ok = try #require(harness.wire.take().compactMap(\.response).first { $0.status == 200 })
        #expect(String(decoding: ok.body, as: UTF8.self).contains("m=audio 40002 RTP/AVP 0"))
        #expect(harness.bus.types.suffix(2) == ["call.answered", "call.connected"])
    }

    @Test func aCANCELWhileRtpengineRewritesTheOfferWaitsItsTurnAndTheSessionIsDeleted() throws {
        let route = BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@127.0.0.2:5070")], media: .anchor)
        _ = try anchoredInvite(.bridge(route))
        var cancel = harness.callerInvite()
        cancel.method = .cancel
        cancel.headers.set("CSeq", "1 CANCEL")
        harness.receive(.request(cancel), from: Harness.caller)
        #expect(!harness.bus.types.contains("call.ended"))
        engine.reply(["result": "ok", "sdp": .string(Self.engineOffer)])
        harness.loop.run()
        // The flow saw the decision first, then the CANCEL: B was called and is cancelled once it rings.
        #expect(harness.bus.types.suffix(2) == ["call.dialing", "call.ended"])
        #expect(engine.commands.last == "delete")
    }

    @Test func rtpengineUnreachableLeavesTheCallRelayed() throws {
        let route = BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@127.0.0.2:5070")], media: .anchor)
        _ = try anchoredInvite(.bridge(route))
        harness.advance(by: .milliseconds(1_000))
        let invite = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(String(decoding: invite.body, as: UTF8.self) == Harness.offer)
        let sentBefore = engine.sent.count
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 200, sdp: Harness.answer)), from: Harness.callee)
        #expect(engine.sent.count == sentBefore)
        let ok = try #require(harness.wire.take().compactMap(\.response).first { $0.status == 200 })
        #expect(String(decoding: ok.body, as: UTF8.self).contains("m=audio 5000"))
    }

    @Test func anAnswerDecisionAnswersTheCallerWithRtpenginesSDPAndPlayReachesTheLeg() throws {
        _ = try anchoredInvite(.answer)
        engine.reply(["result": "ok", "sdp": .string(Self.engineOffer)])
        let bridgeSide = try #require(engine.sent.last?.request)
        #expect(bridgeSide["command"]?.text == "answer")
        #expect(bridgeSide["to-tag"]?.text == "bridge")
        #expect(bridgeSide["sdp"]?.text?.contains("m=audio 9 RTP/AVP 0") == true)
        engine.reply(["result": "ok", "sdp": .string(Self.engineAnswer)])
        harness.loop.run()
        let ok = try #require(harness.wire.take().compactMap(\.response).first { $0.status == 200 })
        #expect(String(decoding: ok.body, as: UTF8.self).contains("m=audio 40002"))
        #expect(harness.bus.types.suffix(2) == ["call.routed", "call.connected"])

        let callId = try #require(harness.bus.events.last?.callId)
        var outcome: CommandOutcome?
        harness.side.b2bua.executeMedia(.play(callId: callId, leg: .a, playback: Playback(tone: .beep, repeatCount: 2))) { outcome = $0 }
        let play = try #require(engine.sent.last?.request)
        #expect(play["command"]?.text == "play media")
        #expect(play["from-tag"]?.text == "leg0")
        #expect(play["file"]?.text?.hasSuffix("/beep.wav") == true)
        #expect(play["repeat-times"]?.integer == 2)
        engine.reply(["result": "ok", "duration": 500])
        #expect(outcome == .done(callId: callId))
        harness.advance(by: .milliseconds(1_000))
        #expect(harness.bus.events.last?.body == .callMediaPlayed(MediaPlayed(leg: .a, playback: Playback(tone: .beep, repeatCount: 2),
                                                                            outcome: .finished, playedMs: 1_000)))
    }

    @Test func mediaCommandsSayWhyTheyCannotBeCarriedOut() throws {
        let route = BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@127.0.0.2:5070")])
        let invite = try #require(try anchoredInvite(.bridge(route)))
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 200, sdp: Harness.answer)), from: Harness.callee)
        let callId = try #require(harness.bus.events.last?.callId)
        var outcomes: [CommandOutcome] = []
        for command in [Command.play(callId: callId, leg: nil, playback: Playback(prompt: "../etc/passwd")),
                        .play(callId: callId, leg: nil, playback: Playback(tone: .beep)),
                        .record(callId: "nope", on: true)] {
            harness.side.b2bua.executeMedia(command) { outcomes.append($0) }
        }
        let codes = outcomes.map { outcome -> String in if case .failed(let error) = outcome { error.code.rawValue } else { "ok" } }
        #expect(codes == ["bad_command", "invalid_state", "unknown_call"])
    }
}
