/// Turns what people and phones write as a phone number into the digit string the dial plan matches.
///
/// ```swift
/// DialString.digits(of: "+1 (202) 555-0100")  // "12025550100"
/// DialString.digits(of: "alice")              // nil
/// ```
enum DialString {
    /// The RFC 3966 visual separators (`-`, `.`, `(`, `)`) plus the space people type in numbers.
    private static let visualSeparators: Set<Character> = ["-", ".", "(", ")", " "]

    /// The digits of `text` after dropping one leading `+` and every visual separator, or nil when
    /// anything else is left (a user name, `*`/`#` service codes) or nothing is left at all.
    ///
    /// The leading `+` is dropped rather than kept because routes are written as plain digit prefixes;
    /// `+1202...` and `1202...` are the same destination for routing.
    static func digits(of text: String) -> String? {
        var rest = Substring(text)
        if rest.first == "+" { rest = rest.dropFirst() }
        let digits = rest.filter { !visualSeparators.contains($0) }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return digits
    }
}
