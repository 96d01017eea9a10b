/// One Via header field value (RFC 3261 §20.42, §18.2.1, RFC 3581 for `rport`).
///
/// ```swift
/// var via = Via(transport: "UDP", host: "192.0.2.1", port: 5060, branch: Via.magicCookie + "a1b2")
/// via.received = "198.51.100.7"
/// via.rport = .port(40123)
/// ```
public struct Via: Sendable, Hashable, LosslessStringConvertible {
    /// The prefix of every RFC 3261 branch (§8.1.1.7); a branch without it comes from an RFC 2543 client.
    public static let magicCookie = "z9hG4bK"

    /// The `rport` parameter: requested by the client (flag) or filled in by the server (RFC 3581).
    public enum RPort: Sendable, Hashable {
        /// `;rport` without value: the client asks for the source port.
        case requested
        /// `;rport=N`.
        case port(UInt16)
    }

    /// The protocol name, `SIP`.
    public var protocolName: String
    /// The protocol version, `2.0`.
    public var protocolVersion: String
    /// The transport as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`...).
    public var transport: String
    /// The sent-by host: a name, an IPv4 address or an IPv6 reference in brackets.
    public var host: String
    /// The sent-by port, when given.
    public var port: UInt16?
    /// The `via-params`, in order.
    public var parameters: [SIPParameter]

    /// Creates a Via for `SIP/2.0`.
    public init(transport: String, host: String, port: UInt16? = nil, branch: String? = nil, parameters: [SIPParameter] = []) {
        protocolName = "SIP"
        protocolVersion = "2.0"
        self.transport = transport
        self.host = host
        self.port = port
        self.parameters = parameters
        if let branch { self.parameters.set("branch", branch) }
    }

    /// Parses one `via-parm`; LWS is accepted around `/`, `:`, `;` and `=` as the grammar allows.
    public init?(_ description: String) {
        guard let via = ValueScanner.scan(description, Self.init(scanning:)) else { return nil }
        self = via
    }

    private init?(scanning scanner: inout ValueScanner) {
        scanner.skipWhitespace()
        guard let name = scanner.readToken() else { return nil }
        scanner.skipWhitespace()
        guard scanner.consume(ASCII.slash) else { return nil }
        scanner.skipWhitespace()
        guard let version = scanner.readToken() else { return nil }
        scanner.skipWhitespace()
        guard scanner.consume(ASCII.slash) else { return nil }
        scanner.skipWhitespace()
        guard let transport = scanner.readToken() else { return nil }
        scanner.skipWhitespace()
        var sentBy = scanner.read { $0 != ASCII.semicolon && !Grammar.isWhitespace($0) && $0 != ASCII.colon }
        if sentBy.hasPrefix("["), !sentBy.hasSuffix("]") {
            sentBy += scanner.read { $0 != ASCII.closeBracket }
            guard scanner.consume(ASCII.closeBracket) else { return nil }
            sentBy += "]"
        }
        scanner.skipWhitespace()
        if scanner.consume(ASCII.colon) {
            scanner.skipWhitespace()
            sentBy += ":" + scanner.read(while: Grammar.isDigit)
        }
        guard let (host, port) = sentBy.withUTF8({ SIPURI.parseHostPort($0[...]) }),
              let parameters = scanner.readParameters()
        else { return nil }
        protocolName = name
        protocolVersion = version
        self.transport = transport
        self.host = host
        self.port = port
        self.parameters = parameters
    }

    /// `SIP/2.0/UDP host:port;params`.
    public var description: String {
        "\(protocolName)/\(protocolVersion)/\(transport) \(sentBy)\(parameters.serialized)"
    }

    /// `host` or `host:port`.
    public var sentBy: String {
        port.map { "\(host):\($0)" } ?? host
    }

    /// The `branch` parameter, the transaction identifier (RFC 3261 §17.2.3).
    public var branch: String? {
        get { parameters.value(for: "branch") }
        set { setParameter("branch", newValue) }
    }

    /// Whether the branch starts with ``magicCookie``, i.e. the client follows RFC 3261 transaction rules.
    public var hasMagicCookie: Bool {
        branch?.hasPrefix(Self.magicCookie) ?? false
    }

    /// The `received` parameter (RFC 3261 §18.2.1).
    public var received: String? {
        get { parameters.value(for: "received") }
        set { setParameter("received", newValue) }
    }

    /// The `rport` parameter (RFC 3581); nil when absent or not a port number.
    public var rport: RPort? {
        get {
            guard parameters.contains(named: "rport") else { return nil }
            guard let value = parameters.value(for: "rport") else { return .requested }
            return UInt16(value).map(RPort.port)
        }
        set {
            switch newValue {
            case nil: parameters.remove(named: "rport")
            case .requested: parameters.set("rport", nil)
            case .port(let port): parameters.set("rport", String(port))
            }
        }
    }

    /// The `maddr` parameter.
    public var maddr: String? {
        parameters.value(for: "maddr")
    }

    /// The `ttl` parameter; nil when absent or out of 0...255.
    public var ttl: UInt8? {
        parameters.value(for: "ttl").flatMap { UInt8($0) }
    }

    private mutating func setParameter(_ name: String, _ value: String?) {
        if let value { parameters.set(name, value) } else { parameters.remove(named: name) }
    }
}

/// The CSeq header field: sequence number and method (RFC 3261 §20.16).
public struct CSeq: Sendable, Hashable, LosslessStringConvertible {
    /// The sequence number; the grammar bounds it to 32 bits.
    public var sequence: UInt32
    /// The method of the request.
    public var method: SIPMethod

    /// Creates a CSeq.
    public init(sequence: UInt32, method: SIPMethod) {
        self.sequence = sequence
        self.method = method
    }

    /// Parses `1*DIGIT LWS Method`; nil when the number exceeds 2^32-1 or the method is not a token.
    public init?(_ description: String) {
        guard let cseq = ValueScanner.scan(description, Self.init(scanning:)) else { return nil }
        self = cseq
    }

    private init?(scanning scanner: inout ValueScanner) {
        scanner.skipWhitespace()
        let digits = scanner.read(while: Grammar.isDigit)
        guard let sequence = UInt32(digits) else { return nil }
        let beforeSpace = scanner.index
        scanner.skipWhitespace()
        guard scanner.index > beforeSpace, let token = scanner.readToken(), let method = SIPMethod(rawValue: token)
        else { return nil }
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { return nil }
        self.sequence = sequence
        self.method = method
    }

    /// `sequence METHOD`.
    public var description: String {
        "\(sequence) \(method)"
    }
}
