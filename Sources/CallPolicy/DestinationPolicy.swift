import SIPCore

/// A destination the policy allowed, reduced to what the rules compared.
public enum Destination: Equatable, Sendable {
    /// An E.164 number, `+` and digits.
    case number(String)
    /// Digits that are no E.164 number: an extension or a service code.
    case shortNumber(String)
    /// A SIP user name (`alice`).
    case user(String)

    /// The text patterns match against.
    public var dialString: String {
        switch self {
        case .number(let text), .shortNumber(let text), .user(let text): text
        }
    }
}

/// One policy for every place that sends SIP somewhere on someone's behalf: the gateway's early 403,
/// the bridge's `originate` and `transfer` commands, and worker redirect and bridge targets. It reads the
/// destination with SIPCore's URI grammar, exactly as the bridge will dial it, so text tricks
/// (`sip:1900…:x@host`, `%2B`, `;maddr=`) cannot make a check see one number and the wire another.
/// Pure: no I/O, tested directly.
///
/// Order: the URI's form (scheme, password, headers, parameters, escapes, user part, host), then the
/// number's form (E.164, short, or invalid), then the account's deny and allow patterns, then the
/// default denies (premium/shared-cost/satellite ranges, `international`, `nanp_foreign`), which only
/// an allow pattern naming that range lifts (``DialPattern/covers(_:)``).
///
/// ```swift
/// let policy = DestinationPolicy(rules: DestinationRules())
/// try policy.check("sip:+12025550100@switchboard.local")   // .number("+12025550100")
/// try policy.check("sip:19005551234:x@evil.example")       // throws password_in_uri
/// try policy.check("tel:+1-809-555-1234")                  // throws nanp_foreign
/// ```
public struct DestinationPolicy: Equatable, Sendable {
    /// Longest destination read; a longer one is refused (`too_long`), so checking stays bounded.
    public static let maxLength = 256
    /// The URI parameters a destination may carry, with the values allowed (nil: any token). Everything
    /// else (`maddr`, `lr`, `method`, `ttl`, ...) changes where or how the request goes, so it is refused.
    public static let allowedParameters: [String: Set<String>] = [
        "user": ["phone", "ip"],
        "transport": ["udp", "tcp", "tls", "sctp", "ws", "wss"],
    ]

    public var rules: DestinationRules
    public var allow: [DialPattern]
    public var deny: [DialPattern]

    public init(rules: DestinationRules, allow: [String] = [], deny: [String] = []) {
        self.rules = rules
        self.allow = allow.map(DialPattern.init)
        self.deny = deny.map(DialPattern.init)
    }

    /// The destination as the rules read it, or the rule that refuses it.
    ///
    /// Accepts a `sip:`/`sips:`/`tel:` URI (optionally as `"Name" <uri>`), or a bare number or user name
    /// (which the caller places at its SIP domain). Visual separators `-.()` (and spaces in a bare number)
    /// are dropped; `+`, `00`, `011` and national forms become E.164.
    @discardableResult
    public func check(_ input: String) throws(PolicyDenial) -> Destination {
        let destination = try read(input)
        if let pattern = deny.first(where: { $0.matches(destination.dialString) }) {
            throw PolicyDenial(.keyDeny, destination.dialString, pattern: pattern.text,
                               "\(destination.dialString) matches the deny pattern \(pattern.text) of this account")
        }
        if !allow.isEmpty, !allow.contains(where: { $0.matches(destination.dialString) }) {
            throw PolicyDenial(.notAllowed, destination.dialString, "\(destination.dialString) matches none of this account's allow patterns")
        }
        try checkDefaults(destination)
        return destination
    }

    /// The destination `input` names, after the checks of its form and host but before any account
    /// pattern or default deny: for comparing it with numbers someone owns (the gateway's caller policy).
    public func read(_ input: String) throws(PolicyDenial) -> Destination {
        try classify(try userPart(of: input), input: input)
    }

    // MARK: - The URI

