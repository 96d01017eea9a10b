import Foundation

/// One party of an ``Originate`` command: whom to call, what their phone shows, how long to ring.
///
/// ```json
/// {"uri":"sip:alice@switchboard.local","caller_id":{"uri":"sip:c2c@switchboard.local","display_name":"Click2Call"},"ring_timeout_ms":30000}
/// ```
public struct Party: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey { case uri, callerId = "caller_id", ringTimeoutMs = "ring_timeout_ms" }

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
public struct Originate: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey { case a, b, idempotencyKey = "idempotency_key", account, headers }

    public var a: Party
    public var b: Party
    /// A client's key for this call: an originate repeating an earlier key gets that call back
    /// (`existing: true`) instead of a second call, so a client may safely retry.
    public var idempotencyKey: String?
    /// Who the call is billed to, and whose concurrency limit it counts against.
    public var account: String?
    /// Extra headers for both legs' INVITEs.
    public var headers: [String: String]

    public init(a: Party, b: Party, idempotencyKey: String? = nil, account: String? = nil, headers: [String: String] = [:]) {
        self.a = a
        self.b = b
        self.idempotencyKey = idempotencyKey
        self.account = account
        self.headers = headers
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        a = try container.decode(Party.self, forKey: .a)
        b = try container.decode(Party.self, forKey: .b)
        idempotencyKey = try container.decodeIfPresent(String.self, forKey: .idempotencyKey)
        account = try container.decodeIfPresent(String.self, forKey: .account)
        headers = try container.decodeIfPresent([String: String].self, forKey: .headers) ?? [:]
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(a, forKey: .a)
        try container.encode(b, forKey: .b)
        try container.encodeIfPresent(idempotencyKey, forKey: .idempotencyKey)
        try container.encodeIfPresent(account, forKey: .account)
        if !headers.isEmpty { try container.encode(headers, forKey: .headers) }
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

    /// Every command name, in the order error messages list them.
    public static let names = ["originate", "hangup", "transfer", "hold", "unhold", "list", "get"]

    /// The command's `name` in JSON.
    public var name: String {
        switch self {
        case .originate: "originate"
        case .hangup: "hangup"
        case .transfer: "transfer"
        case .hold: "hold"
        case .unhold: "unhold"
        case .list: "list"
        case .get: "get"
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
        case .hangup(let callId, _), .hold(let callId, _), .unhold(let callId, _), .get(let callId):
            return callId.isEmpty ? "call_id is empty" : nil
        case .list:
            return nil
        }
    }
}

extension Command: Codable {
    private enum CodingKeys: String, CodingKey { case name, callId = "call_id", leg, target }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let name = try container.decode(String.self, forKey: .name)
        switch name {
        case "originate":
            // The originate's members sit beside `name`, in the same object.
            self = .originate(try Originate(from: decoder))
        case "hangup":
            self = .hangup(callId: try container.decode(String.self, forKey: .callId), leg: try container.decodeIfPresent(Leg.self, forKey: .leg))
        case "transfer":
            self = .transfer(callId: try container.decode(String.self, forKey: .callId), leg: try container.decode(Leg.self, forKey: .leg),
                             target: try container.decode(String.self, forKey: .target))
        case "hold":
            self = .hold(callId: try container.decode(String.self, forKey: .callId), leg: try container.decode(Leg.self, forKey: .leg))
        case "unhold":
            self = .unhold(callId: try container.decode(String.self, forKey: .callId), leg: try container.decode(Leg.self, forKey: .leg))
        case "list":
            self = .list
        case "get":
            self = .get(callId: try container.decode(String.self, forKey: .callId))
        default:
            throw DecodingError.dataCorruptedError(forKey: .name, in: container, debugDescription: Self.unknown(name))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        switch self {
        case .originate(let originate):
            try originate.encode(to: encoder)
        case .hangup(let callId, let leg):
            try container.encode(callId, forKey: .callId)
            try container.encodeIfPresent(leg, forKey: .leg)
        case .transfer(let callId, let leg, let target):
            try container.encode(callId, forKey: .callId)
            try container.encode(leg, forKey: .leg)
            try container.encode(target, forKey: .target)
        case .hold(let callId, let leg), .unhold(let callId, let leg):
            try container.encode(callId, forKey: .callId)
            try container.encode(leg, forKey: .leg)
        case .list:
            break
        case .get(let callId):
            try container.encode(callId, forKey: .callId)
        }
    }

