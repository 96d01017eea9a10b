/// A route's target as written in the dial plan, checked once and turned into a Contact URI per call.
///
/// Three spellings are accepted, all `sip:` or `sips:` URIs:
/// - no user part, `sip:gw1.example.com:5060` → the dialled number becomes the user:
///   `sip:12025550100@gw1.example.com:5060`;
/// - with `{number}`, `sip:00{number}@gw1.example.com;user=phone` → the number is substituted;
/// - with a user part, `sip:helpdesk@pbx.example.com` → used as is (every number reaches the same place).
///
/// ```swift
/// let template = try TargetTemplate("sip:gw1.example.com:5060")
/// template.uri(for: "12025550100")  // "sip:12025550100@gw1.example.com:5060"
/// ```
struct TargetTemplate: Equatable, Sendable {
    static let numberPlaceholder = "{number}"

    private enum Form: Equatable, Sendable {
        case hostOnly(scheme: String, rest: String)
        case placeholder
        case fixed
    }

    /// The target exactly as stored.
    let text: String
    private let form: Form

    /// Checks `text` and remembers how to build URIs from it.
    /// - Throws: ``DialPlanError/invalidTarget(_:problem:)`` naming what is wrong.
    init(_ text: String) throws {
        let scheme: String
        if text.hasPrefix("sip:") {
            scheme = "sip:"
        } else if text.hasPrefix("sips:") {
            scheme = "sips:"
        } else {
            throw DialPlanError.invalidTarget(text, problem: "it must be a sip: or sips: URI, e.g. sip:gw1.example.com:5060")
        }
        // These characters would break the Contact header the bridge writes, or split the URI.
        if let bad = text.first(where: { $0.isWhitespace || $0 == "<" || $0 == ">" || $0 == "\"" }) {
            throw DialPlanError.invalidTarget(text, problem: "it contains \(String(bad).debugDescription)")
        }
        let rest = String(text.dropFirst(scheme.count))
        // The user part, when there is one, ends at the first "@" before any parameters or headers.
        let userAndHost = rest.prefix { $0 != ";" && $0 != "?" }
        let host = userAndHost.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).last ?? ""
        if host.isEmpty || host.hasPrefix(":") {
            throw DialPlanError.invalidTarget(text, problem: "it has no host")
        }
        self.text = text
        if text.contains(Self.numberPlaceholder) {
            form = .placeholder
        } else if userAndHost.contains("@") {
            form = .fixed
        } else {
            form = .hostOnly(scheme: scheme, rest: rest)
        }
    }

    /// The Contact URI for a call to `number` (the normalised digits of the dialled number).
    func uri(for number: String) -> String {
        switch form {
        case .hostOnly(let scheme, let rest): "\(scheme)\(number)@\(rest)"
        case .placeholder: text.replacing(Self.numberPlaceholder, with: number)
        case .fixed: text
        }
    }
}
