/// One line of the dial plan: calls whose number starts with `prefix` may go to `target`.
///
/// Among the routes of one prefix the cheapest is tried first; `priority` breaks ties between equal
/// costs, lower first (as in DNS SRV and Kamailio's `lcr`).
///
/// ```swift
/// let route = try Route(prefix: "+1 202", target: "sip:gw1.example.com", cost: 0.01, priority: 10)
/// route.prefix  // "1202"
/// ```
struct Route: Codable, Equatable, Sendable {
    /// Assigned by the store; nil until the route is saved.
    var id: Int64?
    /// Normalised digits; the empty prefix is the default route and matches every number.
    var prefix: String
    /// A ``TargetTemplate`` spelling.
    var target: String
    /// Price per minute or any other comparable unit; lower is preferred.
    var cost: Double
    /// Tie-break among equal costs; lower is preferred.
    var priority: Int
    /// Free text for the people who maintain the dial plan.
    var description: String?

    /// A route with its prefix normalised and its target and cost checked.
    /// - Throws: ``DialPlanError`` naming the bad field.
    init(id: Int64? = nil, prefix: String, target: String, cost: Double = 0, priority: Int = 0, description: String? = nil) throws {
        let normalizedPrefix: String
        if prefix.isEmpty {
            normalizedPrefix = ""
        } else if let digits = DialString.digits(of: prefix) {
            normalizedPrefix = digits
        } else {
            throw DialPlanError.invalidPrefix(prefix)
        }
        _ = try TargetTemplate(target)
        guard cost.isFinite, cost >= 0 else { throw DialPlanError.invalidCost(cost) }
        self.id = id
        self.prefix = normalizedPrefix
        self.target = target
        self.cost = cost
        self.priority = priority
        self.description = description
    }
}

/// Which party of a call a ``Block`` applies to.
enum BlockKind: String, Codable, CaseIterable, Sendable {
    /// The caller: `authUser`, or else the From user.
    case caller
    /// The dialled number (the Request-URI user).
    case destination
}

/// An access-list entry: calls from (or to) a party starting with `pattern` are refused with 403.
///
/// ```swift
/// let block = try Block(kind: .destination, pattern: "1900", reason: "premium-rate numbers")
/// ```
struct Block: Codable, Equatable, Sendable {
    var id: Int64?
    var kind: BlockKind
    /// A prefix. Numbers are normalised like route prefixes; a caller pattern may also be a user name
    /// prefix (callers authenticate by name), which is kept as written.
    var pattern: String
    /// Why the block exists, for the people who maintain it (not sent to the caller).
    var reason: String?

    /// A block with its pattern normalised and checked.
    /// - Throws: ``DialPlanError/invalidPattern(_:problem:)``.
    init(id: Int64? = nil, kind: BlockKind, pattern: String, reason: String? = nil) throws {
        guard !pattern.isEmpty else {
            throw DialPlanError.invalidPattern(pattern, problem: "an empty pattern would block every call")
        }
        if let digits = DialString.digits(of: pattern) {
            self.pattern = digits
        } else if kind == .destination {
            throw DialPlanError.invalidPattern(pattern, problem: "a destination pattern must be a number prefix")
        } else if pattern.contains(where: { $0.isWhitespace }) {
            throw DialPlanError.invalidPattern(pattern, problem: "a caller pattern cannot contain spaces")
        } else {
            self.pattern = pattern
        }
        self.id = id
        self.kind = kind
        self.reason = reason
    }
}
