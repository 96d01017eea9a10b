import Foundation
import Testing
@testable import BusSchema

/// The commands socket: requests and replies both ways, their wire text, and every refusal by name.
@Suite struct CommandsTests {
    static let originate = CallEventsTests.originate
    /// Whole seconds, so the dates survive the wire's millisecond precision bit for bit.
    static let snapshot = CallSnapshot(
        callId: "b1-x-7", kind: .originate, state: .connected, account: "acme",
        createdAt: Date(timeIntervalSince1970: 1_795_000_000), connectedAt: Date(timeIntervalSince1970: 1_795_000_009),
        legs: [LegSnapshot(leg: .a, uri: "sip:alice@switchboard.local", state: .answered, sipCallId: "s-a", held: false),
               LegSnapshot(leg: .b, uri: "sip:bob@switchboard.local", state: .answered, sipCallId: JSONWriterTests.tricky, held: true)])

    static let commands: [Command] = [
        .originate(originate),
        .originate(Originate(a: Party(uri: "sip:a@a"), b: Party(uri: "sip:b@b", callerId: CallerID(displayName: "Shop")))),
        .hangup(callId: "b1-x-7", leg: .b), .hangup(callId: "b1-x-7"),
        .transfer(callId: "b1-x-7", leg: .a, target: "sip:carol@switchboard.local"),
        .hold(callId: "b1-x-7", leg: .b), .unhold(callId: "b1-x-7", leg: .a),
        .list, .get(callId: JSONWriterTests.tricky),
        .decide(HandoffTests.offer), .decide(HandoffOffer(requestUri: "sip:1@s", from: "<sip:a@s>", to: "<sip:1@s>", sipCallId: "c-1 é 漢 🎉")),
    ]

    @Test(arguments: commands)
    func requestsRoundTrip(command: Command) throws {
        let frame = CommandRequest(requestId: JSONWriterTests.tricky, command: command).frame()
        #expect(try CommandRequest.decode(frame) == CommandRequest(requestId: JSONWriterTests.tricky, command: command))
    }

    @Test func requestWireTextIsPinned() {
        func text(_ command: Command) -> String {
            String(decoding: CommandRequest(requestId: "r-1", command: command).frame(), as: UTF8.self)
        }
        #expect(text(.originate(Originate(a: Party(uri: "sip:alice@s", ringTimeoutMs: 30_000), b: Party(uri: "sip:bob@s"), account: "acme")))
            == #"{"v":1,"type":"command","request_id":"r-1","command":{"name":"originate","a":{"uri":"sip:alice@s","ring_timeout_ms":30000},"b":{"uri":"sip:bob@s"},"account":"acme"}}"#)
        #expect(text(.hangup(callId: "c1")) == #"{"v":1,"type":"command","request_id":"r-1","command":{"name":"hangup","call_id":"c1"}}"#)
        #expect(text(.transfer(callId: "c1", leg: .a, target: "sip:carol@s"))
            == #"{"v":1,"type":"command","request_id":"r-1","command":{"name":"transfer","call_id":"c1","leg":"a","target":"sip:carol@s"}}"#)
        #expect(text(.list) == #"{"v":1,"type":"command","request_id":"r-1","command":{"name":"list"}}"#)
    }

    static let outcomes: [CommandOutcome] = [
        .originated(callId: "b1-x-7", existing: false), .originated(callId: "b1-x-7", existing: true), .done(callId: "b1-x-7"),
        .calls([]), .calls([snapshot, CallSnapshot(callId: "b1-9", kind: .inbound, state: .ringing, createdAt: Date(timeIntervalSince1970: 1),
                                                   legs: [LegSnapshot(leg: .a, uri: "sip:x@y", state: .ringing, sipCallId: "s")])]),
        .call(snapshot), .failed(ErrorReply(code: .unknownCall, message: JSONWriterTests.tricky)),
        .decided(HandoffDecision(callId: "b1-h1", decision: .redirect([Target(uri: "sip:1@gw", q: 0.5)]), workerId: "router-1", fallback: false)),
        .decided(HandoffDecision(callId: "b1-h2", decision: .reject(status: 486, reason: "Busy Here"), workerId: nil, fallback: true, cause: .timeout)),
    ]

