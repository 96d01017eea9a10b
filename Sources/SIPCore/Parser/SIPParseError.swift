/// Why bytes are not a SIP message, with the status to answer and, for a request, enough of its header fields
/// to answer it.
///
/// ```swift
/// do {
///     let message = try parser.parse(datagram)
/// } catch {
///     if let response = error.errorResponse() { send(response) }
/// }
/// ```
public struct SIPParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The class of failure.
    public enum Kind: Sendable, Hashable {
        /// The message or its body exceeds the limits (513).
        case tooLarge
        /// A line of the start line or headers exceeds ``SIPParserLimits/maxLineLength``.
        case lineTooLong
        /// More header lines than ``SIPParserLimits/maxHeaderCount``.
        case tooManyHeaders
        /// The start line is neither a Request-Line nor a Status-Line.
        case badStartLine
        /// The SIP version is not `SIP/2.0` (505).
        case badVersion
        /// The Request-URI is malformed.
        case badURI
        /// A header line, or the value of a header the parser checks, is malformed.
        case badHeader
        /// The header section does not end with an empty line.
        case unterminatedHeaders
        /// Content-Length is not a number in range, or is missing on a stream.
        case badContentLength
        /// Content-Length announces more bytes than there are.
        case truncatedBody
    }

    /// The class of failure.
    public var kind: Kind
    /// What is wrong, for logs and diagnostics.
    public var reason: String
    /// The Via, From, To, Call-ID and CSeq lines of a request, salvaged as received; nil for a response, or when
    /// one of them could not be found.
    public var responseContext: SIPResponseContext?

    /// Creates an error.
    public init(kind: Kind, reason: String, responseContext: SIPResponseContext? = nil) {
        self.kind = kind
        self.reason = reason
        self.responseContext = responseContext
    }

    /// The status to answer: 513 too large, 505 bad version, 400 otherwise.
    public var status: Int {
        switch kind {
        case .tooLarge: 513
        case .badVersion: 505
        case .lineTooLong, .tooManyHeaders, .badStartLine, .badURI, .badHeader, .unterminatedHeaders,
             .badContentLength, .truncatedBody:
            400
        }
    }

    /// The response to send back (``status`` with its standard reason, the salvaged header lines copied as
    /// RFC 3261 §8.2.6 asks); nil when there is no ``responseContext``.
    public func errorResponse() -> SIPResponse? {
        responseContext.map { SIPResponse(status: status, headers: SIPHeaders($0.headers)) }
    }

    /// `kind: reason`.
    public var description: String {
        "\(kind): \(reason)"
    }
}

/// The header lines of a broken request that a response must copy (RFC 3261 §8.2.6.2), kept verbatim.
public struct SIPResponseContext: Sendable, Hashable {
    /// The Via lines in order, then From, To, Call-ID and CSeq, as received.
    public var headers: [SIPHeader]

    /// Salvages the context from a request's header lines; nil unless Via, From, To, Call-ID and CSeq are all
    /// present, since a response without them cannot be matched by the client.
    init?(requestHeaders: SIPHeaders) {
        var headers: [SIPHeader] = []
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            let lines = requestHeaders.lines(name)
            guard !lines.isEmpty else { return nil }
            headers += name == "Via" ? lines : [lines[0]]
        }
        self.headers = headers
    }
}
