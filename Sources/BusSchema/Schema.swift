import Foundation

/// The bus wire format: every message is one JSON object with `"v"` (schema version) and `"type"`.
///
/// Versioning rule: a reader accepts any message whose `v` equals ``BusSchema/version``; fields may be
/// added within a version (readers ignore unknown fields), and anything else changes the version.
public enum BusSchema {
    /// The schema version this build writes and reads.
    public static let version = 1

    /// Largest bus frame any Switchboard process accepts; larger ones are refused before decoding.
    public static let maxFrameSize = 256 * 1024

    /// The encoder for JSON that is not a bus message (CLI output, SQLite columns); every type names
    /// its snake_case keys itself, since key-conversion strategies would also rewrite header names in maps.
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

/// A bus message, or a part of one, in its one JSON form: read from the parsed frame (``JSONReader``),
/// written straight into bytes (``JSONWriter``). Both are hand-written because Foundation's coders cost
/// tens of microseconds per message and the bridge sends two per call; the golden frames in
/// `Tests/Fixtures/bus` pin that the two directions agree byte for byte.
protocol BusMessage: BusReadable {
    func write(to writer: inout JSONWriter)
}

/// What can be read from a bus frame: every ``BusMessage``, and views that are only read (``ReceivedEvent``).
protocol BusReadable {
    init(json: JSONObject) throws(BusDecodingError)
}

extension BusMessage {
    /// The value as one JSON document.
    func serialized(capacity: Int = 512) -> [UInt8] {
        var writer = JSONWriter(capacity: capacity)
        write(to: &writer)
        return writer.bytes
    }

    /// Reads a whole frame that must be of `type` (another type is refused naming `place`, the socket),
    /// the body's errors prefixed `invalid TYPE:`; `root` prefixes field paths (`$` gives `$.command.leg`).
    static func decode(frame: [UInt8], as type: MessageType, root: String = "", place: String) throws(BusDecodingError) -> Self {
        let json = try JSONObject.message(frame, root: root).json
        _ = try json.messageType([type], unknown: place)
        do throws(BusDecodingError) {
            return try Self(json: json)
        } catch {
            throw error.invalid(type)
        }
    }
}

extension JSONWriter {
    /// `"name":{...}` for a member that is itself a message part.
    mutating func member(_ name: String, _ value: some BusMessage) {
        key(name)
        value.write(to: &self)
    }

    mutating func member(_ name: String, _ value: (some BusMessage)?) {
        guard let value else { return }
        member(name, value)
    }

    mutating func member(_ name: String, _ values: [some BusMessage]) {
        key(name)
        openArray()
        for value in values {
            element()
            value.write(to: &self)
        }
        closeArray()
    }

    mutating func member<T: RawRepresentable>(_ name: String, _ value: T?) where T.RawValue == String {
        member(name, value?.rawValue)
    }

    /// `"v":1,"type":...`, which every frame starts with.
    mutating func openMessage(type: String) {
        openObject()
        member("v", BusSchema.version)
        member("type", type)
    }
}

extension JSONObject {
    func member<T: BusReadable>(_ key: String) throws(BusDecodingError) -> T {
        try T(json: object(key))
    }

    func optionalMember<T: BusReadable>(_ key: String) throws(BusDecodingError) -> T? {
        guard let object = try optionalObject(key) else { return nil }
        return try T(json: object)
    }

    func members<T: BusReadable>(_ key: String) throws(BusDecodingError) -> [T] {
        var result: [T] = []
        for (position, element) in try array(key).enumerated() {
            result.append(try T(json: JSONObject(element, path: name("\(key)[\(position)]"))))
        }
        return result
    }
}

/// A stable, machine-readable reason for a refusal, as `code` in `error` frames and failed command replies.
///
/// A struct rather than an enum: a client must still read the codes of a newer bridge (a set that grows).
///
/// ```swift
/// ErrorReply(code: .unknownCall, message: "no live call b1-7")
/// ```
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    public var description: String { rawValue }

    /// The frame is not JSON with `v` and `type`.
    public static let badJSON = ErrorCode(rawValue: "bad_json")
    /// The frame's `v` is not ``BusSchema/version``.
    public static let unsupportedVersion = ErrorCode(rawValue: "unsupported_version")
    /// A field is missing or of the wrong type; the message names it.
    public static let badMessage = ErrorCode(rawValue: "bad_message")
    /// The frame is over ``BusSchema/maxFrameSize``.
    public static let tooLarge = ErrorCode(rawValue: "too_large")
    /// A worker spoke before `worker.ready`.
    public static let notReady = ErrorCode(rawValue: "not_ready")
    /// A decision for a request that is finished, expired or was never sent.
    public static let unknownRequest = ErrorCode(rawValue: "unknown_request")
    /// A decision the bridge cannot carry out (e.g. a reject with status 200).
    public static let badDecision = ErrorCode(rawValue: "bad_decision")
    /// The replay endpoint could not read its journal.
    public static let journalUnavailable = ErrorCode(rawValue: "journal_unavailable")
    /// A command the bridge cannot carry out as SIP (see ``Command/problem``).
    public static let badCommand = ErrorCode(rawValue: "bad_command")
    public static let unknownCall = ErrorCode(rawValue: "unknown_call")
    /// The call or leg is not in a state the command applies to.
    public static let invalidState = ErrorCode(rawValue: "invalid_state")
    /// The bridge holds its maximum of calls.
    public static let limitExceeded = ErrorCode(rawValue: "limit_exceeded")
    /// The account holds its maximum of originated calls.
    public static let accountLimit = ErrorCode(rawValue: "account_limit")
    /// The command client's key may not act for that account (or any, for a command without one).
    public static let accountDenied = ErrorCode(rawValue: "account_denied")
    public static let shuttingDown = ErrorCode(rawValue: "shutting_down")
    /// The destination policy refused a URI; the message starts with the rule (`premium_rate: ...`).
    public static let policyDenied = ErrorCode(rawValue: "policy_denied")
    /// A media command the bridge could not carry out: no rtpengine, rtpengine unreachable or refusing, the recordings
    /// folder full; the message says which. (A call whose media is not anchored is `invalid_state`.)
    public static let mediaUnavailable = ErrorCode(rawValue: "media_unavailable")
}

/// Why a bus frame was refused; the text goes back to the sender in an ``ErrorReply``.
public struct BusDecodingError: Error, Equatable, CustomStringConvertible {
    public let code: ErrorCode
    /// What was wrong, for people.
    public let message: String

    public init(code: ErrorCode, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
