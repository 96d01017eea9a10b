/// A `sip:` or `sips:` URI (RFC 3261 §19.1).
///
/// ```swift
/// let uri = SIPURI("sip:alice@[2001:db8::1]:5070;transport=tcp;lr")!
/// uri.host            // "[2001:db8::1]"
/// uri.transport       // "tcp"
/// uri.isLooseRouter   // true
/// ```
public struct SIPURI: Sendable, Hashable, LosslessStringConvertible {
    /// `sip` or `sips`, lower-cased.
    public var scheme: String
    /// The user part exactly as written, escapes included; see ``unescapedUser``.
    public var user: String?
    /// The password part, as written.
    public var password: String?
    /// The host as written in the URI: a name, an IPv4 address, or an IPv6 reference with its brackets.
    public var host: String
    /// The port, when given.
    public var port: UInt16?
    /// The `uri-parameters`, in order.
    public var parameters: [SIPParameter]
    /// The `headers` after `?`, in order, values still escaped.
    public var headers: [SIPParameter]

    /// Creates a URI from its parts.
    public init(
        scheme: String = "sip", user: String? = nil, password: String? = nil, host: String, port: UInt16? = nil,
        parameters: [SIPParameter] = [], headers: [SIPParameter] = []
    ) {
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.parameters = parameters
        self.headers = headers
    }

    /// Parses a `SIP-URI` or `SIPS-URI`; nil when malformed or another scheme.
    public init?(_ description: String) {
        var text = description
        guard let uri = text.withUTF8({ bytes in
            bytes.firstIndex(of: ASCII.colon).flatMap { SIPURI(bytes, colon: $0) }
        }) else { return nil }
        self = uri
    }

    /// Parses the URI in `bytes` whose scheme ends at `colon`; nil when malformed or another scheme. Works on
    /// the bytes in place: a parser calls it for every address of every message.
    init?(_ bytes: UnsafeBufferPointer<UInt8>, colon: Int) {
        guard let scheme = Self.scheme(bytes[..<colon]) else { return nil }
        let rest = UnsafeBufferPointer(rebasing: bytes[(colon + 1)...])
        guard !rest.isEmpty, rest.allSatisfy(Grammar.isURIByte) else { return nil }
        self.scheme = scheme

        var hostStart = 0
        if let at = rest.firstIndex(of: ASCII.at) {
            let userinfo = rest[..<at]
            if let colon = userinfo.firstIndex(of: ASCII.colon) {
                user = String(decoding: userinfo[..<colon], as: UTF8.self)
                password = String(decoding: userinfo[(colon + 1)...], as: UTF8.self)
            } else {
                user = String(decoding: userinfo, as: UTF8.self)
            }
            guard user?.isEmpty == false else { return nil }
            hostStart = at + 1
        }

        let hostEnd = rest[hostStart...].firstIndex { $0 == ASCII.semicolon || $0 == ASCII.question } ?? rest.count
        guard let (host, port) = Self.parseHostPort(rest[hostStart..<hostEnd]) else { return nil }
        self.host = host
        self.port = port

        let parametersEnd = rest[hostEnd...].firstIndex(of: ASCII.question) ?? rest.count
        let parameters = hostEnd < parametersEnd ? Self.parsePairs(rest[(hostEnd + 1)..<parametersEnd], ASCII.semicolon) : []
        let headers = parametersEnd < rest.count ? Self.parsePairs(rest[(parametersEnd + 1)...], ASCII.ampersand) : []
        guard let parameters, let headers else { return nil }
        self.parameters = parameters
        self.headers = headers
    }

    /// The URI in its wire form.
    public var description: String {
        var text = scheme + ":"
        if let user {
            text += user
            if let password { text += ":" + password }
            text += "@"
        }
        text += host
        if let port { text += ":\(port)" }
        text += parameters.serialized
        if !headers.isEmpty {
            text += "?" + headers.map(\.description).joined(separator: "&")
        }
        return text
    }

    /// The user part with `%XX` escapes decoded (RFC 3261 §19.1.4 compares users unescaped).
    public var unescapedUser: String? {
        user.map(Grammar.percentDecoded)
    }

    /// The `transport` parameter, lower-cased.
    public var transport: String? {
        parameters.value(for: "transport")?.lowercased()
    }

    /// Whether the `lr` parameter marks a loose router (RFC 3261 §16.12).
    public var isLooseRouter: Bool {
        parameters.contains(named: "lr")
    }

    /// `host` or `host:port`.
    public var hostPort: String {
        port.map { "\(host):\($0)" } ?? host
    }

    /// `sip` or `sips` when `bytes` are either in any case.
    static func scheme(_ bytes: UnsafeBufferPointer<UInt8>.SubSequence) -> String? {
        let start = bytes.startIndex
        func letter(_ offset: Int) -> UInt8 { Grammar.lowercased(bytes[start + offset]) }
        guard bytes.count == 3 || bytes.count == 4, letter(0) == UInt8(ascii: "s"), letter(1) == UInt8(ascii: "i"),
              letter(2) == UInt8(ascii: "p")
        else { return nil }
        if bytes.count == 3 { return "sip" }
        return letter(3) == UInt8(ascii: "s") ? "sips" : nil
    }

