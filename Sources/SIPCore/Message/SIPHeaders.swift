/// One header field line, name and value as received (after unfolding continuation lines).
public struct SIPHeader: Sendable, Hashable, CustomStringConvertible {
    /// The field name as written, long (`Call-ID`) or compact (`i`).
    public var name: String {
        didSet { key = HeaderKey(name) }
    }
    /// The field value with surrounding whitespace removed.
    public var value: String
    /// What lookups compare, worked out once here: they run many times per message, and a number compares
    /// faster than a lower-cased name.
    private(set) var key: HeaderKey

    /// Creates a header field.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
        key = HeaderKey(name)
    }

    /// Creates a header field parsed from the wire, whose name is a token and thus ASCII. A known name in its
    /// usual spelling takes the table's String, so the common names cost no decoding.
    init(name: UnsafeBufferPointer<UInt8>.SubSequence, value: UnsafeBufferPointer<UInt8>.SubSequence) {
        let key = HeaderKey(ascii: UnsafeBufferPointer(rebasing: name))
        self.name = key.spelling(ifWritten: name) ?? String(decoding: name, as: UTF8.self)
        self.value = String(decoding: value, as: UTF8.self)
        self.key = key
    }

    /// `Name: value`.
    public var description: String {
        value.isEmpty ? "\(name):" : "\(name): \(value)"
    }
}

/// A field name as lookups compare it: the number of a name SIP core knows (compact forms share their long
/// name's number), or ``other`` for any other name, which lookups then compare by name without case.
struct HeaderKey: Hashable, Sendable {
    let index: UInt8

    static let other = HeaderKey(index: 0)
    static let via = HeaderKey(index: 1)
    static let from = HeaderKey(index: 2)
    static let to = HeaderKey(index: 3)
    static let callID = HeaderKey(index: 4)
    static let cseq = HeaderKey(index: 5)
    static let contact = HeaderKey(index: 6)
    static let maxForwards = HeaderKey(index: 7)
    static let contentLength = HeaderKey(index: 8)
    static let contentType = HeaderKey(index: 9)
    static let require = HeaderKey(index: 10)
    static let date = HeaderKey(index: 11)
    static let minSE = HeaderKey(index: 12)
    static let sessionExpires = HeaderKey(index: 13)

    private init(index: UInt8) {
        self.index = index
    }

    /// The key of `name`, compared without case, compact forms expanded.
    init(_ name: String) {
        var name = name
        self = name.withUTF8 { HeaderKey(ascii: $0) }
    }

    /// The key of a name's bytes; non-ASCII bytes never match a known name.
    init(ascii bytes: UnsafeBufferPointer<UInt8>) {
        if bytes.count == 1 {
            let letter = Grammar.lowercased(bytes[0])
            self.init(index: letter >= UInt8(ascii: "a") && letter <= UInt8(ascii: "z")
                ? Self.compactForms[Int(letter - UInt8(ascii: "a"))] : 0)
            return
        }
        self.init(index: Self.table.index(of: bytes))
    }

    /// Whether this is the key of `field`: the same known name, or the same other name ignoring case.
    func matches(_ field: SIPHeader, name: String) -> Bool {
        field.key == self && (self != .other || Grammar.equalsIgnoringCase(field.name, name))
    }

    /// Whether the field's grammar is `value *(COMMA value)` with no unquoted comma inside a value.
    var isList: Bool { Self.names[Int(index)].isList }

    /// The known name's usual spelling when `bytes` are exactly that, so that no String need be decoded.
    func spelling(ifWritten bytes: UnsafeBufferPointer<UInt8>.SubSequence) -> String? {
        guard index != 0, Self.table.isSpelledAsUsual(index, bytes) else { return nil }
        return Self.names[Int(index)].spelling
    }

    private struct KnownName: Sendable {
        /// The usual spelling.
        let spelling: String
        let isList: Bool

        init(_ spelling: String, list: Bool = false) {
            self.spelling = spelling
            isList = list
        }
    }

    /// Finds a name's index by a hash of its lower-cased bytes: an open-addressed table of indices, checked
    /// against the names' bytes laid end to end, so that a lookup neither allocates nor retains.
    private struct Table: Sendable {
        private var slots = [UInt8](repeating: 0, count: 256)
        /// Lower-cased names, then usual spellings, each `(start, count)` in `bytes`.
        private var bytes: [UInt8] = []
        private var lowercased: [(start: Int, count: Int)] = [(0, 0)]
        private var spellings: [(start: Int, count: Int)] = [(0, 0)]

        init(_ names: [KnownName]) {
            for (index, name) in names.enumerated() where index > 0 {
                lowercased.append((bytes.count, name.spelling.utf8.count))
                bytes += name.spelling.lowercased().utf8
                spellings.append((bytes.count, name.spelling.utf8.count))
                bytes += name.spelling.utf8
                var slot = Self.hash(Array(name.spelling.utf8)) & 0xFF
                while slots[slot] != 0 { slot = (slot + 1) & 0xFF }
                slots[slot] = UInt8(index)
            }
        }

