/// One header field line, name and value as received (after unfolding continuation lines).
public struct SIPHeader: Sendable, Hashable, CustomStringConvertible {
    /// The field name as written, long (`Call-ID`) or compact (`i`).
    public var name: String {
        didSet { canonicalName = SIPHeaders.canonicalName(name) }
    }
    /// The field value with surrounding whitespace removed.
    public var value: String
    /// ``SIPHeaders/canonicalName(_:)`` of `name`, computed once here so that lookups, which run many times per
    /// message, compare names without lower-casing each field again.
    private(set) var canonicalName: String

    /// Creates a header field.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
        canonicalName = SIPHeaders.canonicalName(name)
    }

    /// Creates a header field parsed from the wire, whose name is a token and thus ASCII.
    init(name: UnsafeBufferPointer<UInt8>.SubSequence, value: UnsafeBufferPointer<UInt8>.SubSequence) {
        self.name = String(decoding: name, as: UTF8.self)
        self.value = String(decoding: value, as: UTF8.self)
        canonicalName = SIPHeaders.canonicalName(lowercased: Grammar.asciiLowercased(name))
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
        first(canonical: Self.canonicalName(name))
    }

    /// Every value of the field `name`, across lines and, for fields whose grammar is a comma-separated list
    /// (Via, Contact, Route, Require...), split at commas outside quotes and angle brackets. Fields that may
    /// contain commas in a single value (Date, WWW-Authenticate, Authorization...) and unknown fields are never
    /// split. Empty list elements are dropped.
    public func values(_ name: String) -> [String] {
        values(canonical: Self.canonicalName(name))
    }

    /// Whether a field called `name` is present.
    public func contains(_ name: String) -> Bool {
        contains(canonical: Self.canonicalName(name))
    }

    /// Appends a field line.
    public mutating func add(_ name: String, _ value: String) {
        fields.append(SIPHeader(name: name, value: value))
    }

    /// Replaces every line of the field `name` by one with `value`: the first line keeps its position and
    /// spelling, later lines are removed; appended when absent.
    public mutating func set(_ name: String, _ value: String) {
        let key = Self.canonicalName(name)
        guard let first = fields.firstIndex(where: { $0.canonicalName == key }) else {
            add(name, value)
            return
        }
        fields[first].value = value
        var index = fields.endIndex - 1
        while index > first {
            if fields[index].canonicalName == key { fields.remove(at: index) }
            index -= 1
        }
    }

    /// Removes every line of the field `name`.
    public mutating func remove(_ name: String) {
        let key = Self.canonicalName(name)
        fields.removeAll { $0.canonicalName == key }
    }

    /// Appends a field line whose canonical name is already known.
    mutating func append(_ field: SIPHeader) {
        fields.append(field)
    }

    // The lookups below take a name already in canonical form, so that the typed accessors, the parser and the
    // endpoint checks pass literals (`"call-id"`) and nothing is lower-cased on the hot path.

    /// ``subscript(_:)`` for a canonical name.
    func first(canonical key: String) -> String? {
        var isList: Bool?
        for field in fields where field.canonicalName == key {
            if isList == nil { isList = Self.listFields.contains(key) }
            guard isList == true else { return field.value }
            var first: String?
            Grammar.forEachListElement(in: field.value) { element in
                if !element.isEmpty { first = element }
                return first == nil
            }
            if let first { return first }
        }
        return nil
    }

    /// ``values(_:)`` for a canonical name.
    func values(canonical key: String) -> [String] {
        let isList = Self.listFields.contains(key)
        var values: [String] = []
        for field in fields where field.canonicalName == key {
            guard isList else {
                values.append(field.value)
                continue
            }
            Grammar.forEachListElement(in: field.value) { element in
                if !element.isEmpty { values.append(element) }
                return true
            }
        }
        return values
    }

    /// ``contains(_:)`` for a canonical name.
    func contains(canonical key: String) -> Bool {
        fields.contains { $0.canonicalName == key }
    }

    /// How many lines the field with canonical name `key` has.
    func lineCount(canonical key: String) -> Int {
        var count = 0
        for field in fields where field.canonicalName == key { count += 1 }
        return count
    }

    /// The field lines called `name`, one per line, unsplit.
    func lines(_ name: String) -> [SIPHeader] {
        let key = Self.canonicalName(name)
        return fields.filter { $0.canonicalName == key }
    }

    /// The lower-cased long name of a field, expanding compact forms.
    static func canonicalName(_ name: String) -> String {
        canonicalName(lowercased: Grammar.asciiLowercased(name))
    }

    /// The long name of a lower-cased field name.
    fileprivate static func canonicalName(lowercased lower: String) -> String {
        // Every compact form is one letter; longer names skip the table lookup.
        guard lower.utf8.count == 1 else { return lower }
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

extension SIPHeaders {
    /// Whether the option tag `tag` is among the values of `field` (Supported, Require), compared without case.
    ///
    /// ```swift
    /// invite.headers.namesOptionTag("100rel", in: "Supported")
    /// ```
    public func namesOptionTag(_ tag: String, in field: String) -> Bool {
        values(field).contains { Grammar.equalsIgnoringCase($0, tag) }
    }
}
