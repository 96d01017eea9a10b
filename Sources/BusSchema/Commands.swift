import Foundation

/// One party of an ``Originate`` command: whom to call, what their phone shows, how long to ring.
///
/// ```json
/// {"uri":"sip:alice@switchboard.local","caller_id":{"uri":"sip:c2c@switchboard.local","display_name":"Click2Call"},"ring_timeout_ms":30000}
/// ```
public struct Party: Equatable, Sendable {
    public var uri: String
    /// The caller id this party's phone shows when the bridge calls it; nil: the bridge's default.
    public var callerId: CallerID?
    /// How long this party may ring; nil: the bridge's default.
    public var ringTimeoutMs: Int?

    public init(uri: String, callerId: CallerID? = nil, ringTimeoutMs: Int? = nil) {
        self.uri = uri
        self.callerId = callerId
        self.ringTimeoutMs = ringTimeoutMs
    }
}

/// Click-to-call (third-party call control): the bridge calls party A, and once A answers, calls
/// party B and joins them. Sent as the `originate` command; published as accepted in `call.originated`.
///
/// ```json
/// {"a":{"uri":"sip:alice@switchboard.local","ring_timeout_ms":30000},"b":{"uri":"sip:bob@switchboard.local"},
///  "idempotency_key":"k-1","account":"acme","headers":{"X-Foo":"bar"}}
/// ```
public struct Originate: Equatable, Sendable {
    public var a: Party
    public var b: Party
    /// A client's key for this call: an originate repeating an earlier key gets that call back
    /// (`existing: true`) instead of a second call, so a client may safely retry.
    public var idempotencyKey: String?
    /// Who the call is billed to, and whose concurrency limit it counts against.
    public var account: String?
    /// Extra headers for both legs' INVITEs.
    public var headers: [String: String]
    /// `.anchor`: the call's media goes through the bridge's rtpengine, for the media commands.
    public var media: MediaMode

    public init(a: Party, b: Party, idempotencyKey: String? = nil, account: String? = nil, headers: [String: String] = [:],
                media: MediaMode = .relay) {
        self.a = a
        self.b = b
        self.idempotencyKey = idempotencyKey
        self.account = account
        self.headers = headers
        self.media = media
    }
}

/// A request on the commands socket (client DEALER → the bridge's ROUTER), named by `name` in JSON.
///
/// ```swift
/// .originate(Originate(a: Party(uri: "sip:alice@switchboard.local"), b: Party(uri: "sip:bob@switchboard.local")))
/// .hangup(callId: "b1-x-7", leg: nil)
/// .transfer(callId: "b1-x-7", leg: .a, target: "sip:carol@switchboard.local")
/// ```
public enum Command: Equatable, Sendable {
    /// Start a click-to-call call; the reply is ``CommandOutcome/originated(callId:existing:)``.
    case originate(Originate)
    /// Hang up one leg, or with `leg` nil the whole call.
    case hangup(callId: String, leg: Leg? = nil)
    /// Blind transfer: the party on `leg` stays and is joined to `target`; the other leg is released.
    case transfer(callId: String, leg: Leg, target: String)
    /// Put `leg` on hold (re-INVITE with `a=sendonly`).
    case hold(callId: String, leg: Leg)
    /// Take `leg` off hold (back to `a=sendrecv`).
    case unhold(callId: String, leg: Leg)
    /// Every live call; the reply is ``CommandOutcome/calls(_:)``.
    case list
    /// One live call; the reply is ``CommandOutcome/call(_:)``.
    case get(callId: String)
    /// Decide a call a proxy holds (OpenSER 1.x through `switchboard-exec`) as an INVITE would be: the
    /// workers, the deadline, the fallback, the events; the reply is ``CommandOutcome/decided(_:)``.
    case decide(HandoffOffer)
    /// Play a prompt or tone to `leg`, or with `leg` nil to both parties, on an anchored call; a new play to a leg
    /// stops the one it hears. `call.media.played` follows when it is over.
    case play(callId: String, leg: Leg?, playback: Playback)
    /// Stop what `leg` (nil: both) hears.
    case stopPlay(callId: String, leg: Leg?)
    /// Start (`on`) or stop recording an anchored call, both directions in one file; `call.media.recorded` follows the stop
    /// (or the call's end).
    case record(callId: String, on: Bool)
    /// Send DTMF digits (RFC 4733) to the party on `leg`, as if the other party pressed them.
    case dtmf(callId: String, leg: Leg, digits: String, durationMs: Int?)

