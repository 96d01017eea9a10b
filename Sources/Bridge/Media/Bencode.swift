/// A bencoded value, the encoding of rtpengine's ng control protocol: integers, byte strings, lists and
/// dictionaries (keys sorted when encoded, as the format requires).
///
/// ```swift
/// let frame = Bencode.dictionary(["command": "ping"]).encoded()   // d7:command4:pinge
/// ```
enum Bencode: Equatable, Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case integer(Int)
    case bytes([UInt8])
    case list([Bencode])
    case dictionary([String: Bencode])

    init(stringLiteral value: String) { self = .bytes(Array(value.utf8)) }
    init(integerLiteral value: Int) { self = .integer(value) }

    static func string(_ text: String) -> Bencode { .bytes(Array(text.utf8)) }

    var text: String? {
        if case .bytes(let bytes) = self { String(decoding: bytes, as: UTF8.self) } else { nil }
    }

    var bytes: [UInt8]? {
        if case .bytes(let bytes) = self { bytes } else { nil }
    }

    var integer: Int? {
        if case .integer(let value) = self { value } else { nil }
    }

    subscript(key: String) -> Bencode? {
        if case .dictionary(let members) = self { members[key] } else { nil }
    }

    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    private func encode(into out: inout [UInt8]) {
        switch self {
        case .integer(let value):
            out += Array("i\(value)e".utf8)
        case .bytes(let bytes):
            out += Array("\(bytes.count):".utf8)
            out += bytes
        case .list(let items):
            out.append(UInt8(ascii: "l"))
            for item in items { item.encode(into: &out) }
            out.append(UInt8(ascii: "e"))
        case .dictionary(let members):
            out.append(UInt8(ascii: "d"))
            // Raw byte order of the keys, as bencode requires.
            for key in members.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                Bencode.string(key).encode(into: &out)
                members[key]!.encode(into: &out)
            }
            out.append(UInt8(ascii: "e"))
        }
    }

    /// Decodes one value that spans all of `bytes`; nil for anything malformed, trailing bytes or nesting past
    /// `maxDepth` (a reply is a flat dictionary with a few levels of `query` statistics).
    static func decode(_ bytes: some Collection<UInt8>, maxDepth: Int = 32) -> Bencode? {
        var reader = Reader(bytes: Array(bytes))
        guard let value = reader.value(depth: maxDepth), reader.index == reader.bytes.count else { return nil }
        return value
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        mutating func value(depth: Int) -> Bencode? {
            guard depth > 0, index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "i"):
                index += 1
                guard let end = bytes[index...].firstIndex(of: UInt8(ascii: "e")),
                      let value = Int(String(decoding: bytes[index..<end], as: UTF8.self)) else { return nil }
                index = end + 1
                return .integer(value)
            case UInt8(ascii: "l"):
                index += 1
                var items: [Bencode] = []
                while index < bytes.count, bytes[index] != UInt8(ascii: "e") {
                    guard let item = value(depth: depth - 1) else { return nil }
                    items.append(item)
                }
                guard index < bytes.count else { return nil }
                index += 1
                return .list(items)
            case UInt8(ascii: "d"):
                index += 1
                var members: [String: Bencode] = [:]
                while index < bytes.count, bytes[index] != UInt8(ascii: "e") {
                    guard let key = string(), let item = value(depth: depth - 1) else { return nil }
                    members[String(decoding: key, as: UTF8.self)] = item
                }
                guard index < bytes.count else { return nil }
                index += 1
                return .dictionary(members)
            default:
                return string().map(Bencode.bytes)
            }
        }

        mutating func string() -> [UInt8]? {
            guard let colon = bytes[index...].prefix(20).firstIndex(of: UInt8(ascii: ":")),
                  let length = Int(String(decoding: bytes[index..<colon], as: UTF8.self)), length >= 0,
                  length <= bytes.count - colon - 1 else { return nil }
            let start = colon + 1
            index = start + length
            return Array(bytes[start..<index])
        }
    }
}
