/// A `name-addr` or `addr-spec` with header parameters, as in From, To, Contact, Route (RFC 3261 §20.10).
///
/// ```swift
/// let to = NameAddress(#""Bob" <sip:bob@example.com>;tag=a6c85cf"#)!
/// to.displayName   // "Bob"
/// to.tag           // "a6c85cf"
/// ```
public struct NameAddress: Sendable, Hashable, LosslessStringConvertible {
    /// The display name, unquoted and unescaped; nil when absent.
    public var displayName: String?
    /// The address.
    public var uri: SIPAnyURI
    /// The header parameters after the address (`tag`, `expires`, `q`...), in order.
    public var parameters: [SIPParameter]

    /// Creates an address.
    public init(displayName: String? = nil, uri: SIPAnyURI, parameters: [SIPParameter] = []) {
        self.displayName = displayName
        self.uri = uri
        self.parameters = parameters
    }

    /// Creates an address for a SIP URI.
    public init(displayName: String? = nil, uri: SIPURI, parameters: [SIPParameter] = []) {
        self.init(displayName: displayName, uri: .sip(uri), parameters: parameters)
    }

    /// Parses `"Name" <uri>;params`, `Name <uri>;params`, `<uri>;params` or bare `uri;params`. A bare URI ends
    /// at the first `;` and must not contain `,` or `?` (RFC 3261 §20: such URIs need angle brackets).
    public init?(_ description: String) {
        guard let address = ValueScanner.scan(description, Self.init(scanning:)) else { return nil }
        self = address
    }

    private init?(scanning scanner: inout ValueScanner) {
        scanner.skipWhitespace()
        var displayName: String?
        if scanner.peek == ASCII.quote {
            guard let quoted = scanner.readQuotedString() else { return nil }
            displayName = quoted
            scanner.skipWhitespace()
            guard scanner.peek == ASCII.lessThan else { return nil }
        } else if scanner.bytes.contains(ASCII.lessThan) {
            let words = scanner.read { $0 != ASCII.lessThan }
            let trimmedWords = Grammar.trimmed(words)
            // Tokens separated by spaces or tabs: every byte is one or the other (empty words are skipped).
            guard trimmedWords.utf8.allSatisfy({ Grammar.isTokenByte($0) || Grammar.isWhitespace($0) }) else { return nil }
            displayName = trimmedWords.isEmpty ? nil : trimmedWords
        }

        // The URI is parsed where it lies in the scanner's bytes, without a String of its own.
        let uriBytes: Range<Int>
        if scanner.consume(ASCII.lessThan) {
            uriBytes = scanner.skip { $0 != ASCII.greaterThan }
            guard scanner.consume(ASCII.greaterThan) else { return nil }
        } else {
            uriBytes = scanner.skip { !Grammar.isWhitespace($0) && $0 != ASCII.semicolon }
            let bare = scanner.bytes[uriBytes]
            guard !bare.contains(ASCII.comma), !bare.contains(ASCII.question) else { return nil }
        }
        guard let uri = SIPAnyURI(UnsafeBufferPointer(rebasing: scanner.bytes[uriBytes])),
              let parameters = scanner.readParameters()
        else { return nil }
        self.displayName = displayName
        self.uri = uri
        self.parameters = parameters
    }

    /// The `name-addr` form: always angle brackets, display name quoted when present.
    public var description: String {
        var text = ""
        if let displayName { text += Grammar.quoted(displayName) + " " }
        text += "<\(uri)>" + parameters.serialized
        return text
    }

    /// The `tag` parameter (RFC 3261 §19.3).
    public var tag: String? {
        get { parameters.value(for: "tag") }
        set {
            if let newValue { parameters.set("tag", newValue) } else { parameters.remove(named: "tag") }
        }
    }
}
