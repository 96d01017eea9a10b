// Lexical rules of RFC 3261 §25.1 shared by the message types and the parser.

enum ASCII {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let quote: UInt8 = 0x22
    static let backslash: UInt8 = 0x5C
    static let semicolon: UInt8 = 0x3B
    static let comma: UInt8 = 0x2C
    static let colon: UInt8 = 0x3A
    static let equals: UInt8 = 0x3D
    static let lessThan: UInt8 = 0x3C
    static let greaterThan: UInt8 = 0x3E
    static let slash: UInt8 = 0x2F
    static let at: UInt8 = 0x40
    static let question: UInt8 = 0x3F
    static let ampersand: UInt8 = 0x26
    static let percent: UInt8 = 0x25
    static let openBracket: UInt8 = 0x5B
    static let closeBracket: UInt8 = 0x5D
}

enum Grammar {
    /// `token` characters: alphanum and `-.!%*_+`'~` (RFC 3261 §25.1).
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "!"), UInt8(ascii: "%"), UInt8(ascii: "*"),
             UInt8(ascii: "_"), UInt8(ascii: "+"), UInt8(ascii: "`"), UInt8(ascii: "'"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == ASCII.space || byte == ASCII.tab
    }

    /// The controls no start line or header value may carry raw: 0x00-0x1F but HTAB, and DEL. CR and LF are
    /// among them, so a value holding one cannot add a line to the message it is written into.
    static func isForbiddenControl(_ byte: UInt8) -> Bool {
        (byte < 0x20 && byte != ASCII.tab) || byte == 0x7F
    }

    static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    static func isToken(_ text: some StringProtocol) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy(isTokenByte)
    }

    static func isDigits(_ text: some StringProtocol) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy(isDigit)
    }

    /// The value of `1*DIGIT` bytes, leading zeros allowed; nil when empty, not all digits, or out of range.
    static func decimal<Value: FixedWidthInteger>(
        _ bytes: UnsafeBufferPointer<UInt8>.SubSequence, as _: Value.Type
    ) -> Value? {
        guard !bytes.isEmpty else { return nil }
        var value: Value = 0
        for byte in bytes {
            guard isDigit(byte) else { return nil }
            let (shifted, overflowShift) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowSum) = shifted.addingReportingOverflow(Value(byte - UInt8(ascii: "0")))
            guard !overflowShift, !overflowSum else { return nil }
            value = sum
        }
        return value
    }

    /// Bytes a URI may carry unescaped: printable ASCII minus the delimiters RFC 3986 and RFC 3261 exclude.
    static func isURIByte(_ byte: UInt8) -> Bool {
        guard byte > 0x20, byte < 0x7F else { return false }
        switch byte {
        case ASCII.quote, ASCII.lessThan, ASCII.greaterThan, ASCII.backslash,
             UInt8(ascii: "^"), UInt8(ascii: "`"), UInt8(ascii: "{"), UInt8(ascii: "|"), UInt8(ascii: "}"):
            return false
        default:
            return true
        }
    }

    static func trimmed(_ text: String) -> String {
        var text = text
        return text.withUTF8 { String(decoding: trimmed($0[...]), as: UTF8.self) }
    }

    /// The bytes of `bytes` without leading and trailing whitespace.
    static func trimmed(_ bytes: UnsafeBufferPointer<UInt8>.SubSequence) -> UnsafeBufferPointer<UInt8>.SubSequence {
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, isWhitespace(bytes[start]) { start += 1 }
        while end > start, isWhitespace(bytes[end - 1]) { end -= 1 }
        return bytes[start..<end]
    }

    /// Splits a header value at commas that are outside quoted strings and angle brackets, keeping empty elements
    /// so callers can reject `a,,b` where the grammar forbids it.
    static func splitList(_ value: String) -> [String] {
        var elements: [String] = []
        forEachListElement(in: value) { element in
            elements.append(element)
            return true
        }
        return elements
    }

    /// Calls `body` with each trimmed element of a comma-separated value, in order, empty ones included, until it
    /// returns false; avoids building the array ``splitList(_:)`` returns when the caller wants one element.
    static func forEachListElement(in value: String, _ body: (String) -> Bool) {
        var contiguous = value
        contiguous.withUTF8 { bytes in
            var inQuotes = false
            var inBrackets = false
            var escaped = false
            var elementStart = 0
            for index in bytes.indices {
                let byte = bytes[index]
                if inQuotes {
                    if escaped {
                        escaped = false
                    } else if byte == ASCII.backslash {
                        escaped = true
                    } else if byte == ASCII.quote {
                        inQuotes = false
                    }
                    continue
                }
                switch byte {
                case ASCII.quote:
                    inQuotes = true
                case ASCII.lessThan:
                    inBrackets = true
                case ASCII.greaterThan:
                    inBrackets = false
                case ASCII.comma where !inBrackets:
                    guard body(String(decoding: trimmed(bytes[elementStart..<index]), as: UTF8.self)) else { return }
                    elementStart = index + 1
                default:
                    break
                }
            }
            let last = trimmed(bytes[elementStart...])
            // A value of one element (most are) is passed as it is rather than copied.
            _ = body(last.count == bytes.count ? value : String(decoding: last, as: UTF8.self))
        }
    }

    /// Whether every element of a comma-separated value, empty ones included, satisfies `predicate`.
    static func allListElements(in value: String, satisfy predicate: (String) -> Bool) -> Bool {
        var result = true
        forEachListElement(in: value) { element in
            result = predicate(element)
            return result
        }
        return result
    }

    /// `text` with ASCII letters lower-cased; returns `text` itself, without copying, when it has no upper-case
    /// letter. Non-ASCII text takes the Unicode rules of `lowercased()`.
    static func asciiLowercased(_ text: String) -> String {
        var contiguous = text
        let lowered = contiguous.withUTF8 { bytes in
            bytes.allSatisfy { $0 < 0x80 } && bytes.contains(where: isUpper) ? asciiLowercased(bytes[...]) : nil
        }
        if let lowered { return lowered }
        return text.utf8.allSatisfy { $0 < 0x80 } ? text : text.lowercased()
    }

    /// ASCII `bytes` as a String with letters lower-cased.
    static func asciiLowercased(_ bytes: UnsafeBufferPointer<UInt8>.SubSequence) -> String {
        String(unsafeUninitializedCapacity: bytes.count) { buffer in
            for (offset, byte) in bytes.enumerated() {
                buffer[offset] = lowercased(byte)
            }
            return bytes.count
        }
    }

    /// Whether `a` and `b` are equal ignoring case, as `a.lowercased() == b.lowercased()` but without copying
    /// either when both are ASCII (names of parameters and fields always are).
    static func equalsIgnoringCase(_ a: String, _ b: String) -> Bool {
        let (left, right) = (a.utf8, b.utf8)
        guard left.count == right.count else {
            // Names of different lengths differ, unless Unicode case mapping changes a length.
            return (!isASCII(a) || !isASCII(b)) && a.lowercased() == b.lowercased()
        }
        // Compared in the strings' own storage: iterating their UTF-8 views costs many times more.
        var (first, second) = (a, b)
        let asciiResult = first.withUTF8 { firstBytes in
            second.withUTF8 { secondBytes -> Bool? in
                for (x, y) in zip(firstBytes, secondBytes) where x != y {
                    guard x < 0x80, y < 0x80 else { return nil }
                    guard isUpper(x) ? x | 0x20 == y : isUpper(y) && y | 0x20 == x else { return false }
                }
                return true
            }
        }
        return asciiResult ?? (a.lowercased() == b.lowercased())
    }

    /// Whether every byte of `text` is ASCII, read in the string's storage.
    static func isASCII(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { $0.allSatisfy { $0 < 0x80 } }
    }

    static func isUpper(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")
    }

    /// `byte` with an ASCII upper-case letter lower-cased.
    static func lowercased(_ byte: UInt8) -> UInt8 {
        isUpper(byte) ? byte | 0x20 : byte
    }

    /// Decodes `%XX` escapes; malformed escapes are kept literally.
    static func percentDecoded(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == ASCII.percent, index + 2 < bytes.count,
               let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                output.append(high << 4 | low)
                index += 3
            } else {
                output.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Quotes `text` as a `quoted-string`, escaping `"` and `\`.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for character in text {
            if character == "\"" || character == "\\" { result.append("\\") }
            result.append(character)
        }
        result.append("\"")
        return result
    }
}

/// A cursor over the bytes of one header value; every read is bounds-checked so hostile input cannot trap.
/// It reads the value's own storage, so it lives only inside ``scan(_:_:)``.
struct ValueScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    private init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Calls `body` with a scanner over the UTF-8 bytes of `text`, read in place.
    static func scan<Result>(_ text: String, _ body: (inout ValueScanner) -> Result) -> Result {
        var text = text
        return text.withUTF8 { bytes in
            var scanner = ValueScanner(bytes: bytes)
            return body(&scanner)
        }
    }

    var isAtEnd: Bool { index >= bytes.count }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipWhitespace() {
        while let byte = peek, Grammar.isWhitespace(byte) { index += 1 }
    }

    mutating func consume(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        index += 1
        return true
    }

    mutating func read(while predicate: (UInt8) -> Bool) -> String {
        String(decoding: bytes[skip(while: predicate)], as: UTF8.self)
    }

    /// Moves past the bytes that satisfy `predicate`; returns their positions.
    mutating func skip(while predicate: (UInt8) -> Bool) -> Range<Int> {
        let start = index
        while let byte = peek, predicate(byte) { index += 1 }
        return start..<index
    }

    mutating func readToken() -> String? {
        let token = read(while: Grammar.isTokenByte)
        return token.isEmpty ? nil : token
    }

    /// Reads a `quoted-string` starting at `"`; returns its unescaped content, or nil when it is unterminated.
    mutating func readQuotedString() -> String? {
        guard consume(ASCII.quote) else { return nil }
        // Most quoted strings have no quoted-pair: their content is decoded where it lies.
        let start = index
        while let byte = peek, byte != ASCII.backslash, byte != ASCII.cr, byte != ASCII.lf {
            index += 1
            if byte == ASCII.quote { return String(decoding: bytes[start..<(index - 1)], as: UTF8.self) }
        }
        var content = Array(bytes[start..<index])
        while let byte = peek {
            index += 1
            switch byte {
            case ASCII.quote:
                return String(decoding: content, as: UTF8.self)
            case ASCII.backslash:
                guard let escaped = peek, escaped != ASCII.cr, escaped != ASCII.lf else { return nil }
                content.append(escaped)
                index += 1
            case ASCII.cr, ASCII.lf:
                return nil
            default:
                content.append(byte)
            }
        }
        return nil
    }

    /// Reads `*( SEMI generic-param )` up to the end of the value (RFC 3261 §25.1 `generic-param`). Values keep
    /// their quotes so that serialization reproduces them; nil when a parameter is malformed (`;;`, `a=`).
    mutating func readParameters() -> [SIPParameter]? {
        var parameters: [SIPParameter] = []
        while true {
            skipWhitespace()
            if isAtEnd { return parameters }
            guard consume(ASCII.semicolon) else { return nil }
            skipWhitespace()
            guard let name = readToken() else { return nil }
            skipWhitespace()
            guard consume(ASCII.equals) else {
                parameters.append(SIPParameter(name, nil))
                continue
            }
            skipWhitespace()
            guard let value = readParameterValue() else { return nil }
            parameters.append(SIPParameter(name, value))
        }
    }

    private mutating func readParameterValue() -> String? {
        if peek == ASCII.quote {
            let start = index
            guard readQuotedString() != nil else { return nil }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }
        let value = read { byte in
            !Grammar.isWhitespace(byte) && byte != ASCII.semicolon && byte != ASCII.comma
                && byte != ASCII.quote && byte > 0x20 && byte != 0x7F
        }
        return value.isEmpty ? nil : value
    }
}
