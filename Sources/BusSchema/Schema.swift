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

    /// The encoder for the messages not written by hand; every type names its snake_case keys itself,
    /// since key-conversion strategies are slow and would also rewrite header names in maps.
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// The matching decoder.
    public static func makeDecoder() -> JSONDecoder {
        JSONDecoder()
    }
}

/// Why a bus frame was refused; the text goes back to the sender in an ``ErrorReply``.
public struct BusDecodingError: Error, Equatable, CustomStringConvertible {
    /// A stable machine-readable code, such as `bad_json` or `unsupported_version`.
    public let code: String
    /// What was wrong, for people.
    public let message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// The version and type every message starts with, decoded first so that a message of another version
/// is refused by name rather than by a confusing field error.
struct Envelope: Decodable {
    let v: Int
    let type: String
}

extension BusSchema {
    /// Reads the envelope of `frame`, checking size, JSON syntax and version.
    static func envelope(of frame: [UInt8]) throws(BusDecodingError) -> Envelope {
        guard frame.count <= maxFrameSize else {
            throw BusDecodingError(code: "too_large", message: "frame of \(frame.count) bytes exceeds \(maxFrameSize)")
        }
        let envelope: Envelope
        do {
            envelope = try makeDecoder().decode(Envelope.self, from: Data(frame))
        } catch {
            throw BusDecodingError(code: "bad_json", message: "not a bus message (need JSON with \"v\" and \"type\"): \(describe(error))")
        }
        guard envelope.v == version else {
            throw BusDecodingError(code: "unsupported_version", message: "schema version \(envelope.v) is not supported (this build speaks \(version))")
        }
        return envelope
    }

    /// Decodes the body of a message whose envelope was already checked.
    static func decode<T: Decodable>(_ type: T.Type, from frame: [UInt8], messageType: String) throws(BusDecodingError) -> T {
        do {
            return try makeDecoder().decode(T.self, from: Data(frame))
        } catch {
            throw BusDecodingError(code: "bad_message", message: "invalid \(messageType): \(describe(error))")
        }
    }

    /// Turns Codable's errors into one line naming the field at fault.
    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing field \(path(context.codingPath + [key]))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "wrong type at \(path(context.codingPath)): \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context):
            return context.codingPath.isEmpty ? context.debugDescription : "bad value at \(path(context.codingPath)): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    private static func path(_ keys: [CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}
