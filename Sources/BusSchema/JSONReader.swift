import Foundation

/// A small JSON parser for every bus message (see ``BusMessage``).
///
/// Foundation's `JSONDecoder` spent about 40% of a worker's CPU in its generic containers; this
/// reads bytes into a plain value tree that the message types map by hand. It is strict (RFC 8259),
/// bounded in depth, and names the position of any syntax error.
enum JSONValue: Equatable {
    case null
    case bool(Bool)
    /// The number's text, converted when read, so 64-bit integers keep every digit.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

struct JSONReader {
    struct SyntaxError: Error {
        let message: String
    }

    static let maxDepth = 32

    private let bytes: [UInt8]
    private var index = 0

    static func parse(_ bytes: [UInt8]) throws(SyntaxError) -> JSONValue {
        var reader = JSONReader(bytes: bytes)
        reader.skipWhitespace()
        let value = try reader.value(depth: 0)
        reader.skipWhitespace()
        guard reader.index == bytes.count else { throw reader.error("unexpected data after the JSON value") }
        return value
    }

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private func error(_ message: String) -> SyntaxError {
        SyntaxError(message: "\(message) at byte \(index)")
    }

    private mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    private mutating func value(depth: Int) throws(SyntaxError) -> JSONValue {
        guard depth < Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth)") }
        guard index < bytes.count else { throw error("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw error("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws(SyntaxError) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end of input") }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
            throw error("invalid literal")
        }
        index += count
    }

    private mutating func object(depth: Int) throws(SyntaxError) -> JSONValue {
        index += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            members[key] = try value(depth: depth + 1)
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            } else {
                throw error("expected ',' or '}'")
            }
        }
    }

    private mutating func array(depth: Int) throws(SyntaxError) -> JSONValue {
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try value(depth: depth + 1))
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            } else {
                throw error("expected ',' or ']'")
            }
        }
    }

    private mutating func number() throws(SyntaxError) -> String {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard digits() > 0 else { throw error("invalid number") }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { throw error("invalid number") }
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw error("invalid number") }
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    private mutating func digits() -> Int {
        let start = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        return index - start
    }

    private mutating func string() throws(SyntaxError) -> String {
        index += 1
        let start = index
        // Fast path: no escapes, the common case, is one copy of the bytes.
        while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\") {
            guard bytes[index] >= 0x20 else { throw error("control character in a string") }
            index += 1
        }
        guard index < bytes.count else { throw error("unterminated string") }
        if bytes[index] == UInt8(ascii: "\"") {
            index += 1
            return String(decoding: bytes[start..<index - 1], as: UTF8.self)
        }
        var buffer = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: buffer, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw error("unterminated string") }
                let escaped = bytes[index]
                index += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): buffer.append(escaped)
                case UInt8(ascii: "b"): buffer.append(0x08)
                case UInt8(ascii: "f"): buffer.append(0x0C)
                case UInt8(ascii: "n"): buffer.append(0x0A)
                case UInt8(ascii: "r"): buffer.append(0x0D)
                case UInt8(ascii: "t"): buffer.append(0x09)
                case UInt8(ascii: "u"): buffer.append(contentsOf: try unicodeEscape())
                default: throw error("invalid escape")
                }
            case 0..<0x20:
                throw error("control character in a string")
            default:
                buffer.append(byte)
                index += 1
            }
        }
        throw error("unterminated string")
    }

    /// `\uXXXX`, with a following `\uXXXX` when the first is a high surrogate; returns UTF-8.
    private mutating func unicodeEscape() throws(SyntaxError) -> [UInt8] {
        var scalar = try hex4()
        if (0xD800..<0xDC00).contains(scalar) {
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                throw error("unpaired surrogate")
            }
            index += 2
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        }
        guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
        return Array(String(Character(unicode)).utf8)
    }

    private mutating func hex4() throws(SyntaxError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }
}

/// Typed access to a JSON object, with errors that name the field's path.
struct JSONObject {
    let members: [String: JSONValue]
    let path: String

    init(_ value: JSONValue, path: String) throws(BusDecodingError) {
        guard case .object(let members) = value else { throw BusDecodingError.wrongType(path, "an object") }
        self.members = members
        self.path = path
    }

    /// The path of member `key`, for error messages.
    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func string(_ key: String) throws(BusDecodingError) -> String {
        guard let value = try optionalString(key) else { throw BusDecodingError.missing(name(key)) }
        return value
    }