    static func unknown(_ name: String) -> String {
        "unknown command \(name.debugDescription) (expected \(names.joined(separator: ", ")))"
    }
}

/// A command with the id its reply will carry: one JSON frame on the commands socket.
///
/// ```json
/// {"v":1,"type":"command","request_id":"r-1","command":{"name":"hangup","call_id":"b1-x-7","leg":"b"}}
/// ```
public struct CommandRequest: Equatable, Sendable {
    public static let type = "command"

    /// Chosen by the client, unique among its requests in flight; echoed in the reply.
    public var requestId: String
    public var command: Command

    public init(requestId: String, command: Command) {
        self.requestId = requestId
        self.command = command
    }

    /// The JSON frame for this request.
    public func frame() -> [UInt8] {
        var writer = JSONWriter(capacity: 256)
        writer.openObject()
        writer.member("v", BusSchema.version)
        writer.member("type", Self.type)
        writer.member("request_id", requestId)
        writer.key("command")
        command.write(to: &writer)
        writer.closeObject()
        return writer.bytes
    }

    /// Decodes a frame a client sent. Errors: `too_large`, `bad_json`, `unsupported_version`, and
    /// `bad_message` naming the field (`invalid command: missing field $.command.a.uri`) or listing the
    /// valid command names. Semantics (URIs, timeouts) are ``Command/problem``'s to check.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> CommandRequest {
        let (json, type) = try JSONObject.message(frame, root: "$")
        guard type == Self.type else {
            throw BusDecodingError(code: "bad_message", message: "unknown message type \(type.debugDescription) on the commands socket (send \(Self.type))")
        }
        do {
            return CommandRequest(requestId: try json.string("request_id"), command: try Command(json: json.object("command")))
        } catch {
            throw BusDecodingError(code: error.code, message: "invalid \(Self.type): \(error.message)")
        }
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
public struct CallSnapshot: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey {
        case callId = "call_id", kind, state, account, createdAt = "created_at", connectedAt = "connected_at", legs
    }

    /// How the call began.
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

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func date(_ key: CodingKeys) throws -> Date? {
            guard let text = try container.decodeIfPresent(String.self, forKey: key) else { return nil }
            guard let date = BusTimestamp.parse(text) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "not an ISO 8601 timestamp: \(text)")
            }
            return date
        }
        callId = try container.decode(String.self, forKey: .callId)
        kind = try container.decode(Kind.self, forKey: .kind)
        state = try container.decode(State.self, forKey: .state)
        account = try container.decodeIfPresent(String.self, forKey: .account)
        guard let createdAt = try date(.createdAt) else {
            throw DecodingError.keyNotFound(CodingKeys.createdAt, .init(codingPath: decoder.codingPath, debugDescription: "created_at is required"))
        }
        self.createdAt = createdAt
        connectedAt = try date(.connectedAt)
        legs = try container.decode([LegSnapshot].self, forKey: .legs)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(callId, forKey: .callId)
        try container.encode(kind, forKey: .kind)
        try container.encode(state, forKey: .state)
        try container.encodeIfPresent(account, forKey: .account)
        try container.encode(BusTimestamp.format(createdAt), forKey: .createdAt)
        try container.encodeIfPresent(connectedAt.map(BusTimestamp.format), forKey: .connectedAt)
        try container.encode(legs, forKey: .legs)
    }
}

/// One leg of a ``CallSnapshot``.
public struct LegSnapshot: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey { case leg, uri, state, sipCallId = "sip_call_id", held }

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
    /// Refused, with code `bad_json`, `unsupported_version`, `too_large`, `bad_message` (names the field),
    /// `bad_command` (see ``Command/problem``), `unknown_call`, `invalid_state`, `limit_exceeded`,
    /// `account_limit` or `shutting_down`. The reply's `request_id` is the outer one, so the
    /// ``ErrorReply/requestId`` here is not written and decodes as nil.
    case failed(ErrorReply)
}

