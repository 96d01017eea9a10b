/// A SIP request (RFC 3261 §7.1).
///
/// ```swift
/// var options = SIPRequest(method: .options, uri: .sip(SIPURI(host: "example.com")))
/// options.headers.add("Max-Forwards", "70")
/// let bytes = options.serialized()
/// ```
public struct SIPRequest: Sendable, Hashable, SIPMessageFields {
    /// The method.
    public var method: SIPMethod
    /// The Request-URI.
    public var uri: SIPAnyURI
    /// The protocol version, `SIP/2.0`.
    public var version: String
    /// The header fields in order.
    public var headers: SIPHeaders
    /// The body bytes.
    public var body: [UInt8]

    /// Creates a request.
    public init(method: SIPMethod, uri: SIPAnyURI, version: String = "SIP/2.0", headers: SIPHeaders = [], body: [UInt8] = []) {
        self.method = method
        self.uri = uri
        self.version = version
        self.headers = headers
        self.body = body
    }

    /// The message on the wire; Content-Length is set to the body's length.
    public func serialized() -> [UInt8] {
        serializeMessage(startLine: (method.rawValue, uri.description, version), headers: headers, body: body)
    }
}

/// A SIP response (RFC 3261 §7.2).
public struct SIPResponse: Sendable, Hashable, SIPMessageFields {
    /// The status code, 100...699.
    public var status: Int
    /// The reason phrase (may be empty).
    public var reason: String
    /// The protocol version, `SIP/2.0`.
    public var version: String
    /// The header fields in order.
    public var headers: SIPHeaders
    /// The body bytes.
    public var body: [UInt8]

    /// Creates a response; the reason defaults to ``standardReason(for:)``.
    public init(status: Int, reason: String? = nil, version: String = "SIP/2.0", headers: SIPHeaders = [], body: [UInt8] = []) {
        self.status = status
        self.reason = reason ?? Self.standardReason(for: status)
        self.version = version
        self.headers = headers
        self.body = body
    }

    /// Builds a response to `request` as a UAS does (RFC 3261 §8.2.6): copies every Via in order, From, To,
    /// Call-ID and CSeq, and adds `toTag` to To when To has no tag yet.
    ///
    /// ```swift
    /// let ringing = SIPResponse(replyingTo: invite, status: 180, toTag: "a6c85cf")
    /// ```
    public init(replyingTo request: SIPRequest, status: Int, reason: String? = nil, toTag: String? = nil) {
        var headers = SIPHeaders()
        headers.reserveCapacity(request.headers.count)
        var firstTo = true
        for field in request.headers {
            switch field.key {
            case .via, .from, .callID, .cseq:
                headers.append(field)
            case .to:
                // Appending keeps the client's To byte-for-byte, which is what §8.2.6.2 asks for. The parser has
                // parsed the first To line already.
                let to = firstTo ? request.to : NameAddress(field.value)
                firstTo = false
                let untagged = to.map { $0.tag == nil } ?? false
                if let toTag, untagged {
                    headers.add(field.name, field.value + ";tag=" + toTag)
                } else {
                    headers.append(field)
                }
            default:
                break
            }
        }
        self.init(status: status, reason: reason, headers: headers)
    }

    /// The message on the wire; Content-Length is set to the body's length.
    public func serialized() -> [UInt8] {
        serializeMessage(startLine: (version, String(status), reason), headers: headers, body: body)
    }

    /// Whether the status is 1xx.
    public var isProvisional: Bool { (100..<200).contains(status) }
    /// Whether the status is 2xx.
    public var isSuccess: Bool { (200..<300).contains(status) }

    /// The reason phrase RFC 3261 §21 (and later RFCs) give for `status`; for an unregistered code, the class
    /// name (`Client Error` for 4xx...).
    public static func standardReason(for status: Int) -> String {
        if let phrase = reasonPhrases[status] { return phrase }
        switch status {
        case 100..<200: return "Provisional"
        case 200..<300: return "Success"
        case 300..<400: return "Redirection"
        case 400..<500: return "Client Error"
        case 500..<600: return "Server Error"
        case 600..<700: return "Global Failure"
        default: return "Unknown"
        }
    }

    private static let reasonPhrases: [Int: String] = [
        100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
        199: "Early Dialog Terminated", 200: "OK", 202: "Accepted", 204: "No Notification",
        300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
        380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
        403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
        407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone", 412: "Conditional Request Failed",
        413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
        416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
        421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
        428: "Use Identity Header", 429: "Provide Referrer Identity", 430: "Flow Failed",
        433: "Anonymity Disallowed", 436: "Bad Identity-Info", 437: "Unsupported Certificate",
        438: "Invalid Identity Header", 439: "First Hop Lacks Outbound Support", 440: "Max-Breadth Exceeded",
        469: "Bad Info Package", 470: "Consent Needed", 480: "Temporarily Unavailable",
        481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
        484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
        488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
        494: "Security Agreement Required", 500: "Server Internal Error", 501: "Not Implemented",
        502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
        513: "Message Too Large", 580: "Precondition Failure", 600: "Busy Everywhere", 603: "Decline",
        604: "Does Not Exist Anywhere", 606: "Not Acceptable", 607: "Unwanted", 608: "Rejected",
    ]
}

