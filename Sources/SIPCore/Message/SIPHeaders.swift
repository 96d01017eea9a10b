/// One header field line, name and value as received (after unfolding continuation lines).
public struct SIPHeader: Sendable, Hashable, CustomStringConvertible {
    /// The field name as written, long (`Call-ID`) or compact (`i`).
    public var name: String
    /// The field value with surrounding whitespace removed.
    public var value: String

    /// Creates a header field.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// `Name: value`.
    public var description: String {
        value.isEmpty ? "\(name):" : "\(name): \(value)"
    }
}

/// The header fields of a message, in the order received. Lookups are case-insensitive and treat a compact
/// form (`v`, `i`, `m`...) and its long name (`Via`, `Call-ID`, `Contact`...) as the same field.
///
/// ```swift
/// var headers = SIPHeaders()
/// headers.add("Via", "SIP/2.0/UDP host;branch=z9hG4bK1")
/// headers["v"]                 // "SIP/2.0/UDP host;branch=z9hG4bK1"
/// headers.set("Max-Forwards", "70")
/// ```
public struct SIPHeaders: Sendable, Hashable, RandomAccessCollection, ExpressibleByArrayLiteral {
    private var fields: [SIPHeader]

    /// Creates headers from fields in order.
    public init(_ fields: [SIPHeader] = []) {
        self.fields = fields
    }

    /// Creates headers from `(name, value)` pairs in order.
    public init(arrayLiteral elements: (String, String)...) {
        fields = elements.map { SIPHeader(name: $0.0, value: $0.1) }
    }

    /// The position of the first field.
    public var startIndex: Int { fields.startIndex }
    /// The position past the last field.
    public var endIndex: Int { fields.endIndex }
    /// The field at `position`.
    public subscript(position: Int) -> SIPHeader { fields[position] }

    /// The first value of the field `name`: the first list element for list fields such as Via or Contact,
    /// the whole value otherwise; nil when absent.
    public subscript(name: String) -> String? {
        values(name).first
    }

    /// Every value of the field `name`, across lines and, for fields whose grammar is a comma-separated list
    /// (Via, Contact, Route, Require...), split at commas outside quotes and angle brackets. Fields that may
    /// contain commas in a single value (Date, WWW-Authenticate, Authorization...) and unknown fields are never
    /// split. Empty list elements are dropped.
    public func values(_ name: String) -> [String] {
        let key = Self.canonicalName(name)
        let lines = fields.filter { Self.canonicalName($0.name) == key }.map(\.value)
        guard Self.listFields.contains(key) else { return lines }
        return lines.flatMap(Grammar.splitList).filter { !$0.isEmpty }
    }

    /// Whether a field called `name` is present.
    public func contains(_ name: String) -> Bool {
        let key = Self.canonicalName(name)
        return fields.contains { Self.canonicalName($0.name) == key }
    }

    /// Appends a field line.
    public mutating func add(_ name: String, _ value: String) {
        fields.append(SIPHeader(name: name, value: value))
    }

    /// Replaces every line of the field `name` by one with `value`: the first line keeps its position and
    /// spelling, later lines are removed; appended when absent.
    public mutating func set(_ name: String, _ value: String) {
        let key = Self.canonicalName(name)
        guard let first = fields.firstIndex(where: { Self.canonicalName($0.name) == key }) else {
            add(name, value)
            return
        }
        fields[first].value = value
        var index = fields.endIndex - 1
        while index > first {
            if Self.canonicalName(fields[index].name) == key { fields.remove(at: index) }
            index -= 1
        }
    }

    /// Removes every line of the field `name`.
    public mutating func remove(_ name: String) {
        let key = Self.canonicalName(name)
        fields.removeAll { Self.canonicalName($0.name) == key }
    }

    /// The field lines called `name`, one per line, unsplit.
    func lines(_ name: String) -> [SIPHeader] {
        let key = Self.canonicalName(name)
        return fields.filter { Self.canonicalName($0.name) == key }
    }

    /// The lower-cased long name of a field, expanding compact forms.
    static func canonicalName(_ name: String) -> String {
        let lower = name.lowercased()
        return compactForms[lower] ?? lower
    }

    /// Compact forms: RFC 3261 §7.3.3 and the IANA "Header Fields" registry.
    private static let compactForms: [String: String] = [
        "a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
        "e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact", "k": "supported",
        "l": "content-length", "m": "contact", "n": "identity-info", "o": "event", "r": "refer-to",
        "s": "subject", "t": "to", "u": "allow-events", "v": "via", "x": "session-expires", "y": "identity",
    ]

    /// Fields whose grammar is `value *(COMMA value)` and whose values never contain an unquoted comma.
    private static let listFields: Set<String> = [
        "accept", "accept-contact", "accept-encoding", "accept-language", "alert-info", "allow", "allow-events",
        "call-info", "contact", "content-encoding", "content-language", "error-info", "in-reply-to", "path",
        "proxy-require", "reason", "record-route", "reject-contact", "request-disposition", "require", "route",
        "security-client", "security-server", "security-verify", "service-route", "supported", "unsupported",
        "via", "warning",
    ]
}
