import Foundation

/// A destination reduced to what policy rules compare: a dial string of digits (with `+` when it is
/// in international form), or a SIP user name that is not a number.
///
/// ```swift
/// Destination.normalize("sip:+44 20-7946-0000@gw.example.com", internationalPrefixes: ["00", "011"])
/// // .number("+442079460000")
/// Destination.normalize("0044 20 7946 0000", internationalPrefixes: ["00"])   // .number("+442079460000")
/// Destination.normalize("sip:alice@switchboard.local", internationalPrefixes: ["00"])  // .user("alice")
/// ```
enum Destination: Equatable, Sendable {
    case number(String)
    case user(String)

    /// The text rules match against.
    var dialString: String {
        switch self {
        case .number(let digits), .user(let digits): digits
        }
    }

    /// Takes the user part of a `sip:`/`sips:`/`tel:` URI (or a bare number), drops visual separators
    /// (`-`, `.`, space, parentheses) and writes an international prefix (`00`, `011`) as `+`.
    /// Returns nil for an empty user part.
    static func normalize(_ input: String, internationalPrefixes: [String]) -> Destination? {
        var text = Substring(input.trimmingCharacters(in: .whitespaces))
        for scheme in ["sips:", "sip:", "tel:"] where text.lowercased().hasPrefix(scheme) {
            text = text.dropFirst(scheme.count)
            break
        }
        if let at = text.firstIndex(of: "@") { text = text[..<at] }
        if let semicolon = text.firstIndex(of: ";") { text = text[..<semicolon] }
        let compact = text.filter { !"-. ()".contains($0) }
        guard !compact.isEmpty else { return nil }
        let isNumber = compact.enumerated().allSatisfy { index, character in
            character.isASCII && (character.isNumber || (index == 0 && character == "+"))
        } && compact != "+"
        guard isNumber else { return .user(String(text)) }
        if compact.hasPrefix("+") { return .number(compact) }
        for prefix in internationalPrefixes.sorted(by: { $0.count > $1.count }) where compact.hasPrefix(prefix) {
            return .number("+" + compact.dropFirst(prefix.count))
        }
        return .number(compact)
    }
}

/// A prefix pattern over dial strings: digits and `+` match themselves, `x` matches any one digit,
/// a trailing `*` or nothing means "and anything after"; `*` alone matches every destination.
///
/// ```swift
/// DialPattern("09xx").matches("09061234567")   // true
/// DialPattern("+44").matches("+442079460000")  // true
/// ```
struct DialPattern: Equatable, Sendable, CustomStringConvertible {
    let text: String

    init(_ text: String) {
        self.text = text
    }

    var description: String { text }

    /// `*` alone: matches everything, and so never counts as an explicit allowance.
    var isWildcard: Bool { text == "*" }

    func matches(_ dialString: String) -> Bool {
        if isWildcard { return true }
        let pattern = Array(text.hasSuffix("*") ? String(text.dropLast()) : text)
        let subject = Array(dialString)
        guard subject.count >= pattern.count else { return false }
        for (p, s) in zip(pattern, subject) {
            if p == "x" || p == "X" {
                guard s.isASCII && s.isNumber else { return false }
            } else if p != s {
                return false
            }
        }
        return true
    }

    /// A pattern is digits, `+`, `x`, with an optional trailing `*`, or a SIP user name.
    static func validate(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 64 && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+*_-.".contains($0)) }
    }
}

/// Why an originate was refused, named so the 403 can say which rule fired.
struct PolicyDenial: Equatable, Sendable {
    /// `key_deny`, `not_allowed`, `international` or `premium_rate`.
    var rule: String
    /// The pattern or prefix that matched, if any.
    var pattern: String?
    var destination: String

    var message: String {
        switch rule {
        case "key_deny": "\(destination) matches the deny pattern \(pattern ?? "?") of this key"
        case "not_allowed": "\(destination) matches none of this key's allow patterns"
        case "international": "\(destination) is an international destination, denied unless the key allows it explicitly"
        case "premium_rate": "\(destination) is a premium-rate number (prefix \(pattern ?? "?")), denied unless the key allows it explicitly"
        default: "\(destination) is denied (\(rule))"
        }
    }
}

/// What is denied when a key says nothing: international calls and premium-rate numbers.
struct DefaultDestinationRules: Equatable, Sendable {
    /// The home country calling code without `+` (`1` for NANP, `49` for Germany); numbers in
    /// international form with another code are international.
    var homeCountryCode: String = "1"
    /// Dialled prefixes that mean "international" and are rewritten to `+`.
    var internationalPrefixes: [String] = ["00", "011"]
    /// Premium-rate prefixes (``DialPattern`` syntax), checked against the normalized dial string.
    var premiumPrefixes: [String] = Self.standardPremiumPrefixes

    /// NANP 900/976 (with and without the 1), and the European 0900/0906/09xx and 118xx ranges.
    static let standardPremiumPrefixes = ["+1900", "+1976", "1900", "1976", "900xxxxxxx", "976xxxxxxx",
                                          "0900", "0906", "09xx", "118xx", "+44900", "+44906", "+4990", "+49118"]
}

/// A key's (or a user's) rules for where it may call. Pure: no I/O, tested directly.
///
/// Order: the key's deny patterns; then, when it has allow patterns, the destination must match one;
/// then the default denies (international, premium rate), which only an explicit allow pattern that
/// matches lifts (`*` is not explicit).
///
/// ```swift
/// let policy = DestinationPolicy(allow: [], deny: [], defaults: DefaultDestinationRules())
/// policy.check("+442079460000")   // PolicyDenial(rule: "international", ...)
/// policy.check("12025550100")     // nil: allowed
/// ```
struct DestinationPolicy: Equatable, Sendable {
    var allow: [DialPattern]
    var deny: [DialPattern]
    var defaults: DefaultDestinationRules

    init(allow: [String], deny: [String], defaults: DefaultDestinationRules) {
        self.allow = allow.map(DialPattern.init)
        self.deny = deny.map(DialPattern.init)
        self.defaults = defaults
    }

    /// Nil when `destination` may be called, else the rule that refuses it.
    func check(_ destination: String) -> PolicyDenial? {
        guard let normalized = Destination.normalize(destination, internationalPrefixes: defaults.internationalPrefixes) else {
            return PolicyDenial(rule: "not_allowed", pattern: nil, destination: destination)
        }
        let dial = normalized.dialString
        if let pattern = deny.first(where: { $0.matches(dial) }) {
            return PolicyDenial(rule: "key_deny", pattern: pattern.text, destination: dial)
        }
        let allowedBy = allow.first(where: { $0.matches(dial) })
        if !allow.isEmpty && allowedBy == nil {
            return PolicyDenial(rule: "not_allowed", pattern: nil, destination: dial)
        }
        let explicit = allow.contains { !$0.isWildcard && $0.matches(dial) }
        guard case .number = normalized, !explicit else { return nil }
        if let premium = defaults.premiumPrefixes.map(DialPattern.init).first(where: { $0.matches(dial) }) {
            return PolicyDenial(rule: "premium_rate", pattern: premium.text, destination: dial)
        }
        if dial.hasPrefix("+") && !dial.hasPrefix("+" + defaults.homeCountryCode) {
            return PolicyDenial(rule: "international", pattern: nil, destination: dial)
        }
        return nil
    }
}