    @Test(arguments: outcomes)
    func repliesRoundTrip(outcome: CommandOutcome) throws {
        let reply = CommandReply(requestId: "r-1", outcome: outcome)
        #expect(try CommandReply.decode(reply.frame()) == reply)
    }

    @Test func replyWireTextIsPinned() {
        func text(_ outcome: CommandOutcome) -> String {
            String(decoding: CommandReply(requestId: "r-1", outcome: outcome).frame(), as: UTF8.self)
        }
        #expect(text(.originated(callId: "c1", existing: false))
            == #"{"v":1,"type":"command.reply","request_id":"r-1","ok":true,"result":{"call_id":"c1","existing":false}}"#)
        #expect(text(.done(callId: "c1")) == #"{"v":1,"type":"command.reply","request_id":"r-1","ok":true,"result":{"call_id":"c1"}}"#)
        #expect(text(.failed(ErrorReply(code: .unknownCall, message: "no live call c1", requestId: "ignored")))
            == #"{"v":1,"type":"command.reply","request_id":"r-1","ok":false,"error":{"code":"unknown_call","message":"no live call c1"}}"#)
        let call = CallSnapshot(callId: "c1", kind: .inbound, state: .dialing, createdAt: Date(timeIntervalSince1970: 0),
                                legs: [LegSnapshot(leg: .a, uri: "sip:a@a", state: .answered, sipCallId: "s")])
        #expect(text(.call(call)) == #"{"v":1,"type":"command.reply","request_id":"r-1","ok":true,"result":{"call":{"call_id":"c1","kind":"inbound","state":"dialing","created_at":"1970-01-01T00:00:00.000Z","legs":[{"leg":"a","uri":"sip:a@a","state":"answered","sip_call_id":"s","held":false}]}}}"#)
    }

