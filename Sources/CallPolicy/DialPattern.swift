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
    /// The pattern without its trailing `*`.
    private let fixed: [Character]

    public init(_ text: String) {
        self.text = text
        fixed = Array(text.hasSuffix("*") ? String(text.dropLast()) : text)
    }

    public var description: String { text }

    /// `*` alone matches everything, and so never counts as an explicit allowance.
    public var isWildcard: Bool { text == "*" }

    public func matches(_ dialString: String) -> Bool {
        Self.prefixMatches(fixed, Array(dialString), rangeWildcards: false)
    }

    /// Whether this pattern names `range` (a prefix such as `+4490`) or something inside it: an allow
    /// pattern lifts a default deny only then, so allowing `+44` does not open UK premium rate.
    public func covers(_ range: String) -> Bool {
        !isWildcard && Self.prefixMatches(Array(range), fixed, rangeWildcards: true) && fixed.count >= range.count
    }

    /// A pattern is 1 to 64 of letters, digits, `+*_-.`.
    public static func validate(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 64 && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+*_-.".contains($0)) }
    }

    /// Whether `subject` starts with `pattern`; an `x` in `pattern` (and in `subject` when both are
    /// patterns) stands for a digit on the other side.
    private static func prefixMatches(_ pattern: [Character], _ subject: [Character], rangeWildcards: Bool) -> Bool {
        guard subject.count >= pattern.count else { return false }
        for (p, s) in zip(pattern, subject) where p != s {
            let digitWildcard = (p == "x" || p == "X") && s.isASCII && s.isNumber
            let rangeWildcard = rangeWildcards && (s == "x" || s == "X") && p.isASCII && p.isNumber
            guard digitWildcard || rangeWildcard else { return false }
        }
        return true
    }
}
