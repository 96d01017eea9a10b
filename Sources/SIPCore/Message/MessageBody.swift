/// A `type/subtype` with its parameters, as a Content-Type field carries it (RFC 2045 §5.1).
///
/// ```swift
/// let type = MediaType(parsing: "multipart/mixed;boundary=\"unique-boundary-1\"")
/// type?.essence          // "multipart/mixed"
/// type?.parameter("boundary") // "unique-boundary-1"
/// ```
public struct MediaType: Sendable, Hashable {
    /// `type/subtype`, lower-cased.
    public var essence: String
    /// The parameters as written.
    public var parameters: [SIPParameter]

    /// Parses a Content-Type value; nil when it is not `token/token *(;param)`.
    public init?(parsing value: String) {
        let parsed = ValueScanner.scan(value) { scanner -> (type: String, subtype: String, [SIPParameter])? in
            scanner.skipWhitespace()
            guard let type = scanner.readToken() else { return nil }
            scanner.skipWhitespace()
            guard scanner.consume(ASCII.slash) else { return nil }
            scanner.skipWhitespace()
            guard let subtype = scanner.readToken(), let parameters = scanner.readParameters() else { return nil }
            return (type, subtype, parameters)
        }
        guard let (type, subtype, parameters) = parsed else { return nil }
        essence = "\(type)/\(subtype)".lowercased()
        self.parameters = parameters
    }

    /// A parameter's value without its quotes; nil when absent or a flag.
    public func parameter(_ name: String) -> String? {
        guard let value = parameters.value(for: name) else { return nil }
        guard value.hasPrefix("\""), value.count >= 2 else { return value }
        return ValueScanner.scan(value) { $0.readQuotedString() }
    }
}

/// The session description a message body carries: the body itself when it is `application/sdp`, or the
/// `application/sdp` part of a `multipart/mixed` body — what a SIP-I trunk sends, SDP beside an ISUP part
/// (RFC 3204, RFC 5621).
///
/// ```swift
/// switch try MessageBody.sessionDescription(of: invite) {
/// case .sdp(let bytes): offer = bytes
/// case .none: offer = nil   // no body (or only optional parts): a delayed offer
/// case .otherwise(let type): refuse415(type)
/// }
/// ```
public enum MessageBody {
    /// What a body holds, as far as a session is concerned.
    public enum Session: Sendable, Hashable {
        /// No body, or a multipart body of optional parts only.
        case none
        /// The SDP bytes.
        case sdp([UInt8])
        /// A body with no SDP to offer or answer, or with a part the receiver must understand and cannot
        /// (`Content-Disposition: ...;handling=required`, RFC 5621 §9.1): its media type.
        case otherwise(String)
    }

    /// Why a multipart body could not be read.
    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        case contentTypeMissing
        case contentTypeMalformed
        case boundaryMissing
        case delimiterMissing
        case closeDelimiterMissing
        case partHeaderMalformed(part: Int)
        case tooManyParts(limit: Int)