    /// The command's `name` in JSON.
    public var name: CommandName {
        switch self {
        case .originate: .originate
        case .hangup: .hangup
        case .transfer: .transfer
        case .hold: .hold
        case .unhold: .unhold
        case .list: .list
        case .get: .get
        case .decide: .decide
        case .play: .play
        case .stopPlay: .stopPlay
        case .record: .record
        case .dtmf: .dtmf
        }
    }

    /// Checks what the bridge could not carry out as SIP (the `bad_command` error); returns what is wrong, or nil.
    public var problem: String? {
        switch self {
        case .originate(let originate):
            for (leg, party) in [("a", originate.a), ("b", originate.b)] {
                if let problem = SIPText.uriProblem(party.uri, what: "\(leg).uri") { return problem }
                if let problem = SIPText.ringTimeoutProblem(party.ringTimeoutMs) { return "\(leg): \(problem)" }
                if let problem = party.callerId?.problem { return "\(leg): \(problem)" }
            }
            return SIPText.headersProblem(originate.headers)
        case .transfer(let callId, _, let target):
            if callId.isEmpty { return "call_id is empty" }
            return SIPText.uriProblem(target, what: "target")
        case .hangup(let callId, _), .hold(let callId, _), .unhold(let callId, _), .get(let callId), .stopPlay(let callId, _),
             .record(let callId, _):
            return callId.isEmpty ? "call_id is empty" : nil
        case .play(let callId, _, let playback):
            return callId.isEmpty ? "call_id is empty" : playback.problem
        case .dtmf(let callId, _, let digits, let durationMs):
            return callId.isEmpty ? "call_id is empty" : DTMFDigits.problem(digits, durationMs: durationMs)
        case .list:
            return nil
        case .decide(let offer):
            return offer.problem
        }
    }
}

/// A command's `name` on the wire, in the order error messages list them.
///
/// ```swift
/// Command.hangup(callId: "b1-x-7").name   // .hangup
/// ```
public enum CommandName: String, Equatable, Sendable, CaseIterable {
    case originate, hangup, transfer, hold, unhold, list, get, decide, play
    case stopPlay = "stop_play"
    case record, dtmf
}

/// A command with the id its reply will carry: one JSON frame on the commands socket.
///
/// ```json
/// {"v":1,"type":"command","request_id":"r-1","command":{"name":"hangup","call_id":"b1-x-7","leg":"b"}}
/// ```
public struct CommandRequest: Equatable, Sendable {
    public static let type = MessageType.command.rawValue

    /// Chosen by the client, unique among its requests in flight; echoed in the reply.
    public var requestId: String
    public var command: Command

    public init(requestId: String, command: Command) {
        self.requestId = requestId
        self.command = command
    }

    /// The JSON frame for this request.
    public func frame() -> [UInt8] {
        serialized(capacity: 256)
    }

    /// Decodes a frame a client sent. Errors: `too_large`, `bad_json`, `unsupported_version`, and
    /// `bad_message` naming the field (`invalid command: missing field $.command.a.uri`) or listing the
    /// valid command names. Semantics (URIs, timeouts) are ``Command/problem``'s to check.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> CommandRequest {
        try decode(frame: frame, as: .command, root: "$", place: "on the commands socket (send \(Self.type))")
    }

    /// The `request_id` of a frame ``decode(_:)`` refused, when it has a readable one, so the error
    /// reply can still be matched to its request.
    ///
    /// ```swift
    /// let reply = CommandReply(requestId: CommandRequest.requestId(in: frame) ?? "", outcome: .failed(...))
    /// ```
    public static func requestId(in frame: [UInt8]) -> String? {
        JSONObject.requestId(in: frame)
    }
}

