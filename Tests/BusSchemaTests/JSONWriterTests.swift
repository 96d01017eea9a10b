#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import BusSchema

/// Every message reads back as written, whatever its strings hold.
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

    @Test(arguments: [0, 1])
    func eventsDecodeBack(offerIndex: Int) throws {
        let offer = Self.offers[offerIndex]
        let bodies: [EventBody] = [
            .callOffered(offer),
            .callRouted(Routed(targets: [Target(uri: "sip:a@b", q: 1), Target(uri: "sip:c@d", q: nil)], workerId: nil, fallback: true,
                               cause: .timeout, decisionMs: 0.123456)),
            .callRejected(Rejected(status: 486, reason: Self.tricky, workerId: "w", fallback: false, cause: nil, decisionMs: 12)),
        ]
        for body in bodies {
            let event = Event(bridgeId: "b1", seq: UInt64.max, timestamp: Date(timeIntervalSince1970: 1_795_000_000.5), callId: "c1", body: body)
            let decoded = try Event.decode(event.jsonBytes())
            #expect(decoded.body == body && decoded.seq == UInt64.max)
        }
    }

    @Test func systemEventsLeaveOutCallId() throws {
        let info = BridgeInfo(version: "1.0", sipListen: "127.0.0.1:5080", events: "tcp://127.0.0.1:5570", decisions: "tcp://127.0.0.1:5571",
                              replay: "tcp://127.0.0.1:5572", journal: Self.tricky, decisionTimeoutMs: 500, fallback: "reject 503 Retry-After 30")
        let bodies: [EventBody] = [.bridgeStarted(info), .bridgeStopping(info), .workerJoined(WorkerInfo(workerId: Self.tricky)),
                                   .workerLeft(WorkerInfo(workerId: "w1")), .workerLost(WorkerInfo(workerId: "w2"))]
        for body in bodies {
            let event = Event(bridgeId: "b1", seq: 3, timestamp: Date(timeIntervalSince1970: 1_795_000_000.5), callId: nil, body: body)
            let written = try Self.object(event.jsonBytes())
            #expect(written["call_id"] == nil)
            #expect(written["type"] as? String == body.type)
            let decoded = try Event.decode(event.jsonBytes())
            #expect(decoded.body == body && decoded.callId == nil)
        }
    }

    @Test func replayMessagesRoundTrip() throws {
        let request = ReplayRequest(requestId: Self.tricky, fromSeq: 42, max: 250)
        #expect(try ReplayRequest.decode(request.encoded()) == request)
        #expect(try ReplayRequest.decode(Array(#"{"v":1,"type":"replay.request","request_id":"r","from_seq":0}"#.utf8)).max == ReplayRequest.defaultMax)
        #expect(ReplayRequest(requestId: "r", fromSeq: 1, max: 50_000).max == ReplayRequest.maxLimit)

        let events = [Event(bridgeId: "b1", seq: 7, timestamp: Date(timeIntervalSince1970: 1_795_000_000.5), callId: "c1",
                            body: .callOffered(Self.offers[0])),
                      Event(bridgeId: "b1", seq: 8, timestamp: Date(timeIntervalSince1970: 1_795_000_000.5), callId: nil,
                            body: .workerLost(WorkerInfo(workerId: "w")))]
        let frame = ReplayReply.eventsFrame(requestId: "r1", journaled: events.map { $0.jsonBytes() })
        #expect(try ReplayReply.decode(frame) == .events(requestId: "r1", events: events.map { ReceivedEvent(bridgeId: "b1", seq: $0.seq, type: $0.type, event: $0) }))
        // The events inside are the published JSON, untouched.
        let embedded = try #require(try Self.object(frame)["events"] as? [NSDictionary])
        #expect(embedded == (try events.map { try Self.object($0.jsonBytes()) }))

        let end = ReplayEnd(requestId: "r1", bridgeId: "b1", firstSeq: 1, lastSeq: 8, nextSeq: 9)
        #expect(try ReplayReply.decode(ReplayReply.end(end).encoded()) == .end(end))
        let endObject = try Self.object(ReplayReply.end(end).encoded())
        #expect(endObject["type"] as? String == "replay.end" && endObject["v"] as? Int == 1)
        #expect(end.caughtUp)
        let error = ErrorReply(code: .badMessage, message: Self.tricky, requestId: "r1")
        #expect(try ReplayReply.decode(ReplayReply.error(error).encoded()) == .error(error))
    }

    @Test func badReplayRequestsAreRefusedByName() {
        func refusal(_ text: String) -> ReplayRequest.Refusal? {
            do { _ = try ReplayRequest.decode(Array(text.utf8)); return nil } catch { return error }
        }
        #expect(refusal("[1]")?.error.code == .badJSON)
        #expect(refusal(#"{"v":3,"type":"replay.request","request_id":"a","from_seq":1}"#) == ReplayRequest.Refusal(
            BusDecodingError(code: .unsupportedVersion, message: "schema version 3 is not supported (this build speaks 1)"), requestId: "a"))
        #expect(refusal(#"{"v":1,"type":"replay.request","request_id":"a","from_seq":"x"}"#)?.error.message == "invalid replay.request: from_seq must be an integer")
        #expect(refusal(#"{"v":1,"type":"replay.request","from_seq":1}"#)?.error.message == "invalid replay.request: missing field request_id")
        #expect(refusal(#"{"v":1,"type":"decision","request_id":"a"}"#)?.error.code == .badMessage)
        let huge = #"{"v":1,"type":"replay.request","request_id":""# + String(repeating: "x", count: BusSchema.maxFrameSize) + #"","from_seq":1}"#
        #expect(refusal(huge)?.error.code == .tooLarge)
    }

    @Test func bridgeAndWorkerMessagesDecodeBackToThemselves() throws {
        let messages: [BridgeMessage] = Self.offers.map { .decisionRequest(requestId: "r", callId: "c", deadlineMs: 500, offer: $0) }
            + [.error(ErrorReply(code: .badJSON, message: Self.tricky, requestId: "r"))]
        for message in messages { #expect(try BridgeMessage.decode(message.encoded()) == message) }
        let decisions: [Decision] = [.redirect([Target(uri: "sip:a@b", q: 0.25)]), .reject(status: 503, reason: nil, headers: ["Retry-After": "30"])]
        for decision in decisions {
            let frame = WorkerMessage.decision(requestId: Self.tricky, decision: decision).encoded()
            #expect(try WorkerMessage.decode(frame) == .decision(requestId: Self.tricky, decision: decision))
        }
    }

    @Test func timestampsAreUTCWithMilliseconds() {
        #expect(BusTimestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(BusTimestamp.format(Date(timeIntervalSince1970: 1_795_726_167.0429)) == "2026-11-26T20:49:27.042Z")
        #expect(BusTimestamp.parse("2026-11-26T20:49:27.042Z").map { abs($0.timeIntervalSince1970 - 1_795_726_167.042) < 0.0005 } == true)
        #expect(BusTimestamp.parse("yesterday") == nil)
    }

    /// scripts/fuzz: half the millisecond values came back 1 ms earlier each time a decoded message was encoded
    /// again, since the Date read for `.001` lies just below it.
    @Test func everyMillisecondSurvivesReencoding() {
        for millisecond in 0..<1000 {
            let text = "2026-11-26T20:49:27.\(String(millisecond + 1000).dropFirst())Z"
            #expect(BusTimestamp.parse(text).map(BusTimestamp.format) == text)
        }
    }

    /// scripts/fuzz (Tests/Fixtures/fuzz-regressions/bus-json-ts-year-1013.json): an event stamped in 1013 read
    /// in the Julian calendar and was written in the Gregorian one, 6 days later, so it never round-tripped.
    @Test func timestampsBefore1970AreRefused() throws {
        let frame = try Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures/fuzz-regressions/bus-json-ts-year-1013.json"))
        let error = #expect(throws: BusDecodingError.self) { try Event.decode(Array(frame)) }
        #expect(error?.message == "invalid call.originated: ts must be an ISO 8601 timestamp")
        let modern = String(decoding: frame, as: UTF8.self).replacingOccurrences(of: "\"1013-", with: "\"2013-")
        #expect(throws: Never.self) { try Event.decode(Array(modern.utf8)) }
        #expect(BusTimestamp.parse("1969-12-31T23:59:59.999Z") == nil)
        #expect(BusTimestamp.parse("1970-01-01T00:00:00.000Z") == Date(timeIntervalSince1970: 0))
    }
}

