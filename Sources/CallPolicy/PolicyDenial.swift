/// The rule that refused a destination. Its raw value is stable: 403 bodies, bus error messages, SIP
/// Warning headers, logs and metric labels carry it, and clients match on it.
public enum PolicyRule: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Not a URI, number or user name the policy can read (control characters, no user part, ...).
    case malformed
    /// Longer than ``DestinationPolicy/maxLength``.
    case tooLong = "too_long"
    /// A scheme other than `sip:`, `sips:` and `tel:`.
    case unsupportedScheme = "unsupported_scheme"
    /// `user:password@`: the password would hide the user part from a text check.
    case passwordInURI = "password_in_uri"
    /// `?header=value`: headers a URI would smuggle into the request the bridge builds.
    case uriHeaders = "uri_headers"
    /// A URI parameter outside ``DestinationPolicy/allowedParameters`` (`maddr` re-routes the request).
    case uriParameter = "uri_parameter"
    /// `%xx` in the user part: an escaped digit is a digit to the next hop but not to a text check.
    case escapedUser = "escaped_user"
    /// Digits of another script (Arabic-Indic, fullwidth...), which some stacks fold to ASCII.
    case nonASCIIDigits = "non_ascii_digits"
    /// A user part that is neither a number nor a plain user name (`1-800-FLOWERS`, `*69`, `1900x`).
    case badUser = "bad_user"
    /// A host that is neither a configured SIP domain nor a configured trunk.
    case hostNotAllowed = "host_not_allowed"
    /// Digits that are no E.164 number and too long for a short number or extension.
    case invalidNumber = "invalid_number"
    /// One of the account's (API key's) deny patterns matches.
    case keyDeny = "key_deny"
    /// The account has allow patterns and none matches.
    case notAllowed = "not_allowed"
    case premiumRate = "premium_rate"
    case sharedCost = "shared_cost"
    /// Satellite and international-network codes (+870, +881, +882, +883): classic IRSF targets.
    case satellite
    /// A country code other than the home one.
    case international
    /// A +1 number outside the home area codes: NANP spans 25 countries, most of them not domestic.
    case nanpForeign = "nanp_foreign"

    public var description: String { rawValue }
}

/// Why a destination is refused: the rule, what matched it, and a sentence for people.
///
/// ```swift
/// do {
///     try policy.check("sip:+18095551234@switchboard.local")
/// } catch {
///     error.rule      // .nanpForeign
///     error.message   // "+18095551234 is in the Dominican Republic (+1 809), ..."
/// }
/// ```
public struct PolicyDenial: Error, Equatable, Sendable, CustomStringConvertible {
    public let rule: PolicyRule
    /// The pattern, prefix, parameter or host that decided, when there is one.
    public let pattern: String?
    /// The destination as far as it was read: the E.164 number or user name, else the input (shortened).
    public let destination: String
    public let message: String

    public init(_ rule: PolicyRule, _ destination: String, pattern: String? = nil, _ message: String) {
        self.rule = rule
        self.pattern = pattern
        // The input may be hostile and long: a log line or a 403 body carries at most 80 characters of it.
        self.destination = destination.count > 80 ? String(destination.prefix(80)) + "…" : destination
        self.message = message
    }

    /// `rule: message`, the form bus error messages and logs use.
    public var description: String { "\(rule.rawValue): \(message)" }
}