        public var description: String {
            switch self {
            case .contentTypeMissing: return "a body without Content-Type"
            case .contentTypeMalformed: return "Content-Type is not type/subtype"
            case .boundaryMissing: return "multipart Content-Type without a boundary"
            case .delimiterMissing: return "multipart body without its boundary line"
            case .closeDelimiterMissing: return "multipart body without its closing boundary"
            case .partHeaderMalformed(let part): return "multipart part \(part) has a malformed header line"
            case .tooManyParts(let limit): return "multipart body with more than \(limit) parts"
            }
        }
    }

    /// One part of a multipart body.
    public struct Part: Sendable, Hashable {
        /// The part's own header fields (Content-Type, Content-Disposition, ...).
        public var headers: [SIPHeader]
        /// The part's content.
        public var content: [UInt8]

        /// The part's media type; `text/plain` when it names none (RFC 2046 §5.1).
        public var mediaType: String {
            field("content-type").flatMap(MediaType.init(parsing:))?.essence ?? "text/plain"
        }

        /// Whether the receiver must understand this part (`handling=required`; RFC 5621 §9.1: the default is
        /// required for a session description and optional otherwise for `signal`, `alert`, `icon`, `render`).
        public var isRequired: Bool {
            guard let disposition = field("content-disposition") else { return false }
            let handling = ValueScanner.scan(disposition) { scanner in
                _ = scanner.readToken()
                return scanner.readParameters()?.value(for: "handling")
            }
            return handling.map { Grammar.equalsIgnoringCase($0, "required") } ?? false
        }

        private func field(_ name: String) -> String? {
            headers.first { Grammar.equalsIgnoringCase($0.name, name) }?.value
        }
    }

    /// A SIP message carries few parts; a body of hundreds is an attack on the parser, not a call.
    public static let partLimit = 16

    /// What `body` (of the given Content-Type) holds for the session.
    public static func session(of body: [UInt8], contentType: String?) throws(ParseError) -> Session {
        guard !body.isEmpty else { return .none }
        guard let contentType else { throw .contentTypeMissing }
        guard let type = MediaType(parsing: contentType) else { throw .contentTypeMalformed }
        switch type.essence {
        case "application/sdp":
            return .sdp(body)
        case "multipart/mixed":
            let parts = try parts(of: body, type: type)
            if let required = parts.first(where: { $0.isRequired && $0.mediaType != "application/sdp" }) {
                return .otherwise(required.mediaType)
            }
            // Only optional parts (an ISUP part, say) and no SDP: as good as no body for the session.
            guard let sdp = parts.first(where: { $0.mediaType == "application/sdp" }) else { return .none }
            return .sdp(sdp.content)
        default:
            return .otherwise(type.essence)
        }
    }

    /// A non-empty body that is SDP alone (`application/sdp`, not a part of a multipart body).
    public static func isSDP(_ body: [UInt8], contentType: String?) -> Bool {
        !body.isEmpty && contentType.flatMap(MediaType.init(parsing:))?.essence == "application/sdp"
    }

    /// What a message's body holds for the session.
    public static func sessionDescription(of message: some SIPMessageFields) throws(ParseError) -> Session {
        try session(of: message.body, contentType: message.contentType)
    }

    /// The SDP a message carries, alone or as a part; nil when it carries none or its body cannot be read.
    public static func sdp(of message: some SIPMessageFields) -> [UInt8]? {
        guard case .sdp(let bytes) = try? sessionDescription(of: message) else { return nil }
        return bytes
    }

    /// The parts of a `multipart/*` body (RFC 2046 §5.1.1): a preamble, then parts each opened by a
    /// `--boundary` line, then `--boundary--` and an epilogue. A part is header lines, an empty line, and its
    /// content up to the CRLF before the next boundary line. Lines may end in LF alone, as lenient peers write.
    public static func parts(of body: [UInt8], type: MediaType) throws(ParseError) -> [Part] {
        guard let boundary = type.parameter("boundary"), !boundary.isEmpty, boundary.utf8.count <= 70 else {
            throw .boundaryMissing
        }
        let dashBoundary = Array("--\(boundary)".utf8)
        guard var lineStart = firstDelimiter(dashBoundary, in: body) else { throw .delimiterMissing }
        var parts: [Part] = []
        while true {
            // After a boundary line's `--boundary`: `--` closes the body; otherwise padding, then the line's end.
            var index = lineStart + dashBoundary.count
            if index + 1 < body.count, body[index] == UInt8(ascii: "-"), body[index + 1] == UInt8(ascii: "-") {
                return parts
            }
            while index < body.count, Grammar.isWhitespace(body[index]) { index += 1 }
            if index < body.count, body[index] == ASCII.cr { index += 1 }
            guard index < body.count, body[index] == ASCII.lf else { throw .closeDelimiterMissing }
            let partStart = index + 1
            guard let next = nextDelimiter(dashBoundary, in: body, from: partStart) else { throw .closeDelimiterMissing }
            guard parts.count < partLimit else { throw .tooManyParts(limit: partLimit) }
            parts.append(try part(body[partStart..<next.contentEnd], number: parts.count + 1))
            lineStart = next.lineStart
        }
    }

    /// The first `--boundary` at the start of a line (the body's first line included).
    private static func firstDelimiter(_ dashBoundary: [UInt8], in body: [UInt8]) -> Int? {
        if body.starts(with: dashBoundary), isDelimiterEnd(body, at: dashBoundary.count) { return 0 }
        return nextDelimiter(dashBoundary, in: body, from: 0)?.lineStart
    }

    /// The next line that starts with `--boundary` at or after `from`: where the content before it ends (its
    /// line break belongs to the delimiter) and where the boundary line starts.
    private static func nextDelimiter(_ dashBoundary: [UInt8], in body: [UInt8], from: Int) -> (contentEnd: Int, lineStart: Int)? {
        var index = from
        while index < body.count {
            if body[index] == ASCII.lf, body[(index + 1)...].starts(with: dashBoundary),
               isDelimiterEnd(body, at: index + 1 + dashBoundary.count) {
                let contentEnd = index > from && body[index - 1] == ASCII.cr ? index - 1 : index
                return (contentEnd, index + 1)
            }
            index += 1
        }
        return nil
    }

    /// A boundary line is `--boundary` then `--`, padding or the line's end: `--boundaryX` is content.
    private static func isDelimiterEnd(_ body: [UInt8], at index: Int) -> Bool {
        guard index < body.count else { return true }
        let byte = body[index]
        return byte == UInt8(ascii: "-") || Grammar.isWhitespace(byte) || byte == ASCII.cr || byte == ASCII.lf
    }

    /// A part's header lines up to the empty line, then its content. A part with no header lines starts with
    /// the empty line (its type is then text/plain).
    private static func part(_ bytes: ArraySlice<UInt8>, number: Int) throws(ParseError) -> Part {
        var headers: [SIPHeader] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            var lineEnd = index
            while lineEnd < bytes.endIndex, bytes[lineEnd] != ASCII.lf { lineEnd += 1 }
            let contentEnd = lineEnd > index && bytes[lineEnd - 1] == ASCII.cr ? lineEnd - 1 : lineEnd
            let next = min(lineEnd + 1, bytes.endIndex)
            if contentEnd == index { return Part(headers: headers, content: Array(bytes[next...])) }
            let line = String(decoding: bytes[index..<contentEnd], as: UTF8.self)
            guard let colon = line.firstIndex(of: ":") else { throw .partHeaderMalformed(part: number) }
            let name = Grammar.trimmed(String(line[..<colon]))
            guard !name.isEmpty, name.utf8.allSatisfy(Grammar.isTokenByte) else { throw .partHeaderMalformed(part: number) }
            headers.append(SIPHeader(name: name, value: Grammar.trimmed(String(line[line.index(after: colon)...]))))
            index = next
        }
        // Header lines and no empty line: a part without content.
        return Part(headers: headers, content: [])
    }
}