/// The bridge's answer to a ``CommandRequest``: one JSON frame with the same `request_id`.
///
/// ```json
/// {"v":1,"type":"command.reply","request_id":"r-1","ok":true,"result":{"call_id":"b1-x-7","existing":false}}
/// {"v":1,"type":"command.reply","request_id":"r-2","ok":false,"error":{"code":"unknown_call","message":"no live call b1-x-7"}}
/// ```
public struct CommandReply: Equatable, Sendable {
    public static let type = "command.reply"

    /// The request's id; empty when the refused request had no readable one.
    public var requestId: String
    public var outcome: CommandOutcome

    public init(requestId: String, outcome: CommandOutcome) {
        self.requestId = requestId
        self.outcome = outcome
    }

    /// The JSON frame for this reply.
    public func frame() -> [UInt8] {
        var writer = JSONWriter()
        writer.openObject()
        writer.member("v", BusSchema.version)
        writer.member("type", Self.type)
        writer.member("request_id", requestId)
        switch outcome {
        case .originated(let callId, let existing):
            writer.openResult()
            writer.member("call_id", callId)
            writer.member("existing", existing)
            writer.closeObject()
        case .done(let callId):
            writer.openResult()
            writer.member("call_id", callId)
            writer.closeObject()
        case .calls(let calls):
            writer.openResult()
            writer.key("calls")
            writer.openArray()
            for call in calls {
                writer.element()
                call.write(to: &writer)
            }
            writer.closeArray()
            writer.closeObject()
        case .call(let call):
            writer.openResult()
            writer.key("call")
            call.write(to: &writer)
            writer.closeObject()
        case .failed(let error):
            writer.member("ok", false)
            writer.key("error")
            writer.openObject()
            writer.member("code", error.code)
            writer.member("message", error.message)
            writer.closeObject()
        }
        writer.closeObject()
        return writer.bytes
    }

    /// Decodes a frame from a bridge's commands socket. Which result it is follows from its members
    /// (`calls`, `call`, `existing`, else `call_id` alone), as each command has its own.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> CommandReply {
        let (json, type) = try JSONObject.message(frame, root: "$")
        guard type == Self.type else {
            throw BusDecodingError(code: "bad_message", message: "unknown message type \(type.debugDescription) from a commands socket")
        }
        do {
            let requestId = try json.string("request_id")
            guard try json.bool("ok") else {
                let error = try json.object("error")
                return CommandReply(requestId: requestId, outcome: .failed(ErrorReply(code: try error.string("code"), message: try error.string("message"))))
            }
            let result = try json.object("result")
            let outcome: CommandOutcome
            if result.members["calls"] != nil {
                var calls: [CallSnapshot] = []
                for (position, element) in try result.array("calls").enumerated() {
                    calls.append(try CallSnapshot(json: JSONObject(element, path: result.name("calls[\(position)]"))))
                }
                outcome = .calls(calls)
            } else if let call = try result.optionalObject("call") {
                outcome = .call(try CallSnapshot(json: call))
            } else if result.members["existing"] != nil {
                outcome = .originated(callId: try result.string("call_id"), existing: try result.bool("existing"))
            } else {
                outcome = .done(callId: try result.string("call_id"))
            }
            return CommandReply(requestId: requestId, outcome: outcome)
        } catch {
            throw BusDecodingError(code: error.code, message: "invalid \(Self.type): \(error.message)")
        }
    }
}

extension JSONWriter {
    /// `"ok":true,"result":{` — the caller writes the result's members and closes it.
    fileprivate mutating func openResult() {
        member("ok", true)
        key("result")
        openObject()
    }
}

extension Party {
    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("uri", uri)
        if let callerId {
            writer.key("caller_id")
            callerId.write(to: &writer)
        }
        writer.member("ring_timeout_ms", ringTimeoutMs)
        writer.closeObject()
    }

    init(json: JSONObject) throws(BusDecodingError) {
        self.init(uri: try json.string("uri"),
                  callerId: try json.optionalObject("caller_id").map { object throws(BusDecodingError) in try CallerID(json: object) },
                  ringTimeoutMs: try json.optionalInt("ring_timeout_ms"))
    }
}