    /// The user part of `input` after every check of its form and host.
    private func userPart(of input: String) throws(PolicyDenial) -> String {
        guard input.utf8.count <= Self.maxLength else {
            throw PolicyDenial(.tooLong, input, "the destination is longer than \(Self.maxLength) bytes")
        }
        if input.unicodeScalars.contains(where: { !$0.isASCII && $0.properties.numericType != nil }) {
            throw PolicyDenial(.nonASCIIDigits, input, "the destination has digits outside ASCII 0-9")
        }
        guard input.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) else {
            throw PolicyDenial(.malformed, input, "the destination has control or non-ASCII characters")
        }
        var text = input.trimmingSpaces()
        guard !text.isEmpty else { throw PolicyDenial(.malformed, input, "the destination is empty") }
        if text.contains("<") {
            guard let address = NameAddress(text) else { throw PolicyDenial(.malformed, input, "not a SIP address") }
            guard address.parameters.isEmpty else {
                throw PolicyDenial(.uriParameter, input, pattern: address.parameters[0].name,
                                   "parameters after the address (\(address.parameters[0].name)) are not allowed")
            }
            text = address.uri.description
        }
        let lower = text.lowercased()
        if lower.hasPrefix("sip:") || lower.hasPrefix("sips:") {
            return try sipUser(text, input: input)
        }
        if lower.hasPrefix("tel:") {
            return try telNumber(String(text.dropFirst(4)), input: input)
        }
        if let colon = text.firstIndex(of: ":"), text[..<colon].allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) }),
           text.first?.isLetter == true {
            throw PolicyDenial(.unsupportedScheme, input, pattern: String(text[..<colon]).lowercased(),
                               "only sip:, sips: and tel: destinations are dialled")
        }
        guard !text.contains(where: { "@:;?%".contains($0) }) else {
            throw PolicyDenial(.malformed, input, "a bare destination is a number or a user name; write a host as a sip: URI")
        }
        return text
    }

    private func sipUser(_ text: String, input: String) throws(PolicyDenial) -> String {
        guard let uri = SIPURI(text) else { throw PolicyDenial(.malformed, input, "not a SIP URI") }
        if uri.password != nil {
            throw PolicyDenial(.passwordInURI, input, "a password in the URI (user:password@host) is not allowed")
        }
        if let header = uri.headers.first {
            throw PolicyDenial(.uriHeaders, input, pattern: header.name, "URI headers (?\(header.name)=...) are not allowed")
        }
        try checkParameters(uri.parameters, input: input)
        guard let user = uri.user else { throw PolicyDenial(.malformed, input, "the URI has no user part") }
        if user.contains("%") {
            throw PolicyDenial(.escapedUser, input, "escaped characters (%xx) in the user part are not allowed")
        }
        guard rules.allows(host: uri.host, port: uri.port, defaultPort: uri.scheme == "sips" ? 5061 : 5060) else {
            throw PolicyDenial(.hostNotAllowed, input, pattern: uri.hostPort,
                               "\(uri.hostPort) is neither a SIP domain nor a trunk of this system")
        }
        return user
    }

    /// RFC 3966 `tel:` number; it has no host (the outbound proxy routes it) and may carry no parameter.
    private func telNumber(_ rest: String, input: String) throws(PolicyDenial) -> String {
        if rest.contains("?") { throw PolicyDenial(.uriHeaders, input, "URI headers are not allowed") }
        if rest.contains("%") { throw PolicyDenial(.escapedUser, input, "escaped characters (%xx) are not allowed") }
        let parts = rest.split(separator: ";", omittingEmptySubsequences: false)
        if parts.count > 1 {
            let name = String(parts[1].prefix { $0 != "=" })
            throw PolicyDenial(.uriParameter, input, pattern: name, "tel: parameters (\(name)) are not allowed")
        }
        guard let number = parts.first, !number.isEmpty, !number.contains(where: { "@: ".contains($0) }) else {
            throw PolicyDenial(.malformed, input, "not a tel: number")
        }
        guard Self.digitsOfNumber(String(number)) != nil else {
            throw PolicyDenial(.badUser, input, "a tel: URI must carry a number")
        }
        return String(number)
    }

    private func checkParameters(_ parameters: [SIPParameter], input: String) throws(PolicyDenial) {
        for parameter in parameters {
            let name = parameter.name.lowercased()
            guard let values = Self.allowedParameters[name], let value = parameter.value?.lowercased(), values.contains(value),
                  parameters.filter({ $0.name.lowercased() == name }).count == 1 else {
                throw PolicyDenial(.uriParameter, input, pattern: parameter.name,
                                   "the URI parameter \(parameter.description) is not allowed (only user=phone|ip, transport=...)")
            }
        }
    }

    // MARK: - The user part

    private func classify(_ user: String, input: String) throws(PolicyDenial) -> Destination {
        guard let digits = Self.digitsOfNumber(user) else {
            guard let first = user.first, first.isLetter, user.count <= 64,
                  user.allSatisfy({ $0.isLetter || $0.isNumber || "_.-".contains($0) }) else {
                throw PolicyDenial(.badUser, input, "the user part \(user.prefix(64)) is neither a number nor a user name")
            }
            return .user(user)
        }
        return try normalize(digits)
    }

    /// `+` and digits with the visual separators `-.()` and spaces dropped; nil when anything else is left.
    static func digitsOfNumber(_ text: String) -> String? {
        let compact = text.filter { !"-.() ".contains($0) }
        let body = compact.hasPrefix("+") ? compact.dropFirst() : Substring(compact)
        guard !body.isEmpty, body.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return compact
    }

    /// E.164 from every dialled form the home country uses; short numbers stay as dialled.
    private func normalize(_ digits: String) throws(PolicyDenial) -> Destination {
        var e164: String?
        if digits.hasPrefix("+") {
            e164 = digits
        } else if let prefix = rules.internationalPrefixes.sorted(by: { $0.count > $1.count }).first(where: { !$0.isEmpty && digits.hasPrefix($0) }) {
            e164 = "+" + digits.dropFirst(prefix.count)
        } else if rules.homeCountryCode == "1" {
            if digits.count == 10, let first = digits.first, first != "0", first != "1" { e164 = "+1" + digits }
            if digits.count == 11, digits.hasPrefix("1") { e164 = "+" + digits }
        } else if !rules.nationalPrefix.isEmpty, digits.hasPrefix(rules.nationalPrefix), digits.count > rules.maxShortNumberDigits {
            e164 = "+" + rules.homeCountryCode + digits.dropFirst(rules.nationalPrefix.count)
        }
        guard let e164 else {
            guard digits.count <= rules.maxShortNumberDigits else {
                throw PolicyDenial(.invalidNumber, digits, "\(digits) is neither an E.164 number nor a short number of at most \(rules.maxShortNumberDigits) digits")
            }
            return .shortNumber(digits)
        }
        // E.164: at most 15 digits; NANP: 1 + NXX area code + 7 digits.
        let nanpOK = !e164.hasPrefix("+1") || (e164.count == 12 && !["0", "1"].contains(e164.dropFirst(2).first))
        guard (8...16).contains(e164.count), !e164.hasPrefix("+0"), nanpOK else {
            throw PolicyDenial(.invalidNumber, e164, "\(e164) is not a valid E.164 number")
        }
        return .number(e164)
    }

    // MARK: - Default denies

    private func checkDefaults(_ destination: Destination) throws(PolicyDenial) {
        let dial = destination.dialString
        let lifted = { (range: String) in allow.contains { $0.covers(range) && $0.matches(dial) } }
        switch destination {
        case .user:
            return
        case .shortNumber, .number:
            let extra = rules.extraDeniedPrefixes.map { NumberingPlan.DeniedRange($0, .premiumRate, "a configured premium-rate prefix") }
            for range in extra + NumberingPlan.deniedRanges where range.pattern.matches(dial) && !lifted(range.prefix) {
                throw PolicyDenial(range.rule, dial, pattern: range.prefix,
                                   "\(dial) is in \(range.name) (\(range.prefix)), denied unless the account allows that range explicitly")
            }
        }
        guard case .number(let e164) = destination else { return }
        let country = NumberingPlan.countryCode(of: e164)
        if country != rules.homeCountryCode {
            guard lifted("+" + country) else {
                throw PolicyDenial(.international, e164, pattern: "+" + country,
                                   "\(e164) is international (+\(country)), denied unless the account allows +\(country) explicitly")
            }
            return
        }
        guard country == "1" else { return }
        let areaCode = String(e164.dropFirst(2).prefix(3))
        let foreign: String? = switch rules.homeAreaCodes {
        case .unitedStatesAndCanada: NumberingPlan.nanpForeignAreaCodes[areaCode]
        case .only(let home): home.contains(areaCode) ? nil : NumberingPlan.nanpForeignAreaCodes[areaCode] ?? "an area code outside the home list"
        }
        if let foreign, !lifted("+1" + areaCode) {
            throw PolicyDenial(.nanpForeign, e164, pattern: "+1" + areaCode,
                               "\(e164) is in \(foreign) (+1 \(areaCode)), not a home area code; denied unless the account allows +1\(areaCode) explicitly")
        }
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
