/// A prefix pattern over dial strings (`+E164`, a short number, or a user name): digits, letters and
/// `+` match themselves, `x` matches any one digit, a trailing `*` or nothing means "and anything after";
/// `*` alone matches every destination.
///
/// ```swift
/// DialPattern("+4490x").matches("+449091234567")   // true
/// DialPattern("+44").covers("+4490")               // false: "+44" is wider than the premium range
/// ```
public struct DialPattern: Equatable, Sendable, CustomStringConvertible {
    public let text: String
    /// The pattern without its trailing `*`, as bytes: the policy screens every target of every decision, and
    /// dial strings and patterns are ASCII (checked before they get here), where bytes compare as characters.
    private let fixed: [UInt8]

    public init(_ text: String) {
        self.text = text
        fixed = Array((text.hasSuffix("*") ? text.dropLast() : Substring(text)).utf8)
    }

    public var description: String { text }

    /// `*` alone matches everything, and so never counts as an explicit allowance.
    public var isWildcard: Bool { text == "*" }

    public func matches(_ dialString: String) -> Bool {
        Self.prefixMatches(fixed, dialString.utf8, rangeWildcards: false)
    }

    /// Whether this pattern names `range` (a prefix such as `+4490`) or something inside it: an allow
    /// pattern lifts a default deny only then, so allowing `+44` does not open UK premium rate.
    public func covers(_ range: String) -> Bool {
        !isWildcard && Self.prefixMatches(Array(range.utf8), fixed, rangeWildcards: true) && fixed.count >= range.utf8.count
    }

    /// A pattern is 1 to 64 of letters, digits, `+*_-.`.
    public static func validate(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 64 && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+*_-.".contains($0)) }
    }

    /// Whether `subject` starts with `pattern`; an `x` in `pattern` (and in `subject` when both are
    /// patterns) stands for a digit on the other side.
    private static func prefixMatches(_ pattern: [UInt8], _ subject: some Collection<UInt8>, rangeWildcards: Bool) -> Bool {
        guard subject.count >= pattern.count else { return false }
        for (p, s) in zip(pattern, subject) where p != s {
            let digitWildcard = isX(p) && isDigit(s)
            let rangeWildcard = rangeWildcards && isX(s) && isDigit(p)
            guard digitWildcard || rangeWildcard else { return false }
        }
        return true
    }

    private static func isX(_ byte: UInt8) -> Bool { byte == UInt8(ascii: "x") || byte == UInt8(ascii: "X") }
    private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
}
