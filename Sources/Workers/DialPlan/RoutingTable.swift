import BusSchema

/// An immutable snapshot of the dial plan, indexed for routing: deciding on a call is pure and
/// touches no disk.
///
/// The decision, in order:
/// 1. the caller (`authUser`, else the From user) starts with a blocked caller pattern → 403;
/// 2. the Request-URI user is missing or not a number (a user name, a `*`/`#` service code) → 404,
///    because this router only routes phone numbers and so has no route for it;
/// 3. the number starts with a blocked destination pattern → 403;
/// 4. the longest prefix with routes wins; its routes, cheapest first (then lowest priority, then
///    oldest), become redirect targets with q-values 1.0, 0.9, 0.8 … never below 0.1;
/// 5. no prefix matches → 404.
///
/// ```swift
/// let table = RoutingTable(routes: try [Route(prefix: "1202", target: "sip:gw1.example.com")], blocks: [])
/// table.route(offer).decision  // .redirect([Target(uri: "sip:12025550100@gw1.example.com", q: 1.0)])
/// ```
struct RoutingTable: Sendable {
    /// Target templates by prefix, each list already in least-cost order.
    private let targetsByPrefix: [String: [TargetTemplate]]
    private let longestPrefix: Int
    private let callerBlocks: [Block]
    private let destinationBlocks: [Block]

    /// The table that routes nothing; used until the store has been read once.
    static let empty = RoutingTable(routes: [], blocks: [])

    /// Routes whose target is not a usable URI (possible only if the database was edited by hand);
    /// they are left out of the table rather than sent to the bridge, and the owner logs them.
    let unusableRoutes: [Route]

    init(routes: [Route], blocks: [Block]) {
        var usable: [(route: Route, template: TargetTemplate)] = []
        var unusable: [Route] = []
        for route in routes {
            if let template = try? TargetTemplate(route.target) {
                usable.append((route, template))
            } else {
                unusable.append(route)
            }
        }
        targetsByPrefix = Dictionary(grouping: usable, by: \.route.prefix).mapValues { entries in
            entries.sorted { Self.leastCostFirst($0.route, $1.route) }.map(\.template)
        }
        unusableRoutes = unusable
        longestPrefix = usable.map(\.route.prefix.count).max() ?? 0
        callerBlocks = blocks.filter { $0.kind == .caller }
        destinationBlocks = blocks.filter { $0.kind == .destination }
    }

    /// How many distinct prefixes have routes, for logs.
    var prefixCount: Int { targetsByPrefix.count }
    /// How many caller and destination blocks are active, for logs.
    var blockCount: Int { callerBlocks.count + destinationBlocks.count }

    /// Decides on `offer`.
    func route(_ offer: CallOffer) -> RoutingResult {
        let caller = offer.authUser ?? offer.from.user
        if let caller, let block = Self.firstMatch(in: callerBlocks, for: DialString.digits(of: caller) ?? caller) {
            return .blocked(block)
        }
        guard let user = offer.requestUri.user, let number = DialString.digits(of: user) else {
            return .notANumber(offer.requestUri.user)
        }
        if let block = Self.firstMatch(in: destinationBlocks, for: number) {
            return .blocked(block)
        }
        for length in stride(from: min(number.count, longestPrefix), through: 0, by: -1) {
            let prefix = String(number.prefix(length))
            guard let templates = targetsByPrefix[prefix] else { continue }
            let targets = templates.enumerated().map { rank, template in
                Target(uri: template.uri(for: number), q: Self.qValue(rank: rank))
            }
            return .routed(number: number, prefix: prefix, targets: targets)
        }
        return .noRoute(number: number)
    }

    /// The q-value of the target at `rank` (0 = preferred): one decimal step down per rank. The
    /// eleventh and later targets share 0.1 rather than reach 0, the least preference a proxy may
    /// read as "do not use".
    static func qValue(rank: Int) -> Double {
        Double(max(1, 10 - rank)) / 10
    }

    private static func leastCostFirst(_ a: Route, _ b: Route) -> Bool {
        if a.cost != b.cost { return a.cost < b.cost }
        if a.priority != b.priority { return a.priority < b.priority }
        return (a.id ?? .max) < (b.id ?? .max)
    }

    private static func firstMatch(in blocks: [Block], for identity: String) -> Block? {
        blocks.first { identity.hasPrefix($0.pattern) }
    }
}

/// What the router decided and why; ``decision`` is what goes back to the bridge, the rest is logged.
///
/// ```swift
/// if case .routed(_, let prefix, let targets) = table.route(offer) { print(prefix, targets.count) }
/// ```
enum RoutingResult: Equatable, Sendable {
    case routed(number: String, prefix: String, targets: [Target])
    case blocked(Block)
    /// The Request-URI has no user, or a user that is not a number (carried here when present).
    case notANumber(String?)
    case noRoute(number: String)

    var decision: Decision {
        switch self {
        case .routed(_, _, let targets): .redirect(targets)
        case .blocked: .reject(status: 403, reason: "Forbidden")
        case .notANumber, .noRoute: .reject(status: 404, reason: "Not Found")
        }
    }
}