    @Test(arguments: [
        ("not json", "bad_json", "not a bus message"),
        (#"{"type":"command"}"#, "bad_json", #"not a bus message: "v" and "type" are required"#),
        (#"{"v":2,"type":"command","request_id":"r","command":{"name":"list"}}"#, "unsupported_version", "schema version 2 is not supported"),
        (#"{"v":1,"type":"decision","request_id":"r"}"#, "bad_message", #"unknown message type "decision" on the commands socket"#),
        (#"{"v":1,"type":"command","command":{"name":"list"}}"#, "bad_message", "invalid command: missing field $.request_id"),
        (#"{"v":1,"type":"command","request_id":"r"}"#, "bad_message", "invalid command: missing field $.command"),
        (#"{"v":1,"type":"command","request_id":"r","command":[]}"#, "bad_message", "invalid command: $.command must be an object"),
        (#"{"v":1,"type":"command","request_id":"r","command":{}}"#, "bad_message", "invalid command: missing field $.command.name"),
        (#"{"v":1,"type":"command","request_id":"r","command":{"name":"dance"}}"#, "bad_message",
         #"invalid command: $.command.name: unknown command "dance" (expected originate, hangup, transfer, hold, unhold, list, get, decide, play, stop_play, record, dtmf)"#),
        (#"{"v":1,"type":"command","request_id":"r","command":{"name":"originate","a":{},"b":{"uri":"sip:b@b"}}}"#, "bad_message",
         "invalid command: missing field $.command.a.uri"),
        (#"{"v":1,"type":"command","request_id":"r","command":{"name":"originate","a":{"uri":"sip:a@a"}}}"#, "bad_message",
         "invalid command: missing field $.command.b"),
        (#"{"v":1,"type":"command","request_id":"r","command":{"name":"originate","a":{"uri":"sip:a@a","ring_timeout_ms":"30s"},"b":{"uri":"sip:b@b"}}}"#,
         "bad_message", "invalid command: $.command.a.ring_timeout_ms must be an integer"),
        (#"{"v":1,"type":"command","request_id":"r","command":{"name":"originate","a":{"uri":"sip:a@a","caller_id":{"display_name":7}},"b":{"uri":"sip:b@b"}}}"#,
         "bad_message", "invalid command: $.command.a.caller_id.display_name must be a string"),
        (#"{"v":1,"type":"command","request_id":"r","command":{"name":"originate","a":{"uri":"sip:a@a"},"b":{"uri":"sip:b@b"},"headers":{"X-A":1}}}"#,
         "bad_message", "invalid command: $.command.headers.X-A must be a string"),
        (#"{"v":1,"type":"command","request_id":"r","command":{"name":"hold","call_id":"c"}}"#, "bad_message", "invalid command: missing field $.command.leg"),
        (#"{"v":1,"type":"command","request_id":"r","command":{"name":"hangup","call_id":"c","leg":"c"}}"#, "bad_message",
         #"invalid command: $.command.leg must be one of a, b, got "c""#),
        (#"{"v":1,"type":"command","request_id":"r","command":{"name":"transfer","call_id":"c","leg":"a"}}"#, "bad_message",
         "invalid command: missing field $.command.target"),
        (#"{"v":1,"type":"command","request_id":"r","command":{"name":"get"}}"#, "bad_message", "invalid command: missing field $.command.call_id"),
    ])
    func badRequestsAreRefusedByName(frame: String, code: String, message: String) {
        do {
            _ = try CommandRequest.decode(Array(frame.utf8))
            Issue.record("decoded \(frame)")
        } catch {
            #expect(error.code.rawValue == code)
            #expect(error.message.hasPrefix(message), "\(error.message)")
        }
    }

    @Test func oversizedRequestsAreRefusedBeforeParsing() {
        let huge = #"{"v":1,"type":"command","request_id":""# + String(repeating: "x", count: BusSchema.maxFrameSize) + #"","command":{"name":"list"}}"#
        #expect(throws: BusDecodingError(code: .tooLarge, message: "frame of \(huge.utf8.count) bytes exceeds \(BusSchema.maxFrameSize)")) {
            try CommandRequest.decode(Array(huge.utf8))
        }
    }

    @Test func aRefusedRequestStillNamesItsId() {
        #expect(CommandRequest.requestId(in: Array(#"{"v":9,"type":"command","request_id":"r-7"}"#.utf8)) == "r-7")
        #expect(CommandRequest.requestId(in: Array(#"{"v":1,"request_id":5}"#.utf8)) == nil)
        #expect(CommandRequest.requestId(in: Array("{".utf8)) == nil)
    }

    @Test(arguments: [
        (#"{"v":1,"type":"command.reply","request_id":"r"}"#, "invalid command.reply: missing field $.ok"),
        (#"{"v":1,"type":"command.reply","request_id":"r","ok":"yes"}"#, "invalid command.reply: $.ok must be true or false"),
        (#"{"v":1,"type":"command.reply","request_id":"r","ok":false,"error":{"message":"m"}}"#, "invalid command.reply: missing field $.error.code"),
        (#"{"v":1,"type":"command.reply","request_id":"r","ok":true,"result":{}}"#, "invalid command.reply: missing field $.result.call_id"),
        (#"{"v":1,"type":"command.reply","request_id":"r","ok":true,"result":{"call":{"call_id":"c","kind":"inbound","state":"gone","created_at":"1970-01-01T00:00:00.000Z","legs":[]}}}"#,
         #"invalid command.reply: $.result.call.state must be one of routing, dialing, ringing, connected, ending, got "gone""#),
        (#"{"v":1,"type":"command.reply","request_id":"r","ok":true,"result":{"calls":[{"call_id":"c","kind":"inbound","state":"dialing","created_at":"soon","legs":[]}]}}"#,
         "invalid command.reply: $.result.calls[0].created_at must be an ISO 8601 timestamp"),
        (#"{"v":1,"type":"command","request_id":"r","command":{"name":"list"}}"#, #"unknown message type "command" from a commands socket"#),
    ])
    func badRepliesAreRefusedByName(frame: String, message: String) {
        #expect(throws: BusDecodingError(code: .badMessage, message: message)) { try CommandReply.decode(Array(frame.utf8)) }
    }

    @Test(arguments: [
        (Command.originate(Originate(a: Party(uri: "http://a"), b: Party(uri: "sip:b@b"))), #"a.uri "http://a" is not a sip:, sips: or tel: URI"#),
        (.originate(Originate(a: Party(uri: "sip:a@a"), b: Party(uri: "sip:b@b>\r\nX: y"))), "b.uri"),
        (.originate(Originate(a: Party(uri: "sip:a@a", ringTimeoutMs: 999), b: Party(uri: "sip:b@b"))), "a: ring_timeout_ms 999 is outside 1000...600000"),
        (.originate(Originate(a: Party(uri: "sip:a@a"), b: Party(uri: "sip:b@b", ringTimeoutMs: 600_001))), "b: ring_timeout_ms 600001"),
        (.originate(Originate(a: Party(uri: "sip:a@a", callerId: CallerID(uri: "mailto:x")), b: Party(uri: "sip:b@b"))), "a: caller_id uri"),
        (.originate(Originate(a: Party(uri: "sip:a@a"), b: Party(uri: "sip:b@b", callerId: CallerID(displayName: "a\"b")))), "b: display_name"),
        (.originate(Originate(a: Party(uri: "sip:a@a"), b: Party(uri: "sip:b@b"), headers: ["X Bad": "v"])), "not a SIP token"),
        (.originate(Originate(a: Party(uri: "sip:a@a"), b: Party(uri: "sip:b@b"), headers: ["X-Ok": "a\nb"])), "header X-Ok contains a control character"),
        (.originate(Originate(a: Party(uri: "sip:a@a"), b: Party(uri: "sip:b@b"), headers: ["P-Asserted-Identity": "<sip:911@x>"])),
         "header P-Asserted-Identity is reserved"),
        (.originate(Originate(a: Party(uri: "sip:a@a"), b: Party(uri: "sip:b@b"), headers: ["X-Switchboard-Auth-User": "admin"])),
         "header X-Switchboard-Auth-User is reserved"),
        (.originate(Originate(a: Party(uri: "sip:a@a\u{0}"), b: Party(uri: "sip:b@b"))), "a.uri"),
        (.transfer(callId: "c", leg: .a, target: "carol"), #"target "carol" is not a sip:"#),
        (.transfer(callId: "", leg: .a, target: "sip:carol@c"), "call_id is empty"),
        (.hangup(callId: ""), "call_id is empty"),
        (.hold(callId: "", leg: .a), "call_id is empty"),
        (.unhold(callId: "", leg: .b), "call_id is empty"),
        (.get(callId: ""), "call_id is empty"),
    ])
    func unusableCommandsAreNamed(command: Command, problem: String) {
        #expect(command.problem?.contains(problem) == true, "\(command.problem ?? "no problem")")
    }

    @Test func validCommandsHaveNoProblem() {
        // All but the first, whose header carries a line break to test the encoding.
        for command in Self.commands.dropFirst() { #expect(command.problem == nil, "\(command)") }
        let edges = Originate(a: Party(uri: "sips:a@a", ringTimeoutMs: 1000), b: Party(uri: "tel:+1202", ringTimeoutMs: 600_000))
        #expect(Command.originate(edges).problem == nil)
    }
}
