/// One `;name[=value]` parameter of a URI or a header field value, kept in the order received.
///
/// ```swift
/// let lr = SIPParameter("lr")                 // flag parameter
/// let transport = SIPParameter("transport", "tcp")
/// ```
public struct SIPParameter: Sendable, Hashable, CustomStringConvertible {
    /// The parameter name as written; lookups compare it case-insensitively.
    public var name: String
    /// The value as written (quoted values keep their quotes), or nil for a flag parameter such as `lr`.
    public var value: String?

    /// Creates a parameter; pass no value for a flag.
    public init(_ name: String, _ value: String? = nil) {
        self.name = name
        self.value = value
    }

    /// `name` or `name=value`.
    public var description: String {
        value.map { "\(name)=\($0)" } ?? name
    }
}

extension Array where Element == SIPParameter {
    /// The value of the first parameter called `name` (case-insensitive); nil when absent or a flag.
    ///
    /// ```swift
    /// via.parameters.value(for: "branch")
    /// ```
    public func value(for name: String) -> String? {
        first { Grammar.equalsIgnoringCase($0.name, name) }?.value ?? nil
    }

    /// Whether a parameter called `name` (case-insensitive) is present, as a flag or with a value.
    public func contains(named name: String) -> Bool {
        contains { Grammar.equalsIgnoringCase($0.name, name) }
    }

    /// Replaces the first parameter called `name` in place (removing later duplicates), or appends it.
    public mutating func set(_ name: String, _ value: String?) {
        guard let first = firstIndex(where: { Grammar.equalsIgnoringCase($0.name, name) }) else {
            append(SIPParameter(name, value))
            return
        }
        self[first].value = value
        var index = endIndex - 1
        while index > first {
            if Grammar.equalsIgnoringCase(self[index].name, name) { remove(at: index) }
            index -= 1
        }
    }

    /// Removes every parameter called `name` (case-insensitive).
    public mutating func remove(named name: String) {
        removeAll { Grammar.equalsIgnoringCase($0.name, name) }
    }

    var serialized: String {
        map { ";\($0.description)" }.joined()
    }
}