/// A live call as the bridge holds it, in the replies to `list` and `get`.
///
/// ```json
/// {"call_id":"b1-x-7","kind":"originate","state":"connected","account":"acme","created_at":"2026-11-26T20:00:00.123Z",
///  "connected_at":"2026-11-26T20:00:09.456Z","legs":[{"leg":"a","uri":"sip:alice@switchboard.local","state":"answered",
///  "sip_call_id":"b1-x-7-a@bridge","held":false}]}
/// ```
public struct CallSnapshot: Equatable, Sendable {
    /// How the call began. (`Codable`, as are the states: the web gateway keeps them in its own JSON.)
    public enum Kind: String, Codable, Equatable, Sendable, CaseIterable {
        /// An INVITE the bridge received (and a worker bridged).
        case inbound
        /// An `originate` command.
        case originate
    }

    public enum State: String, Codable, Equatable, Sendable, CaseIterable {
        case routing, dialing, ringing, connected, ending
    }

    public var callId: String
    public var kind: Kind
    public var state: State
    public var account: String?
    /// Wire timestamps have millisecond precision.
    public var createdAt: Date
    public var connectedAt: Date?
    public var legs: [LegSnapshot]

    public init(callId: String, kind: Kind, state: State, account: String? = nil, createdAt: Date, connectedAt: Date? = nil,
                legs: [LegSnapshot]) {
        self.callId = callId
        self.kind = kind
        self.state = state
        self.account = account
        self.createdAt = createdAt
        self.connectedAt = connectedAt
        self.legs = legs
    }
}

/// One leg of a ``CallSnapshot``.
public struct LegSnapshot: Equatable, Sendable {
    public enum State: String, Codable, Equatable, Sendable, CaseIterable {
        case calling, ringing, answered, ended
    }

    public var leg: Leg
    public var uri: String
    public var state: State
    public var sipCallId: String
    public var held: Bool

    public init(leg: Leg, uri: String, state: State, sipCallId: String, held: Bool = false) {
        self.leg = leg
        self.uri = uri
        self.state = state
        self.sipCallId = sipCallId
        self.held = held
    }
}

/// What a command came to: its result, or the bridge's refusal.
public enum CommandOutcome: Equatable, Sendable {
    /// `originate`: the call's id; `existing` when the idempotency key matched an earlier originate.
    case originated(callId: String, existing: Bool)
    /// `hangup`, `transfer`, `hold`, `unhold` were carried out on this call.
    case done(callId: String)
    /// `list`.
    case calls([CallSnapshot])
    /// `get`.
    case call(CallSnapshot)
    /// `decide`.
    case decided(HandoffDecision)
    /// Refused, with code `bad_json`, `unsupported_version`, `too_large`, `bad_message` (names the field),
    /// `bad_command` (see ``Command/problem``), `unknown_call`, `invalid_state`, `limit_exceeded`,
    /// `account_limit`, `account_denied`, `shutting_down` or `policy_denied` (the message starts with the
    /// rule). The reply's `request_id` is the outer one, so the ``ErrorReply/requestId`` here is not written
    /// and decodes as nil.
    case failed(ErrorReply)
}

/// The bridge's answer to a ``CommandRequest``: one JSON frame with the same `request_id`.
///
/// ```json
/// {"v":1,"type":"command.reply","request_id":"r-1","ok":true,"result":{"call_id":"b1-x-7","existing":false}}
/// {"v":1,"type":"command.reply","request_id":"r-2","ok":false,"error":{"code":"unknown_call","message":"no live call b1-x-7"}}
/// ```
public struct CommandReply: Equatable, Sendable {
    public static let type = MessageType.commandReply.rawValue

    /// The request's id; empty when the refused request had no readable one.
    public var requestId: String
    public var outcome: CommandOutcome