/// A parsed SIP message.
public enum SIPMessage: Sendable, Hashable, SIPMessageFields {
    /// A request.
    case request(SIPRequest)
    /// A response.
    case response(SIPResponse)

    /// The header fields of either kind.
    public var headers: SIPHeaders {
        get {
            switch self {
            case .request(let request): request.headers
            case .response(let response): response.headers
            }
        }
        set {
            switch self {
            case .request(var request):
                request.headers = newValue
                self = .request(request)
            case .response(var response):
                response.headers = newValue
                self = .response(response)
            }
        }
    }

    /// The body bytes of either kind.
    public var body: [UInt8] {
        switch self {
        case .request(let request): request.body
        case .response(let response): response.body
        }
    }

    /// The message on the wire.
    public func serialized() -> [UInt8] {
        switch self {
        case .request(let request): request.serialized()
        case .response(let response): response.serialized()
        }
    }
}

/// Typed views of the common header fields, shared by requests, responses and ``SIPMessage``.
///
/// Every accessor returns nil (or an empty array) when the field is absent or its value does not parse. The
/// parser rejects messages whose Via, From, To, Contact, CSeq, Call-ID or Content-Length are malformed, so on a
/// parsed message nil means "absent".
public protocol SIPMessageFields {
    /// The header fields.
    var headers: SIPHeaders { get set }
    /// The body.
    var body: [UInt8] { get }
}

extension SIPMessageFields {
    /// The Call-ID.
    // The typed accessors take the values the parser parsed when it checked the fields (`headers.parsed`); on
    // headers built or changed since, they parse the text.

    /// The Call-ID.
    public var callID: String? { headers.first(.callID) }

    /// The CSeq.
    public var cseq: CSeq? {
        if let parsed = headers.parsed { return parsed.cseq }
        return headers.first(.cseq).flatMap(CSeq.init)
    }

    /// The From address.
    public var from: NameAddress? {
        if let parsed = headers.parsed { return parsed.from }
        return headers.first(.from).flatMap(NameAddress.init)
    }

    /// The To address.
    public var to: NameAddress? {
        if let parsed = headers.parsed { return parsed.to }
        return headers.first(.to).flatMap(NameAddress.init)
    }

    /// Every Via value, top first.
    public var vias: [Via] {
        if let parsed = headers.parsed { return parsed.vias }
        return headers.values(.via).compactMap(Via.init)
    }

    /// The top Via, the one this hop's transaction layer uses.
    public var topVia: Via? {
        if let parsed = headers.parsed { return parsed.vias.first }
        return headers.first(.via).flatMap(Via.init)
    }

    /// Every Contact address; the wildcard `*` of a REGISTER is not an address and is left out.
    public var contacts: [NameAddress] {
        if let parsed = headers.parsed { return parsed.contacts }
        return headers.values(.contact).compactMap(NameAddress.init)
    }

    /// Max-Forwards; nil when absent or outside 0...255.
    public var maxForwards: Int? {
        headers.first(.maxForwards).flatMap { Grammar.isDigits($0) ? Int($0) : nil }
            .flatMap { $0 <= 255 ? $0 : nil }
    }

    /// Content-Length as declared (not the body's actual length).
    public var contentLength: Int? {
        headers.first(.contentLength).flatMap { Grammar.isDigits($0) ? Int($0) : nil }
    }

    /// Content-Type as written, parameters included.
    public var contentType: String? { headers.first(.contentType) }
}

/// Writes start line, headers with the real Content-Length, blank line and body into one buffer sized up
/// front. The first Content-Length line keeps its position and spelling and later ones are dropped, as
/// ``SIPHeaders/set(_:_:)`` would, without copying the headers to change them.
private func serializeMessage(startLine: (String, String, String), headers: SIPHeaders, body: [UInt8]) -> [UInt8] {
    let contentLength = String(body.count)
    var capacity = startLine.0.utf8.count + startLine.1.utf8.count + startLine.2.utf8.count + 4
        + "Content-Length: \r\n\r\n".utf8.count + contentLength.utf8.count
    for field in headers { capacity += field.name.utf8.count + field.value.utf8.count + 4 }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(capacity + body.count)

    // Copied from each string's storage: appending a UTF-8 view goes byte by byte.
    func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    func appendLine(_ name: String, _ value: String) {
        append(name)
        bytes.append(ASCII.colon)
        if !value.isEmpty {
            bytes.append(ASCII.space)
            append(value)
        }
        bytes.append(ASCII.cr)
        bytes.append(ASCII.lf)
    }

    append(startLine.0)
    bytes.append(ASCII.space)
    append(startLine.1)
    bytes.append(ASCII.space)
    append(startLine.2)
    bytes.append(ASCII.cr)
    bytes.append(ASCII.lf)
    var wroteContentLength = false
    for field in headers {
        guard field.key == .contentLength else {
            appendLine(field.name, field.value)
            continue
        }
        if !wroteContentLength { appendLine(field.name, contentLength) }
        wroteContentLength = true
    }
    if !wroteContentLength { appendLine("Content-Length", contentLength) }
    bytes.append(ASCII.cr)
    bytes.append(ASCII.lf)
    bytes.append(contentsOf: body)
    return bytes
}
