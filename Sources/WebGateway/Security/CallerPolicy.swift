import CallPolicy

/// Who an originate may say it comes from. `from` is party A, the principal's own phone: it must be
/// one of the principal's `numbers` (a user also owns the SIP account of its name). `caller_id` is
/// what party B's phone shows: it must match the principal's `caller_ids`, or, when it has none, its
/// numbers. A SIP URI on another domain than ours is never owned. Pure, like ``DestinationPolicy``,
/// whose reading of a URI or number (``DestinationPolicy/read(_:)``) it shares.
///
/// ```swift
/// let policy = CallerPolicy(policy: AccessPolicy(numbers: ["+1202555"]), user: nil, sipDomain: "switchboard.local",
///                           rules: DestinationRules())
/// policy.check(from: "+12025550100", callerId: nil)         // nil: allowed
/// policy.check(from: "+13125550100", callerId: nil)?.rule   // "from_not_owned"
/// ```
struct CallerPolicy: Sendable {
    /// Why a `from` or `caller_id` was refused; `rule` is `from_not_owned` or `caller_id_not_allowed`.
    struct Denial: Equatable, Sendable {
        var rule: String
        var field: String
        var message: String
    }

    let numbers: [DialPattern]
    let callerIds: [DialPattern]
    /// The login name of a user principal, which owns the SIP account of that name.
    let user: String?
    let sipDomain: String
    private let reader: DestinationPolicy

    init(policy: AccessPolicy, user: String?, sipDomain: String, rules: DestinationRules) {
        numbers = policy.numbers.map(DialPattern.init)
        callerIds = (policy.callerIds.isEmpty ? policy.numbers : policy.callerIds).map(DialPattern.init)
        self.user = user
        self.sipDomain = sipDomain.lowercased()
        var rules = rules
        rules.sipDomains = [sipDomain]
        reader = DestinationPolicy(rules: rules)
    }

    func check(from: String, callerId: String?) -> Denial? {
        if !owns(from, patterns: numbers) {
            return Denial(rule: "from_not_owned", field: "from",
                          message: "\(from) is not one of this key's or user's numbers (its `numbers`)")
        }
        if let callerId, !owns(callerId, patterns: callerIds) {
            return Denial(rule: "caller_id_not_allowed", field: "caller_id",
                          message: "\(callerId) is not a caller id this key or user may show (its `caller_ids`, else its `numbers`)")
        }
        return nil
    }

    private func owns(_ value: String, patterns: [DialPattern]) -> Bool {
        guard isOurDomain(value), let party = try? reader.read(value) else {
            return false
        }
        // A user's own account is compared whole: `alice` does not own `alice2`.
        if case .user(let name) = party, name == user { return true }
        return patterns.contains { $0.matches(party.dialString) }
    }

    /// A `sip:`/`sips:` URI names its host; only ours is the principal's (`tel:` and bare numbers have none).
    private func isOurDomain(_ value: String) -> Bool {
        let lower = value.lowercased()
        guard lower.hasPrefix("sip:") || lower.hasPrefix("sips:") else { return true }
        guard let at = lower.firstIndex(of: "@") else { return true }
        let host = lower[lower.index(after: at)...].prefix { $0 != ":" && $0 != ";" && $0 != ">" }
        return host == sipDomain
    }
}