    public init(requestId: String, outcome: CommandOutcome) {
        self.requestId = requestId
        self.outcome = outcome
    }

    /// The JSON frame for this reply.
    public func frame() -> [UInt8] {
        serialized()
    }

    /// Decodes a frame from a bridge's commands socket. Which result it is follows from its members
    /// (`calls`, `call`, `existing`, else `call_id` alone), as each command has its own.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> CommandReply {
        try decode(frame: frame, as: .commandReply, root: "$", place: "from a commands socket")
    }
}

extension CommandRequest: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(requestId: try json.string("request_id"), command: try json.member("command"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openMessage(type: Self.type)
        writer.member("request_id", requestId)
        writer.member("command", command)
        writer.closeObject()
    }
}

extension CommandReply: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        let requestId = try json.string("request_id")
        guard try json.bool("ok") else {
            let error = try json.object("error")
            self.init(requestId: requestId, outcome: .failed(ErrorReply(code: ErrorCode(rawValue: try error.string("code")),
                                                                        message: try error.string("message"))))
            return
        }
        let result = try json.object("result")
        let outcome: CommandOutcome
        if result.members["decision"] != nil {
            outcome = .decided(try HandoffDecision(json: result))
        } else if result.members["calls"] != nil {
            outcome = .calls(try result.members("calls"))
        } else if let call: CallSnapshot = try result.optionalMember("call") {
            outcome = .call(call)
        } else if result.members["existing"] != nil {
            outcome = .originated(callId: try result.string("call_id"), existing: try result.bool("existing"))
        } else {
            outcome = .done(callId: try result.string("call_id"))
        }
        self.init(requestId: requestId, outcome: outcome)
    }

    func write(to writer: inout JSONWriter) {
        writer.openMessage(type: Self.type)
        writer.member("request_id", requestId)
        switch outcome {
        case .originated(let callId, let existing):
            writer.openMember("result", ok: true)
            writer.member("call_id", callId)
            writer.member("existing", existing)
        case .done(let callId):
            writer.openMember("result", ok: true)
            writer.member("call_id", callId)
        case .calls(let calls):
            writer.openMember("result", ok: true)
            writer.member("calls", calls)
        case .call(let call):
            writer.openMember("result", ok: true)
            writer.member("call", call)
        case .decided(let decided):
            writer.openMember("result", ok: true)
            decided.writeMembers(to: &writer)
        case .failed(let error):
            writer.openMember("error", ok: false)
            writer.member("code", error.code.rawValue)
            writer.member("message", error.message)
        }
        writer.closeObject()
        writer.closeObject()
    }
}

extension JSONWriter {
    /// `"ok":...,"result":{` or `"ok":false,"error":{`; the caller writes the members and closes it.
    fileprivate mutating func openMember(_ name: String, ok: Bool) {
        member("ok", ok)
        key(name)
        openObject()
    }
}

extension Party: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(uri: try json.string("uri"), callerId: try json.optionalMember("caller_id"),
                  ringTimeoutMs: try json.optionalInt("ring_timeout_ms"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("uri", uri)
        writer.member("caller_id", callerId)
        writer.member("ring_timeout_ms", ringTimeoutMs)
        writer.closeObject()
    }
}

extension Originate: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(a: try json.member("a"), b: try json.member("b"), idempotencyKey: try json.optionalString("idempotency_key"),
                  account: try json.optionalString("account"), headers: try json.stringMap("headers"),
                  media: try json.optionalEnum("media") ?? .relay)
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writeMembers(to: &writer)
        writer.closeObject()
    }

    /// The members alone, for the `originate` command whose object also holds `name`.
    func writeMembers(to writer: inout JSONWriter) {
        writer.member("a", a)
        writer.member("b", b)
        writer.member("idempotency_key", idempotencyKey)
        writer.member("account", account)
        if !headers.isEmpty { writer.member("headers", headers) }
        if media != .relay { writer.member("media", media) }
    }
}

