import Foundation
import Testing
@testable import BusSchema

/// The media messages (issue 16): `play`, `stop_play`, `record`, `dtmf`, the `answer` decision, `media: anchor`, and the
/// events they produce. They read back as written, their JSON is pinned, and what the bridge would refuse is named.
@Suite struct MediaTests {
    static let commands: [Command] = [
        .play(callId: "b1-7", leg: .a, playback: Playback(prompt: "welcome", repeatCount: 3)),
        .play(callId: "b1-7", leg: nil, playback: Playback(tone: .busy)),
        .play(callId: "b1-7", leg: .b, playback: Playback(prompt: "menu.fr_FR-2", repeatCount: Playback.maxRepeat)),
        .stopPlay(callId: "b1-7", leg: .b), .stopPlay(callId: "b1-7", leg: nil),
        .record(callId: "b1-7", on: true), .record(callId: "b1-7", on: false),
        .dtmf(callId: "b1-7", leg: .b, digits: "0123456789*#ABCD", durationMs: nil),
        .dtmf(callId: "b1-7", leg: .a, digits: "1", durationMs: 2_000),
        .originate(Originate(a: Party(uri: "sip:a@a"), b: Party(uri: "sip:b@b"), media: .anchor)),
    ]

    @Test(arguments: commands)
    func commandsRoundTripAndAreValid(command: Command) throws {
        let request = CommandRequest(requestId: "r-1", command: command)
        #expect(try CommandRequest.decode(request.frame()) == request)
        #expect(command.problem == nil, "\(command.problem ?? "")")
    }

    @Test func commandWireTextIsPinned() {
        func text(_ command: Command) -> String {
            String(decoding: CommandRequest(requestId: "r-1", command: command).frame(), as: UTF8.self)
        }
        let head = #"{"v":1,"type":"command","request_id":"r-1","command":"#
        #expect(text(.play(callId: "c1", leg: .a, playback: Playback(prompt: "welcome", repeatCount: 2)))
            == head + #"{"name":"play","call_id":"c1","leg":"a","prompt":"welcome","repeat":2}}"#)
        #expect(text(.play(callId: "c1", leg: nil, playback: Playback(tone: .ringback))) == head + #"{"name":"play","call_id":"c1","tone":"ringback"}}"#)
        #expect(text(.stopPlay(callId: "c1", leg: nil)) == head + #"{"name":"stop_play","call_id":"c1"}}"#)
        #expect(text(.record(callId: "c1", on: true)) == head + #"{"name":"record","call_id":"c1","action":"start"}}"#)
        #expect(text(.record(callId: "c1", on: false)) == head + #"{"name":"record","call_id":"c1","action":"stop"}}"#)
        #expect(text(.dtmf(callId: "c1", leg: .b, digits: "12#", durationMs: nil)) == head + #"{"name":"dtmf","call_id":"c1","leg":"b","digits":"12#"}}"#)
        #expect(text(.originate(Originate(a: Party(uri: "sip:a@a"), b: Party(uri: "sip:b@b"), media: .anchor)))
            == head + #"{"name":"originate","a":{"uri":"sip:a@a"},"b":{"uri":"sip:b@b"},"media":"anchor"}}"#)
        #expect(!text(.originate(Originate(a: Party(uri: "sip:a@a"), b: Party(uri: "sip:b@b")))).contains("media"), "relay is the default, omitted")
    }

