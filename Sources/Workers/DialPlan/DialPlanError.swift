/// Why the dial plan refused an input or an operation; the description is the message a user sees.
///
/// ```swift
/// do { try store.removeRoute(id: 42) }
/// catch let error as DialPlanError { print(error) }  // "no route with id 42"
/// ```
enum DialPlanError: Error, Equatable, CustomStringConvertible {
    /// A route prefix that is not a (possibly `+`-prefixed, visually separated) string of digits.
    case invalidPrefix(String)
    /// A route target that the bridge could not put in a Contact header.
    case invalidTarget(String, problem: String)
    /// A cost that is negative or not a number.
    case invalidCost(Double)
    /// A block pattern that cannot match anything sensible.
    case invalidPattern(String, problem: String)
    /// The same prefix already routes to the same target.
    case duplicateRoute(prefix: String, target: String, existingId: Int64)
    /// The same pattern is already blocked for the same kind of party.
    case duplicateBlock(kind: BlockKind, pattern: String, existingId: Int64)
    case routeNotFound(id: Int64)
    case blockNotFound(id: Int64)
    /// The database file could not be opened or migrated.
    case databaseUnavailable(path: String, problem: String)

    var description: String {
        switch self {
        case .invalidPrefix(let prefix):
            "prefix \(prefix.debugDescription) is not a number (digits, optionally with a leading + and separators such as - . ( ) or spaces)"
        case .invalidTarget(let target, let problem):
            "target \(target.debugDescription) is not usable: \(problem)"
        case .invalidCost(let cost):
            "cost \(cost) must be zero or positive"
        case .invalidPattern(let pattern, let problem):
            "pattern \(pattern.debugDescription) is not usable: \(problem)"
        case .duplicateRoute(let prefix, let target, let existingId):
            "prefix \(prefix.debugDescription) already routes to \(target) (route id \(existingId))"
        case .duplicateBlock(let kind, let pattern, let existingId):
            "\(kind.rawValue) pattern \(pattern.debugDescription) is already blocked (block id \(existingId))"
        case .routeNotFound(let id):
            "no route with id \(id)"
        case .blockNotFound(let id):
            "no block with id \(id)"
        case .databaseUnavailable(let path, let problem):
            "cannot use route database \(path): \(problem)"
        }
    }
}