extension Originate {
    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writeMembers(to: &writer)
        writer.closeObject()
    }

    /// The members alone, for the `originate` command whose object also holds `name`.
    func writeMembers(to writer: inout JSONWriter) {
        writer.key("a")
        a.write(to: &writer)
        writer.key("b")
        b.write(to: &writer)
        writer.member("idempotency_key", idempotencyKey)
        writer.member("account", account)
        if !headers.isEmpty { writer.member("headers", headers) }
    }

    init(json: JSONObject) throws(BusDecodingError) {
        self.init(a: try Party(json: json.object("a")), b: try Party(json: json.object("b")),
                  idempotencyKey: try json.optionalString("idempotency_key"), account: try json.optionalString("account"),
                  headers: try json.stringMap("headers"))
    }
}

extension Command {
    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("name", name)
        switch self {
        case .originate(let originate):
            originate.writeMembers(to: &writer)
        case .hangup(let callId, let leg):
            writer.member("call_id", callId)
            writer.member("leg", leg?.rawValue)
        case .transfer(let callId, let leg, let target):
            writer.member("call_id", callId)
            writer.member("leg", leg.rawValue)
            writer.member("target", target)
        case .hold(let callId, let leg), .unhold(let callId, let leg):
            writer.member("call_id", callId)
            writer.member("leg", leg.rawValue)
        case .list:
            break
        case .get(let callId):
            writer.member("call_id", callId)
        }
        writer.closeObject()
    }

    init(json: JSONObject) throws(BusDecodingError) {
        let name = try json.string("name")
        switch name {
        case "originate": self = .originate(try Originate(json: json))
        case "hangup": self = .hangup(callId: try json.string("call_id"), leg: try json.optionalEnum("leg"))
        case "transfer": self = .transfer(callId: try json.string("call_id"), leg: try json.enumValue("leg"), target: try json.string("target"))
        case "hold": self = .hold(callId: try json.string("call_id"), leg: try json.enumValue("leg"))
        case "unhold": self = .unhold(callId: try json.string("call_id"), leg: try json.enumValue("leg"))
        case "list": self = .list
        case "get": self = .get(callId: try json.string("call_id"))
        default: throw BusDecodingError(code: "bad_message", message: "\(json.name("name")): \(Self.unknown(name))")
        }
    }
}

extension CallSnapshot {
    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("call_id", callId)
        writer.member("kind", kind.rawValue)
        writer.member("state", state.rawValue)
        writer.member("account", account)
        writer.member("created_at", BusTimestamp.format(createdAt))
        writer.member("connected_at", connectedAt.map(BusTimestamp.format))
        writer.key("legs")
        writer.openArray()
        for leg in legs {
            writer.element()
            writer.openObject()
            writer.member("leg", leg.leg.rawValue)
            writer.member("uri", leg.uri)
            writer.member("state", leg.state.rawValue)
            writer.member("sip_call_id", leg.sipCallId)
            writer.member("held", leg.held)
            writer.closeObject()
        }
        writer.closeArray()
        writer.closeObject()
    }

    init(json: JSONObject) throws(BusDecodingError) {
        var legs: [LegSnapshot] = []
        for (position, element) in try json.array("legs").enumerated() {
            let leg = try JSONObject(element, path: json.name("legs[\(position)]"))
            legs.append(LegSnapshot(leg: try leg.enumValue("leg"), uri: try leg.string("uri"), state: try leg.enumValue("state"),
                                    sipCallId: try leg.string("sip_call_id"), held: try leg.bool("held")))
        }
        self.init(callId: try json.string("call_id"), kind: try json.enumValue("kind"), state: try json.enumValue("state"),
                  account: try json.optionalString("account"), createdAt: try json.timestamp("created_at"),
                  connectedAt: try json.optionalTimestamp("connected_at"), legs: legs)
    }
}