    /// Parses `host [":" port]`, accepting an IPv6 reference in brackets.
    static func parseHostPort(_ bytes: UnsafeBufferPointer<UInt8>.SubSequence) -> (String, UInt16?)? {
        guard let first = bytes.first else { return nil }
        let hostEnd: Int
        if first == ASCII.openBracket {
            guard let close = bytes.firstIndex(of: ASCII.closeBracket) else { return nil }
            let inner = bytes[(bytes.startIndex + 1)..<close]
            guard !inner.isEmpty, inner.allSatisfy({ isHexDigit($0) || $0 == ASCII.colon || $0 == UInt8(ascii: ".") })
            else { return nil }
            hostEnd = close + 1
        } else {
            hostEnd = bytes.firstIndex(of: ASCII.colon) ?? bytes.endIndex
            let name = bytes[bytes.startIndex..<hostEnd]
            guard !name.isEmpty, name.allSatisfy(isHostByte) else { return nil }
        }
        let host = String(decoding: bytes[bytes.startIndex..<hostEnd], as: UTF8.self)
        guard hostEnd < bytes.endIndex else { return (host, nil) }
        guard bytes[hostEnd] == ASCII.colon, let port = Grammar.decimal(bytes[(hostEnd + 1)...], as: UInt16.self)
        else { return nil }
        return (host, port)
    }

    private static func isHostByte(_ byte: UInt8) -> Bool {
        isHexDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        Grammar.isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
    }

    /// The `separator`-separated pairs of `bytes`, walked in place rather than split into an array of pieces;
    /// nil when a piece is malformed (empty, or `=value` without a name).
    private static func parsePairs(_ bytes: UnsafeBufferPointer<UInt8>.SubSequence, _ separator: UInt8) -> [SIPParameter]? {
        var pairs: [SIPParameter] = []
        var start = bytes.startIndex
        while true {
            let end = bytes[start...].firstIndex(of: separator) ?? bytes.endIndex
            guard let pair = parsePair(bytes[start..<end]) else { return nil }
            pairs.append(pair)
            guard end < bytes.endIndex else { return pairs }
            start = end + 1
        }
    }

    private static func parsePair(_ bytes: UnsafeBufferPointer<UInt8>.SubSequence) -> SIPParameter? {
        guard let equals = bytes.firstIndex(of: ASCII.equals) else {
            return bytes.isEmpty ? nil : SIPParameter(String(decoding: bytes, as: UTF8.self))
        }
        guard equals > bytes.startIndex else { return nil }
        return SIPParameter(
            String(decoding: bytes[..<equals], as: UTF8.self), String(decoding: bytes[(equals + 1)...], as: UTF8.self))
    }
}

/// Any URI a request line or an address may carry: a SIP URI, or another scheme kept verbatim (`tel:`,
/// `http:`, any RFC 3986 absolute URI) so that such a request still parses and can be answered 416.
///
/// ```swift
/// switch request.uri {
/// case .sip(let uri): route(uri)
/// case .other(let scheme, _): reject(416, scheme)
/// }
/// ```
public enum SIPAnyURI: Sendable, Hashable, LosslessStringConvertible {
    /// A `sip:` or `sips:` URI.
    case sip(SIPURI)
    /// Any other scheme (lower-cased) with the whole URI as written.
    case other(scheme: String, raw: String)

    /// Parses an absolute URI; nil when malformed (no scheme, spaces, `<`, `>`, quotes...).
    public init?(_ description: String) {
        var text = description
        guard let uri = text.withUTF8({ SIPAnyURI($0, raw: description) }) else { return nil }
        self = uri
    }

    /// Parses the URI in `bytes`; `raw` is their text when the caller has it, so that `.other` need not decode
    /// it again.
    init?(_ bytes: UnsafeBufferPointer<UInt8>, raw: String? = nil) {
        guard let colon = bytes.firstIndex(of: ASCII.colon) else { return nil }
        let schemeBytes = bytes[..<colon]
        guard let first = schemeBytes.first, Self.isAlpha(first),
              schemeBytes.allSatisfy({ Self.isAlpha($0) || Grammar.isDigit($0) || $0 == UInt8(ascii: "+")
                  || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") })
        else { return nil }
        if SIPURI.scheme(schemeBytes) != nil {
            guard let uri = SIPURI(bytes, colon: colon) else { return nil }
            self = .sip(uri)
            return
        }
        let rest = bytes[(colon + 1)...]
        guard !rest.isEmpty, rest.allSatisfy(Grammar.isURIByte) else { return nil }
        self = .other(
            scheme: Grammar.asciiLowercased(schemeBytes), raw: raw ?? String(decoding: bytes, as: UTF8.self))
    }

    /// The URI in its wire form.
    public var description: String {
        switch self {
        case .sip(let uri): uri.description
        case .other(_, let raw): raw
        }
    }

    /// The scheme, lower-cased.
    public var scheme: String {
        switch self {
        case .sip(let uri): uri.scheme
        case .other(let scheme, _): scheme
        }
    }

    /// The SIP URI, when this is one.
    public var sipURI: SIPURI? {
        if case .sip(let uri) = self { uri } else { nil }
    }

    private static func isAlpha(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }
}