        /// FNV-1a of the lower-cased bytes.
        private static func hash<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Int {
            var hash: UInt32 = 2_166_136_261
            for byte in bytes {
                hash = (hash ^ UInt32(Grammar.lowercased(byte))) &* 16_777_619
            }
            return Int(hash)
        }

        func index(of name: UnsafeBufferPointer<UInt8>) -> UInt8 {
            var slot = Self.hash(name) & 0xFF
            return bytes.withUnsafeBufferPointer { bytes in
                while slots[slot] != 0 {
                    let candidate = lowercased[Int(slots[slot])]
                    if candidate.count == name.count {
                        var offset = 0
                        while offset < name.count, Grammar.lowercased(name[offset]) == bytes[candidate.start + offset] {
                            offset += 1
                        }
                        if offset == name.count { return slots[slot] }
                    }
                    slot = (slot + 1) & 0xFF
                }
                return 0
            }
        }

        func isSpelledAsUsual(_ index: UInt8, _ name: UnsafeBufferPointer<UInt8>.SubSequence) -> Bool {
            let spelling = spellings[Int(index)]
            guard spelling.count == name.count else { return false }
            return bytes.withUnsafeBufferPointer { bytes in
                var offset = 0
                while offset < name.count, name[name.startIndex + offset] == bytes[spelling.start + offset] { offset += 1 }
                return offset == name.count
            }
        }
    }

    /// The names SIP core knows: those it looks up, the long forms of the compact forms (RFC 3261 §7.3.3 and
    /// the IANA "Header Fields" registry), and the list fields, whose values lookups split at commas. The first
    /// entries match the static keys above.
    private static let names: [KnownName] = [
        KnownName(""), KnownName("Via", list: true), KnownName("From"), KnownName("To"), KnownName("Call-ID"),
        KnownName("CSeq"), KnownName("Contact", list: true), KnownName("Max-Forwards"), KnownName("Content-Length"),
        KnownName("Content-Type"), KnownName("Require", list: true), KnownName("Date"), KnownName("Min-SE"),
        KnownName("Session-Expires"),
        // Long forms of compact forms.
        KnownName("Accept-Contact", list: true), KnownName("Referred-By"), KnownName("Request-Disposition", list: true),
        KnownName("Content-Encoding", list: true), KnownName("Reject-Contact", list: true),
        KnownName("Supported", list: true), KnownName("Identity-Info"), KnownName("Event"), KnownName("Refer-To"),
        KnownName("Subject"), KnownName("Allow-Events", list: true), KnownName("Identity"),
        // Other list fields.
        KnownName("Accept", list: true), KnownName("Accept-Encoding", list: true),
        KnownName("Accept-Language", list: true), KnownName("Alert-Info", list: true), KnownName("Allow", list: true),
        KnownName("Call-Info", list: true), KnownName("Content-Language", list: true),
        KnownName("Error-Info", list: true), KnownName("In-Reply-To", list: true), KnownName("Path", list: true),
        KnownName("Proxy-Require", list: true), KnownName("Reason", list: true), KnownName("Record-Route", list: true),
        KnownName("Route", list: true), KnownName("Security-Client", list: true),
        KnownName("Security-Server", list: true), KnownName("Security-Verify", list: true),
        KnownName("Service-Route", list: true), KnownName("Unsupported", list: true), KnownName("Warning", list: true),
        // Common in requests a server reads.
        KnownName("User-Agent"), KnownName("Server"), KnownName("Expires"), KnownName("Authorization"),
        KnownName("Proxy-Authorization"), KnownName("WWW-Authenticate"), KnownName("Proxy-Authenticate"),
        KnownName("RSeq"), KnownName("RAck"), KnownName("Retry-After"), KnownName("Timestamp"),
        KnownName("Organization"), KnownName("Priority"), KnownName("Min-Expires"), KnownName("Subscription-State"),
        KnownName("Refer-Sub"), KnownName("Replaces"), KnownName("P-Asserted-Identity"), KnownName("Privacy"),
        KnownName("Diversion"),
    ]

    private static let table = Table(names)

    /// The index in ``names`` of each compact form `a` to `z`, 0 for letters that are none.
    private static let compactForms: [UInt8] = {
        let longForms: [Character: String] = [
            "a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
            "e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact", "k": "supported",
            "l": "content-length", "m": "contact", "n": "identity-info", "o": "event", "r": "refer-to",
            "s": "subject", "t": "to", "u": "allow-events", "v": "via", "x": "session-expires", "y": "identity",
        ]
        return "abcdefghijklmnopqrstuvwxyz".map { letter in
            guard let long = longForms[letter] else { return 0 }
            return UInt8(names.firstIndex { $0.spelling.lowercased() == long }!)
        }
    }()
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
    /// The typed values of the fields the parser checked, parsed once there; dropped by every change.
    private(set) var parsed: ParsedFields?