/// The writer's fast paths (digits written in place, strings copied whole when nothing needs escaping) write
/// the bytes the straightforward code wrote: the references here are that code.
@Suite struct JSONWriterFastPathTests {
    static func written(_ write: (inout JSONWriter) -> Void) -> [UInt8] {
        var writer = JSONWriter()
        write(&writer)
        return writer.bytes
    }

    /// Character by character, as the writer escaped every string before the fast path.
    static func escaped(_ value: String) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += Array("\\\"".utf8)
            case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
            case UInt8(ascii: "\n"): out += Array("\\n".utf8)
            case UInt8(ascii: "\r"): out += Array("\\r".utf8)
            case UInt8(ascii: "\t"): out += Array("\\t".utf8)
            case 0..<0x20: out += Array(String(format: "\\u%04x", byte).utf8)
            default: out.append(byte)
            }
        }
        return out + [UInt8(ascii: "\"")]
    }

    /// The timestamp as the String-padding code wrote it.
    static func referenceTimestamp(_ date: Date) -> String {
        let exact = date.timeIntervalSince1970 * 1000
        let nearest = exact.rounded()
        let total = abs(exact - nearest) < 0.001 ? nearest : exact.rounded(.down)
        var seconds = time_t((total / 1000).rounded(.down))
        let milliseconds = Int(total - Double(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds), 3))Z"
    }

    @Test func integersAsStringWritesThem() {
        let signed: [Int] = [0, 1, -1, 9, 10, -10, 99, 100, 999, 1000, 65_535, 1_000_000_007, -1_000_000_007, .max, .min, .max - 1, .min + 1]
        for value in signed { #expect(Self.written { $0.int(value) } == Array(String(value).utf8)) }
        let unsigned: [UInt64] = [0, 9, 10, UInt64(Int64.max), UInt64(Int64.max) + 1, 10_000_000_000_000_000_000, .max]
        for value in unsigned { #expect(Self.written { $0.int(value) } == Array(String(value).utf8)) }
        for power in 0..<19 {
            let value = (0..<power).reduce(Int64(1)) { product, _ in product * 10 }
            for near in [value - 1, value, value + 1] { #expect(Self.written { $0.int(near) } == Array(String(near).utf8)) }
        }
        #expect(Self.written { $0.int(Int32.min) } == Array(String(Int32.min).utf8))
    }

    @Test func stringsWithAndWithoutEscapesAreWrittenAsBefore() {
        let samples = ["", "plain", "sip:+12025550100@switchboard.local;user=phone", JSONWriterTests.tricky, "é 漢 🎉", "\u{7F}",
                       "a\"", "\\", "\u{1F}", "ends with newline\n", String(repeating: "x", count: 300), String(repeating: "é\"", count: 40)]
        for sample in samples {
            #expect(Self.written { $0.string(sample) } == Self.escaped(sample))
        }
        for byte in UInt8(0)..<0x80 {
            let text = "a" + String(UnicodeScalar(byte)) + "b"
            #expect(Self.written { $0.string(text) } == Self.escaped(text))
        }
    }

    @Test func timestampsAsTheStringPaddingWroteThem() {
        var dates = [0, 0.001, 0.0009999, 0.9995, 59.999, 86_399.999, 951_782_400.5, 1_795_726_167.0429, 4_102_444_799.999,
                     253_402_300_799.999].map(Date.init(timeIntervalSince1970:))
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 { dates.append(Date(timeIntervalSince1970: Double.random(in: 0..<4_102_444_800, using: &generator))) }
        for date in dates { #expect(BusTimestamp.format(date) == Self.referenceTimestamp(date)) }
    }
}