    func optionalString(_ key: String) throws(BusDecodingError) -> String? {
        switch members[key] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        default: throw BusDecodingError.wrongType(name(key), "a string")
        }
    }

    func int(_ key: String) throws(BusDecodingError) -> Int {
        guard let value = try optionalInt(key) else { throw BusDecodingError.missing(name(key)) }
        return value
    }

    func optionalInt(_ key: String) throws(BusDecodingError) -> Int? {
        switch members[key] {
        case nil, .null?: return nil
        case .number(let text)?:
            guard let value = Int(text) else { throw BusDecodingError.wrongType(name(key), "an integer") }
            return value
        default: throw BusDecodingError.wrongType(name(key), "an integer")
        }
    }

    /// Sequence numbers: every digit of a 64-bit unsigned integer.
    func uint64(_ key: String) throws(BusDecodingError) -> UInt64 {
        switch members[key] {
        case nil, .null?: throw BusDecodingError.missing(name(key))
        case .number(let text)?:
            guard let value = UInt64(text) else { throw BusDecodingError.wrongType(name(key), "an unsigned integer") }
            return value
        default: throw BusDecodingError.wrongType(name(key), "an unsigned integer")
        }
    }

    func bool(_ key: String) throws(BusDecodingError) -> Bool {
        switch members[key] {
        case nil, .null?: throw BusDecodingError.missing(name(key))
        case .bool(let value)?: return value
        default: throw BusDecodingError.wrongType(name(key), "true or false")
        }
    }

    func double(_ key: String) throws(BusDecodingError) -> Double {
        guard let value = try optionalDouble(key) else { throw BusDecodingError.missing(name(key)) }
        return value
    }

    /// A string member that must be one of `T`'s raw values; the error lists them.
    func enumValue<T: RawRepresentable & CaseIterable>(_ key: String) throws(BusDecodingError) -> T where T.RawValue == String {
        guard let value: T = try optionalEnum(key) else { throw BusDecodingError.missing(name(key)) }
        return value
    }

    func optionalEnum<T: RawRepresentable & CaseIterable>(_ key: String) throws(BusDecodingError) -> T? where T.RawValue == String {
        guard let text = try optionalString(key) else { return nil }
        guard let value = T(rawValue: text) else {
            let expected = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw BusDecodingError(code: .badMessage, message: "\(name(key)) must be one of \(expected), got \(text.debugDescription)")
        }
        return value
    }

    func timestamp(_ key: String) throws(BusDecodingError) -> Date {
        guard let value = try optionalTimestamp(key) else { throw BusDecodingError.missing(name(key)) }
        return value
    }

    func optionalTimestamp(_ key: String) throws(BusDecodingError) -> Date? {
        guard let text = try optionalString(key) else { return nil }
        guard let date = BusTimestamp.parse(text) else { throw BusDecodingError.wrongType(name(key), "an ISO 8601 timestamp") }
        return date
    }

    func optionalDouble(_ key: String) throws(BusDecodingError) -> Double? {
        switch members[key] {
        case nil, .null?: return nil
        case .number(let text)?: return Double(text)
        default: throw BusDecodingError.wrongType(name(key), "a number")
        }
    }

    func object(_ key: String) throws(BusDecodingError) -> JSONObject {
        guard let value = members[key] else { throw BusDecodingError.missing(name(key)) }
        return try JSONObject(value, path: name(key))
    }

    func optionalObject(_ key: String) throws(BusDecodingError) -> JSONObject? {
        switch members[key] {
        case nil, .null?: return nil
        case let value?: return try JSONObject(value, path: name(key))
        }
    }

    func array(_ key: String) throws(BusDecodingError) -> [JSONValue] {
        switch members[key] {
        case nil: throw BusDecodingError.missing(name(key))
        case .array(let elements)?: return elements
        default: throw BusDecodingError.wrongType(name(key), "an array")
        }
    }

    func strings(_ key: String) throws(BusDecodingError) -> [String] {
        var result: [String] = []
        for (position, element) in try array(key).enumerated() {
            guard case .string(let value) = element else { throw BusDecodingError.wrongType("\(name(key))[\(position)]", "a string") }
            result.append(value)
        }
        return result
    }

    func stringMap(_ key: String) throws(BusDecodingError) -> [String: String] {
        guard let object = try optionalObject(key) else { return [:] }
        var result: [String: String] = [:]
        for (field, value) in object.members {
            guard case .string(let text) = value else { throw BusDecodingError.wrongType(object.name(field), "a string") }
            result[field] = text
        }
        return result
    }
}

extension JSONObject {
    /// Reads a frame's top-level object with its `type`, refusing it by the bus's rules: `too_large` over
    /// ``BusSchema/maxFrameSize``, `bad_json` when it is not JSON with `v` and `type`, `unsupported_version`.
    /// `root` prefixes every field path in later errors (`$` gives `$.command.leg`); `anyVersion` lets a
    /// message of another version through, for a reader that still wants its version-free fields.
    static func message(_ frame: [UInt8], root: String = "", anyVersion: Bool = false) throws(BusDecodingError)
        -> (json: JSONObject, type: String) {
        guard frame.count <= BusSchema.maxFrameSize else {
            throw BusDecodingError(code: .tooLarge, message: "frame of \(frame.count) bytes exceeds \(BusSchema.maxFrameSize)")
        }
        let json: JSONObject
        let version: Int?
        let type: String?
        do {
            json = try JSONObject(try JSONReader.parse(frame), path: root)
            (version, type) = (try json.optionalInt("v"), try json.optionalString("type"))
        } catch {
            let detail = (error as? JSONReader.SyntaxError)?.message ?? (error as? BusDecodingError)?.message ?? "\(error)"
            throw BusDecodingError(code: .badJSON, message: "not a bus message (need JSON with \"v\" and \"type\"): \(detail)")
        }
        guard let version, let type else {
            throw BusDecodingError(code: .badJSON, message: "not a bus message: \"v\" and \"type\" are required")
        }
        guard version == BusSchema.version || anyVersion else {
            throw BusDecodingError(code: .unsupportedVersion, message: "schema version \(version) is not supported (this build speaks \(BusSchema.version))")
        }
        return (json, type)
    }

    /// The `request_id` of a frame ``message(_:root:)`` refused, when it has a readable one, so the
    /// refusal can still name the request.
    static func requestId(in frame: [UInt8]) -> String? {
        guard frame.count <= BusSchema.maxFrameSize, let value = try? JSONReader.parse(frame),
              let json = try? JSONObject(value, path: "") else { return nil }
        return try? json.optionalString("request_id")
    }
}

extension BusDecodingError {
    static func missing(_ path: String) -> BusDecodingError {
        BusDecodingError(code: .badMessage, message: "missing field \(path)")
    }

    static func wrongType(_ path: String, _ expected: String) -> BusDecodingError {
        BusDecodingError(code: .badMessage, message: "\(path.isEmpty ? "message" : path) must be \(expected)")
    }
}