    /// Creates headers from fields in order.
    public init(_ fields: [SIPHeader] = []) {
        self.fields = fields
    }

    /// Creates headers from fields the parser read, with the typed values it parsed while checking them.
    init(_ fields: [SIPHeader], parsed: ParsedFields) {
        self.fields = fields
        self.parsed = parsed
    }

    /// Creates headers from `(name, value)` pairs in order.
    public init(arrayLiteral elements: (String, String)...) {
        fields = elements.map { SIPHeader(name: $0.0, value: $0.1) }
    }

    /// Equal when the fields are, whether or not either holds typed values parsed from them.
    public static func == (left: SIPHeaders, right: SIPHeaders) -> Bool {
        left.fields == right.fields
    }

    /// Hashes the fields.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(fields)
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
        first(HeaderKey(name), name: name)
    }

    /// Every value of the field `name`, across lines and, for fields whose grammar is a comma-separated list
    /// (Via, Contact, Route, Require...), split at commas outside quotes and angle brackets. Fields that may
    /// contain commas in a single value (Date, WWW-Authenticate, Authorization...) and unknown fields are never
    /// split. Empty list elements are dropped.
    public func values(_ name: String) -> [String] {
        values(HeaderKey(name), name: name)
    }

    /// Whether a field called `name` is present.
    public func contains(_ name: String) -> Bool {
        let key = HeaderKey(name)
        return fields.contains { key.matches($0, name: name) }
    }

    /// Appends a field line.
    public mutating func add(_ name: String, _ value: String) {
        append(SIPHeader(name: name, value: value))
    }

    /// Replaces every line of the field `name` by one with `value`: the first line keeps its position and
    /// spelling, later lines are removed; appended when absent.
    public mutating func set(_ name: String, _ value: String) {
        let key = HeaderKey(name)
        guard let first = fields.firstIndex(where: { key.matches($0, name: name) }) else {
            add(name, value)
            return
        }
        parsed = nil
        fields[first].value = value
        var index = fields.endIndex - 1
        while index > first {
            if key.matches(fields[index], name: name) { fields.remove(at: index) }
            index -= 1
        }
    }

    /// Removes every line of the field `name`.
    public mutating func remove(_ name: String) {
        let key = HeaderKey(name)
        parsed = nil
        fields.removeAll { key.matches($0, name: name) }
    }

    /// Makes room for `count` field lines.
    mutating func reserveCapacity(_ count: Int) {
        fields.reserveCapacity(count)
    }

    /// Appends a field line whose key is already known.
    mutating func append(_ field: SIPHeader) {
        parsed = nil
        fields.append(field)
    }

    // The lookups below take a known key (`.callID`), so that the typed accessors, the parser and the endpoint
    // checks compare numbers, and nothing is lower-cased on the hot path. `name` is needed only for `.other`.

    /// ``subscript(_:)`` for a key.
    func first(_ key: HeaderKey, name: String = "") -> String? {
        for field in fields where key.matches(field, name: name) {
            guard key.isList else { return field.value }
            var first: String?
            Grammar.forEachListElement(in: field.value) { element in
                if !element.isEmpty { first = element }
                return first == nil
            }
            if let first { return first }
        }
        return nil
    }

    /// ``values(_:)`` for a key.
    func values(_ key: HeaderKey, name: String = "") -> [String] {
        let isList = key.isList
        var values: [String] = []
        for field in fields where key.matches(field, name: name) {
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

    /// ``contains(_:)`` for a known key.
    func contains(_ key: HeaderKey) -> Bool {
        fields.contains { $0.key == key }
    }

    /// How many lines the field with known key `key` has.
    func lineCount(_ key: HeaderKey) -> Int {
        var count = 0
        for field in fields where field.key == key { count += 1 }
        return count
    }

    /// The field lines called `name`, one per line, unsplit.
    func lines(_ name: String) -> [SIPHeader] {
        let key = HeaderKey(name)
        return fields.filter { key.matches($0, name: name) }
    }
}

/// The typed values of the fields every element reads, parsed once by ``SIPParser`` while it checks them, so
/// the accessors (``SIPMessageFields/from``, ``SIPMessageFields/topVia``...) of a parsed message do not parse
/// again. A class, so that copies of the headers share one.
final class ParsedFields: Sendable {
    let vias: [Via]
    let from: NameAddress?
    let to: NameAddress?
    let contacts: [NameAddress]
    let cseq: CSeq?

    init(vias: [Via], from: NameAddress?, to: NameAddress?, contacts: [NameAddress], cseq: CSeq?) {
        self.vias = vias
        self.from = from
        self.to = to
        self.contacts = contacts
        self.cseq = cseq
    }
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