extension Command: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        let name = try json.string("name")
        switch CommandName(rawValue: name) {
        case .originate: self = .originate(try Originate(json: json))
        case .hangup: self = .hangup(callId: try json.string("call_id"), leg: try json.optionalEnum("leg"))
        case .transfer: self = .transfer(callId: try json.string("call_id"), leg: try json.enumValue("leg"), target: try json.string("target"))
        case .hold: self = .hold(callId: try json.string("call_id"), leg: try json.enumValue("leg"))
        case .unhold: self = .unhold(callId: try json.string("call_id"), leg: try json.enumValue("leg"))
        case .list: self = .list
        case .get: self = .get(callId: try json.string("call_id"))
        case .decide: self = .decide(try HandoffOffer(json: json))
        case .play: self = .play(callId: try json.string("call_id"), leg: try json.optionalEnum("leg"), playback: try Playback(json: json))
        case .stopPlay: self = .stopPlay(callId: try json.string("call_id"), leg: try json.optionalEnum("leg"))
        case .record:
            let action: RecordAction = try json.enumValue("action")
            self = .record(callId: try json.string("call_id"), on: action == .start)
        case .dtmf:
            self = .dtmf(callId: try json.string("call_id"), leg: try json.enumValue("leg"), digits: try json.string("digits"),
                         durationMs: try json.optionalInt("duration_ms"))
        case nil:
            let expected = CommandName.allCases.map(\.rawValue).joined(separator: ", ")
            throw BusDecodingError(code: .badMessage, message: "\(json.name("name")): unknown command \(name.debugDescription) (expected \(expected))")
        }
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("name", name)
        switch self {
        case .originate(let originate):
            originate.writeMembers(to: &writer)
        case .hangup(let callId, let leg):
            writer.member("call_id", callId)
            writer.member("leg", leg)
        case .transfer(let callId, let leg, let target):
            writer.member("call_id", callId)
            writer.member("leg", leg)
            writer.member("target", target)
        case .hold(let callId, let leg), .unhold(let callId, let leg):
            writer.member("call_id", callId)
            writer.member("leg", leg)
        case .list:
            break
        case .get(let callId):
            writer.member("call_id", callId)
        case .decide(let offer):
            offer.writeMembers(to: &writer)
        case .play(let callId, let leg, let playback):
            writer.member("call_id", callId)
            writer.member("leg", leg)
            playback.writeMembers(to: &writer)
        case .stopPlay(let callId, let leg):
            writer.member("call_id", callId)
            writer.member("leg", leg)
        case .record(let callId, let on):
            writer.member("call_id", callId)
            writer.member("action", on ? RecordAction.start : .stop)
        case .dtmf(let callId, let leg, let digits, let durationMs):
            writer.member("call_id", callId)
            writer.member("leg", leg)
            writer.member("digits", digits)
            writer.member("duration_ms", durationMs)
        }
        writer.closeObject()
    }
}

/// The `record` command's `action`.
private enum RecordAction: String, CaseIterable {
    case start, stop
}

extension CallSnapshot: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(callId: try json.string("call_id"), kind: try json.enumValue("kind"), state: try json.enumValue("state"),
                  account: try json.optionalString("account"), createdAt: try json.timestamp("created_at"),
                  connectedAt: try json.optionalTimestamp("connected_at"), legs: try json.members("legs"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("call_id", callId)
        writer.member("kind", kind)
        writer.member("state", state)
        writer.member("account", account)
        writer.member("created_at", BusTimestamp.format(createdAt))
        writer.member("connected_at", connectedAt.map(BusTimestamp.format))
        writer.member("legs", legs)
        writer.closeObject()
    }
}

extension LegSnapshot: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(leg: try json.enumValue("leg"), uri: try json.string("uri"), state: try json.enumValue("state"),
                  sipCallId: try json.string("sip_call_id"), held: try json.bool("held"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("leg", leg)
        writer.member("uri", uri)
        writer.member("state", state)
        writer.member("sip_call_id", sipCallId)
        writer.member("held", held)
        writer.closeObject()
    }
}