    @Test(arguments: [
        (Playback(), "play needs a prompt or a tone"),
        (Playback(prompt: "welcome", tone: .beep), "play takes a prompt or a tone, not both"),
        (Playback(prompt: "../x"), #"prompt "../x" is not a prompt name"#),
        (Playback(prompt: "a/b"), #"prompt "a/b" is not a prompt name"#),
        (Playback(prompt: ".hidden"), #"prompt ".hidden" is not a prompt name"#),
        (Playback(prompt: ""), #"prompt "" is not a prompt name"#),
        (Playback(prompt: "wel come"), "is not a prompt name"),
        (Playback(prompt: "a\\b"), "is not a prompt name"),
        (Playback(prompt: "accueil-é"), "is not a prompt name"),
        (Playback(prompt: String(repeating: "p", count: 65)), "is not a prompt name"),
        (Playback(prompt: "welcome", repeatCount: 0), "repeat 0 is outside 1...100"),
        (Playback(tone: .ringback, repeatCount: 101), "repeat 101 is outside 1...100"),
        (Playback(tone: .busy, repeatCount: -1), "repeat -1 is outside 1...100"),
    ])
    func unplayableRequestsAreNamed(playback: Playback, problem: String) {
        let command = Command.play(callId: "c1", leg: .a, playback: playback)
        #expect(command.problem?.contains(problem) == true, "\(command.problem ?? "no problem")")
    }

    @Test func promptNamesStayInTheirFolder() {
        for name in ["welcome", "menu.fr_FR-2", "a..b", String(repeating: "p", count: 64)] { #expect(Playback.isPromptName(name), "\(name)") }
        for name in ["..", ".", "../welcome", "/etc/passwd", "a/b", ".hidden", "", "x\u{0}"] { #expect(!Playback.isPromptName(name), "\(name)") }
    }

    @Test(arguments: [
        ("", nil, "digits is empty"),
        ("12x", nil, #"digits contains "x": only 0-9, *, # and A-D are DTMF"#),
        ("12a", nil, #"digits contains "a": only 0-9, *, # and A-D are DTMF"#),
        ("1 2", nil, #"digits contains " ": only 0-9, *, # and A-D are DTMF"#),
        (String(repeating: "1", count: DTMFDigits.maxCount + 1), nil, "digits has 33 digits, more than 32"),
        ("1", 39, "duration_ms 39 is outside 40...2000"),
        ("1", 2_001, "duration_ms 2001 is outside 40...2000"),
    ] as [(String, Int?, String)])
    func unsendableDigitsAreNamed(digits: String, durationMs: Int?, problem: String) {
        #expect(Command.dtmf(callId: "c1", leg: .a, digits: digits, durationMs: durationMs).problem == problem)
    }

    @Test func everyMediaCommandNeedsACallId() {
        for command: Command in [.play(callId: "", leg: .a, playback: Playback(prompt: "x")), .stopPlay(callId: "", leg: nil),
                                 .record(callId: "", on: true), .dtmf(callId: "", leg: .a, digits: "1", durationMs: nil)] {
            #expect(command.problem == "call_id is empty", "\(command)")
        }
        #expect(Command.dtmf(callId: "c1", leg: .a, digits: String(repeating: "#", count: DTMFDigits.maxCount), durationMs: 40).problem == nil)
    }

    @Test(arguments: [
        (#"{"name":"record","call_id":"c","action":"pause"}"#, #"invalid command: $.command.action must be one of start, stop, got "pause""#),
        (#"{"name":"record","call_id":"c"}"#, "invalid command: missing field $.command.action"),
        (#"{"name":"play","call_id":"c","tone":"siren"}"#, #"invalid command: $.command.tone must be one of ringback, busy, beep, got "siren""#),
        (#"{"name":"play","call_id":"c","prompt":"x","repeat":"2"}"#, "invalid command: $.command.repeat must be an integer"),
        (#"{"name":"play","call_id":"c","prompt":7}"#, "invalid command: $.command.prompt must be a string"),
        (#"{"name":"play","prompt":"x"}"#, "invalid command: missing field $.command.call_id"),
        (#"{"name":"play","call_id":"c","leg":"c","prompt":"x"}"#, #"invalid command: $.command.leg must be one of a, b, got "c""#),
        (#"{"name":"stop_play","call_id":"c","leg":"both"}"#, #"invalid command: $.command.leg must be one of a, b, got "both""#),
        (#"{"name":"dtmf","call_id":"c","digits":"1"}"#, "invalid command: missing field $.command.leg"),
        (#"{"name":"dtmf","call_id":"c","leg":"a"}"#, "invalid command: missing field $.command.digits"),
        (#"{"name":"dtmf","call_id":"c","leg":"a","digits":1}"#, "invalid command: $.command.digits must be a string"),
        (#"{"name":"dtmf","call_id":"c","leg":"a","digits":"1","duration_ms":1.5}"#, "invalid command: $.command.duration_ms must be an integer"),
        (#"{"name":"originate","a":{"uri":"sip:a@a"},"b":{"uri":"sip:b@b"},"media":"proxy"}"#,
         #"invalid command: $.command.media must be one of relay, anchor, got "proxy""#),
        (#"{"name":"stopplay","call_id":"c"}"#,
         #"invalid command: $.command.name: unknown command "stopplay" (expected originate, hangup, transfer, hold, unhold, list, get, decide, play, stop_play, record, dtmf)"#),
    ])
    func badMediaCommandsNameTheField(command: String, message: String) {
        let frame = #"{"v":1,"type":"command","request_id":"r","command":"# + command + "}"
        #expect(throws: BusDecodingError(code: .badMessage, message: message)) { try CommandRequest.decode(Array(frame.utf8)) }
    }

    @Test func theAnswerDecisionAndAnchoredBridgesRoundTrip() throws {
        let anchored = BridgeRoute(targets: [BridgeTarget(uri: "sip:sales@s")], media: .anchor)
        for decision in [Decision.answer, .bridge(anchored)] {
            let frame = WorkerMessage.decision(requestId: "r", decision: decision).encoded()
            #expect(try WorkerMessage.decode(frame) == .decision(requestId: "r", decision: decision))
            #expect(decision.problem == nil)
        }
        func text(_ decision: Decision) -> String {
            String(decoding: WorkerMessage.decision(requestId: "r", decision: decision).encoded(), as: UTF8.self)
        }
        #expect(text(.answer) == #"{"v":1,"type":"decision","request_id":"r","decision":{"action":"answer"}}"#)
        #expect(text(.bridge(anchored))
            == #"{"v":1,"type":"decision","request_id":"r","decision":{"action":"bridge","targets":[{"uri":"sip:sales@s"}],"mode":"serial","media":"anchor"}}"#)
        #expect(!text(.bridge(BridgeRoute(targets: [BridgeTarget(uri: "sip:sales@s")]))).contains("media"), "relay is the default, omitted")
    }

    @Test(arguments: [
        (#"{"action":"bridge","targets":[{"uri":"sip:b@b"}],"media":"loud"}"#, #"invalid decision: decision.media must be one of relay, anchor, got "loud""#),
        (#"{"action":"answr"}"#, #"invalid decision: decision.action: unknown action "answr" (expected redirect, reject, bridge or answer)"#),
    ])
    func badMediaDecisionsNameTheField(decision: String, message: String) {
        let frame = #"{"v":1,"type":"decision","request_id":"r","decision":"# + decision + "}"
        #expect(throws: BusDecodingError(code: .badMessage, message: message)) { try WorkerMessage.decode(Array(frame.utf8)) }
    }

    static let bodies: [EventBody] = [
        .callDTMF(DTMFPressed(leg: .a, digit: "#", durationMs: 120)),
        .callMediaPlayed(MediaPlayed(leg: .a, playback: Playback(prompt: "welcome", repeatCount: 2), outcome: .finished, playedMs: 4020)),
        .callMediaPlayed(MediaPlayed(leg: .b, playback: Playback(tone: .beep), outcome: .interrupted, playedMs: 0)),
        .callMediaRecorded(MediaRecorded(path: "/var/spool/switchboard/recordings/b1-7.pcap", durationMs: 10_020, bytes: 180_224)),
    ]

    @Test(arguments: bodies)
    func eventsDecodeBack(body: EventBody) throws {
        let event = Event(bridgeId: "b1", seq: 9, timestamp: CallEventsTests.time, callId: "b1-9", body: body)
        #expect(try Event.decode(event.jsonBytes()) == event)
    }

    @Test(arguments: [
        (EventBody.callDTMF(DTMFPressed(leg: .b, digit: "5", durationMs: 80)), "call.dtmf", #""dtmf":{"leg":"b","digit":"5","duration_ms":80}"#),
        (.callMediaPlayed(MediaPlayed(leg: .a, playback: Playback(prompt: "welcome"), outcome: .stopped, playedMs: 900)), "call.media.played",
         #""played":{"leg":"a","prompt":"welcome","outcome":"stopped","played_ms":900}"#),
        (.callMediaPlayed(MediaPlayed(leg: .a, playback: Playback(tone: .ringback, repeatCount: 5), outcome: .finished, playedMs: 30000)),
         "call.media.played", #""played":{"leg":"a","tone":"ringback","repeat":5,"outcome":"finished","played_ms":30000}"#),
        (.callMediaRecorded(MediaRecorded(path: "/r/b1-9.pcap", durationMs: 5000, bytes: 1024)), "call.media.recorded",
         #""recorded":{"path":"/r/b1-9.pcap","format":"pcap","duration_ms":5000,"bytes":1024}"#),
        // The call's end stopped it: rtpengine is still closing the file, so no size.
        (.callMediaRecorded(MediaRecorded(path: "/r/b1-10.pcap", durationMs: 700)), "call.media.recorded",
         #""recorded":{"path":"/r/b1-10.pcap","format":"pcap","duration_ms":700}"#),
    ])
    func eventWireTextIsPinned(body: EventBody, type: String, member: String) {
        let event = Event(bridgeId: "b1", seq: 9, timestamp: Date(timeIntervalSince1970: 0), callId: "b1-9", body: body)
        #expect(String(decoding: event.jsonBytes(), as: UTF8.self)
            == #"{"v":1,"type":""# + type + #"","bridge_id":"b1","seq":9,"ts":"1970-01-01T00:00:00.000Z","call_id":"b1-9","# + member + "}")
    }

    @Test(arguments: [
        (#""type":"call.dtmf","dtmf":{"leg":"a","duration_ms":100}"#, "missing field dtmf.digit"),
        (#""type":"call.dtmf","dtmf":{"leg":"c","digit":"1","duration_ms":100}"#, "dtmf.leg"),
        (#""type":"call.media.played","played":{"leg":"a","prompt":"x","outcome":"skipped","played_ms":1}"#, "played.outcome"),
        (#""type":"call.media.played","played":{"leg":"a","tone":"siren","outcome":"finished","played_ms":1}"#, "played.tone"),
        (#""type":"call.media.played","played":{"leg":"a","prompt":"x","outcome":"finished"}"#, "missing field played.played_ms"),
        (#""type":"call.media.recorded","recorded":{"path":"/r/x.pcap","format":"pcap","bytes":1}"#, "missing field recorded.duration_ms"),
    ])
    func badMediaEventsNameTheField(members: String, path: String) {
        CallEventsTests.expectRefusalNaming(path, members: members)
    }

    @Test func enumsSpellTheSpec() {
        #expect(MediaMode.allCases.map(\.rawValue) == ["relay", "anchor"])
        #expect(Tone.allCases.map(\.rawValue) == ["ringback", "busy", "beep"])
        #expect(PlaybackOutcome.allCases.map(\.rawValue) == ["finished", "stopped", "interrupted"])
        #expect(ErrorCode.mediaUnavailable.rawValue == "media_unavailable")
        #expect((0...15).compactMap(DTMFPressed.digit(ofEvent:)).joined() == "0123456789*#ABCD")
        #expect(DTMFPressed.digit(ofEvent: 16) == nil && DTMFPressed.digit(ofEvent: -1) == nil)
    }
}
