/// Parses one SIP message: one UDP datagram, or one message cut from a TCP stream by ``SIPStreamFramer``.
///
/// The parser checks the syntax RFC 3261 §25 gives the start line and the header fields every element relies
/// on (Via, From, To, Contact, CSeq, Call-ID, Max-Forwards, Content-Length); other fields are kept as text.
/// Semantic checks an endpoint makes (missing fields, duplicates, unsupported extensions) are in
/// ``validateForEndpoint(_:supportedExtensions:supportedContentTypes:)``.
///
/// ```swift
/// let parser = SIPParser()
/// switch try parser.parse(datagram) {
/// case .request(let request): handle(request)
/// case .response(let response): match(response)
/// }
/// ```
public struct SIPParser: Sendable {
    /// The bounds the parser enforces.
    public var limits: SIPParserLimits

    /// Creates a parser.
    public init(limits: SIPParserLimits = SIPParserLimits()) {
        self.limits = limits
    }

    /// Parses `bytes` as one message. CRLFs before the start line are skipped (RFC 3261 §7.5); folded header
    /// lines are unfolded; bare LF line ends are tolerated, a bare CR is not, nor any other control byte but
    /// HTAB in the start line or a header outside a quoted-pair (400, the reason names the byte and its
    /// offset). Without Content-Length the body is the rest of the bytes (allowed on datagrams, §18.3); with
    /// it, bytes after the body are ignored.
    public func parse(_ bytes: [UInt8]) throws(SIPParseError) -> SIPMessage {
        guard bytes.count <= limits.maxMessageSize else {
            var reader = HeadReader(bytes: bytes[..<limits.maxMessageSize], limits: limits)
            try? reader.read()
            throw SIPParseError(
                kind: .tooLarge, reason: "message of \(bytes.count) bytes exceeds the limit of \(limits.maxMessageSize)",
                responseContext: reader.responseContext)
        }
        var reader = HeadReader(bytes: bytes[...], limits: limits)
        do throws(SIPParseError) {
            try reader.read()
        } catch {
            throw SIPParseError(kind: error.kind, reason: error.reason, responseContext: reader.responseContext)
        }
        // The context is salvaged only when a failure needs it, not on every message that parses.
        func failure(_ kind: SIPParseError.Kind, _ reason: String) -> SIPParseError {
            SIPParseError(kind: kind, reason: reason, responseContext: reader.responseContext)
        }

        let startLine = reader.startLine ?? ""

        let isResponse = startLine.hasPrefix("SIP/")
        let request = try isResponse ? nil : parseRequestLine(startLine, failure: failure)
        let status = try isResponse ? parseStatusLine(startLine, failure: failure) : nil
        let headers = SIPHeaders(reader.fields, parsed: try validate(reader.fields, failure: failure))

        let available = bytes.count - reader.bodyStart
        let bodyLength: Int
        if let declared = headers.first(.contentLength) {
            guard let length = Int(declared) else {
                throw failure(.badContentLength, "Content-Length \(declared.prefix(40)) is out of range")
            }
            guard length <= limits.maxBodySize else {
                throw failure(.tooLarge, "Content-Length \(length) exceeds the body limit of \(limits.maxBodySize)")
            }
            guard length <= available else {
                throw failure(.truncatedBody, "Content-Length announces \(length) bytes but \(available) follow")
            }
            bodyLength = length
        } else {
            guard available <= limits.maxBodySize else {
                throw failure(.tooLarge, "body of \(available) bytes exceeds the limit of \(limits.maxBodySize)")
            }
            bodyLength = available
        }
        let body = Array(bytes[reader.bodyStart..<(reader.bodyStart + bodyLength)])

        if let request {
            return .request(SIPRequest(method: request.method, uri: request.uri, headers: headers, body: body))
        }
        let (code, reason) = status ?? (0, "")
        return .response(SIPResponse(status: code, reason: reason, headers: headers, body: body))
    }

    /// `Method SP Request-URI SP SIP-Version` with exactly one space between elements (RFC 3261 §7.1, RFC 4475
    /// §3.1.2.8-10).
    private func parseRequestLine(
        _ line: String, failure: (SIPParseError.Kind, String) -> SIPParseError
    ) throws(SIPParseError) -> (method: SIPMethod, uri: SIPAnyURI) {
        // Splitting the bytes skips grapheme breaking; for an ASCII line it gives the same parts as splitting the
        // characters, and a non-ASCII line keeps the character rules.
        var text = line
        let ascii = text.withUTF8 { bytes in
            Result { () throws(SIPParseError) in try parseASCIIRequestLine(bytes, line: line, failure: failure) }
        }
        if let parsed = try ascii.get() { return parsed }
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw failure(.badStartLine, "Request-Line is not 'Method SP Request-URI SP SIP/2.0': \(line.prefix(120))")
        }
        guard let method = SIPMethod(rawValue: String(parts[0])) else {
            throw failure(.badStartLine, "method \(parts[0].prefix(40)) is not a token")
        }
        try checkVersion(String(parts[2]), failure: failure)
        guard let uri = SIPAnyURI(String(parts[1])) else {
            throw failure(.badURI, "malformed Request-URI \(parts[1].prefix(120))")
        }
        return (method, uri)
    }

    /// ``parseRequestLine(_:failure:)`` on the bytes of an ASCII line, without copying its parts; nil when the line
    /// is not ASCII.
    private func parseASCIIRequestLine(
        _ bytes: UnsafeBufferPointer<UInt8>, line: String, failure: (SIPParseError.Kind, String) -> SIPParseError
    ) throws(SIPParseError) -> (method: SIPMethod, uri: SIPAnyURI)? {
        var spaceCount = 0
        var (first, second) = (0, 0)
        for (index, byte) in bytes.enumerated() {
            if byte >= 0x80 { return nil }
            guard byte == ASCII.space else { continue }
            spaceCount += 1
            if spaceCount == 1 { first = index } else if spaceCount == 2 { second = index }
        }
        guard spaceCount == 2 else {
            throw failure(.badStartLine, "Request-Line is not 'Method SP Request-URI SP SIP/2.0': \(line.prefix(120))")
        }
        let methodName = String(decoding: bytes[..<first], as: UTF8.self)
        let uri = UnsafeBufferPointer(rebasing: bytes[(first + 1)..<second])
        guard let method = SIPMethod(rawValue: methodName) else {
            throw failure(.badStartLine, "method \(methodName.prefix(40)) is not a token")
        }
        try checkVersion(String(decoding: bytes[(second + 1)...], as: UTF8.self), failure: failure)
        guard let parsed = SIPAnyURI(uri) else {
            throw failure(.badURI, "malformed Request-URI \(String(decoding: uri, as: UTF8.self).prefix(120))")
        }
        return (method, parsed)
    }

    /// `SIP-Version SP Status-Code SP Reason-Phrase` (RFC 3261 §7.2); a missing reason phrase is tolerated.
    private func parseStatusLine(
        _ line: String, failure: (SIPParseError.Kind, String) -> SIPParseError
    ) throws(SIPParseError) -> (Int, String) {
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        try checkVersion(String(parts[0]), failure: failure)
        guard parts.count >= 2, parts[1].utf8.count == 3, Grammar.isDigits(parts[1]), let status = Int(parts[1]),
              (100...699).contains(status)
        else {
            throw failure(.badStartLine, "Status-Code is not three digits in 100...699: \(line.prefix(120))")
        }
        return (status, parts.count == 3 ? String(parts[2]) : "")
    }

    private func checkVersion(
        _ version: String, failure: (SIPParseError.Kind, String) -> SIPParseError
    ) throws(SIPParseError) {
        if Grammar.equalsIgnoringCase(version, "SIP/2.0") { return }
        let upper = version.uppercased()
        guard upper != "SIP/2.0" else { return }
        if upper.hasPrefix("SIP/") {
            throw failure(.badVersion, "unsupported version \(version.prefix(40))")
        }
        throw failure(.badStartLine, "malformed SIP-Version \(version.prefix(40))")
    }

    /// Checks the fields the transaction and dialog layers read, so that their typed accessors cannot fail, and
    /// keeps the typed values it parsed for those accessors.
    private func validate(
        _ fields: [SIPHeader], failure: (SIPParseError.Kind, String) -> SIPParseError
    ) throws(SIPParseError) -> ParsedFields {
        var vias: [Via] = []
        var contacts: [NameAddress] = []
        var from: NameAddress?
        var to: NameAddress?
        var cseq: CSeq?
        // Every element of every line is checked. A list field's accessor reads every element; a single-valued
        // field's accessor reads its first line.
        func parseAll<Value>(_ field: SIPHeader, _ parse: (String) -> Value?, into values: inout [Value]) -> Bool {
            Grammar.allListElements(in: field.value) { element in
                guard let value = parse(element) else { return false }
                values.append(value)
                return true
            }
        }
        func parseFirst<Value>(_ field: SIPHeader, _ parse: (String) -> Value?, into first: inout Value?) -> Bool {
            let value = parse(field.value)
            if first == nil { first = value }
            return value != nil
        }
        for field in fields {
            let valid: Bool
            switch field.key {
            case .via:
                valid = parseAll(field, { Via($0) }, into: &vias)
            case .from:
                valid = parseFirst(field, { NameAddress($0) }, into: &from)
            case .to:
                valid = parseFirst(field, { NameAddress($0) }, into: &to)
            case .contact:
                valid = field.value == "*" || parseAll(field, { NameAddress($0) }, into: &contacts)
            case .cseq:
                valid = parseFirst(field, { CSeq($0) }, into: &cseq)
            case .callID:
                valid = !field.value.isEmpty && !field.value.utf8.contains(where: Grammar.isWhitespace)
            case .maxForwards:
                valid = Grammar.isDigits(field.value)
            case .contentLength:
                guard Grammar.isDigits(field.value) else {
                    throw failure(.badContentLength, "Content-Length \(field.value.prefix(40)) is not a number")
                }
                valid = true
            default:
                valid = true
            }
            guard valid else {
                throw failure(.badHeader, "malformed \(field.name) header: \(field.value.prefix(120))")
            }
        }
        return ParsedFields(vias: vias, from: from, to: to, contacts: contacts, cseq: cseq)
    }
}

/// Splits the start line and header lines off the front of a message, unfolding continuation lines.
struct HeadReader {
    let bytes: ArraySlice<UInt8>
    let limits: SIPParserLimits
    private(set) var startLine: String?
    private(set) var fields: [SIPHeader] = []
    private(set) var bodyStart: Int

    init(bytes: ArraySlice<UInt8>, limits: SIPParserLimits) {
        self.bytes = bytes
        self.limits = limits
        bodyStart = bytes.endIndex
    }

    /// The lines a response must copy, when this is a request that has them.
    var responseContext: SIPResponseContext? {
        guard let startLine, !startLine.hasPrefix("SIP/") else { return nil }
        return SIPResponseContext(requestHeaders: SIPHeaders(fields))
    }

    mutating func read() throws(SIPParseError) {
        let bytes = bytes
        try bytes.withUnsafeBufferPointer { buffer throws(SIPParseError) in
            // Buffer positions count from 0; `bodyStart` is reported in the slice's own indices.
            bodyStart = bytes.startIndex + (try read(buffer))
        }
    }

    /// Reads the start line and header lines of `bytes`; returns where the body starts.
    private mutating func read(_ bytes: UnsafeBufferPointer<UInt8>) throws(SIPParseError) -> Int {
        var index = 0
        // Only whole line ends are skipped: a bare CR here would start the start line, and is refused there.
        while index < bytes.count, bytes[index] == ASCII.lf || (bytes[index] == ASCII.cr && index + 1 < bytes.count
            && bytes[index + 1] == ASCII.lf)
        {
            index += 1
        }
        guard index < bytes.count else {
            throw SIPParseError(kind: .badStartLine, reason: "empty message")
        }
        var quoting = QuotingState()
        // Typical requests carry 10 to 25 header lines: growing the array from empty would copy it five times.
        fields.reserveCapacity(min(limits.maxHeaderCount, 32))
        while true {
            let isContinuation = startLine != nil && index < bytes.count && Grammar.isWhitespace(bytes[index])
            if !isContinuation { quoting = QuotingState() }
            let (lineEnd, next) = try scanLine(bytes, from: index, quoting: &quoting)
            let line = bytes[index..<lineEnd]
            index = next
            guard !line.isEmpty else { return index }
            if startLine == nil {
                startLine = String(decoding: line, as: UTF8.self)
            } else if isContinuation {
                guard let last = fields.indices.last else {
                    throw SIPParseError(kind: .badHeader, reason: "continuation line before the first header")
                }
                // LWS (the line break and the whitespace after it) reads as a single SP (RFC 3261 §7.3.1).
                let continuation = String(decoding: Grammar.trimmed(line), as: UTF8.self)
                fields[last].value = Grammar.trimmed(fields[last].value + " " + continuation)
            } else {
                try appendField(line)
            }
        }
    }

    /// Finds the end of the line starting at `start` (before its CRLF or LF) and where the next line starts.
    ///
    /// Refuses a CR not followed by LF: we split on LF, a peer splitting on CR would read another message than
    /// the one we relay. Refuses the other controls but HTAB (RFC 3261 §25.1: no TEXT or LWS carries them),
    /// except as a quoted-pair in a quoted string, which RFC 4475 §3.1.1.2 (intmeth) keeps valid.
    private func scanLine(
        _ bytes: UnsafeBufferPointer<UInt8>, from start: Int, quoting: inout QuotingState
    ) throws(SIPParseError) -> (end: Int, next: Int) {
        // A line may run to `maxLineLength` bytes before its line end.
        let limit = min(bytes.count, start + limits.maxLineLength + 1)
        var index = start
        while index < limit {
            // Most bytes are text that is neither a control nor moves the quoting state: pass them quickly.
            if !quoting.escapes {
                index = Self.skipText(bytes, from: index, to: limit)
                guard index < limit else { break }
            }
            let byte = bytes[index]
            if byte == ASCII.lf { return (index, index + 1) }
            if byte == ASCII.cr {
                // A CR ending the bytes is a truncated line end: the headers are unterminated.
                guard index + 1 < bytes.count else { break }
                guard bytes[index + 1] == ASCII.lf else {
                    throw refusal("bare CR (not followed by LF) at byte \(index)")
                }
                return (index, index + 2)
            }
            // The start line has no quoted strings.
            if Grammar.isForbiddenControl(byte), startLine == nil || !quoting.escapes {
                throw refusal("\(SIPHeaderValue.ValidationError.controlCharacter(byte, offset: index))")
            }
            quoting.advance(over: byte)
            index += 1
        }
        guard index - start <= limits.maxLineLength else { throw lineTooLong() }
        throw SIPParseError(kind: .unterminatedHeaders, reason: "header section does not end with an empty line")
    }

    /// The first position from `index` (before `limit`) of a byte that is a control (line ends included) or
    /// moves the quoting state (`"`, `\\`). Looks at eight bytes at once while none of them is one: every
    /// byte of the start line and headers passes here.
    private static func skipText(_ bytes: UnsafeBufferPointer<UInt8>, from index: Int, to limit: Int) -> Int {
        var index = index
        if let base = bytes.baseAddress {
            while index + 8 <= limit,
                  !holdsSpecial(UnsafeRawPointer(base).loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                index += 8
            }
        }
        while index < limit, !isSpecial(bytes[index]) { index += 1 }
        return index
    }

    /// Whether one of the eight bytes of `word` is special: the classic "has a byte less than n" and "has a zero
    /// byte" word tests, which are exact (never a false answer) for n <= 128.
    @inline(__always)
    private static func holdsSpecial(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZeroByte(_ x: UInt64) -> Bool { (x &- ones) & ~x & highs != 0 }
        let hasControl = (word &- ones &* UInt64(ASCII.space)) & ~word & highs != 0
        return hasControl || hasZeroByte(word ^ (ones &* UInt64(ASCII.quote)))
            || hasZeroByte(word ^ (ones &* UInt64(ASCII.backslash))) || hasZeroByte(word ^ (ones &* 0x7F))
    }

    @inline(__always)
    private static func isSpecial(_ byte: UInt8) -> Bool {
        byte < ASCII.space || byte == ASCII.quote || byte == ASCII.backslash || byte == 0x7F
    }

    /// A forbidden byte in the line being read: the start line's or a header's fault.
    private func refusal(_ reason: String) -> SIPParseError {
        SIPParseError(kind: startLine == nil ? .badStartLine : .badHeader, reason: reason)
    }

    private mutating func appendField(_ line: UnsafeBufferPointer<UInt8>.SubSequence) throws(SIPParseError) {
        guard fields.count < limits.maxHeaderCount else {
            throw SIPParseError(kind: .tooManyHeaders, reason: "more than \(limits.maxHeaderCount) header lines")
        }
        guard let colon = line.firstIndex(of: ASCII.colon) else {
            throw SIPParseError(
                kind: .badHeader, reason: "header line without a colon: \(String(decoding: line, as: UTF8.self).prefix(120))")
        }
        let name = Grammar.trimmed(line[..<colon])
        guard !name.isEmpty, name.allSatisfy(Grammar.isTokenByte) else {
            let text = String(decoding: name, as: UTF8.self)
            throw SIPParseError(kind: .badHeader, reason: "header name is not a token: \(text.prefix(120))")
        }
        let value = Grammar.trimmed(line[(colon + 1)...])
        fields.append(SIPHeader(name: name, value: value))
    }

    private func lineTooLong() -> SIPParseError {
        SIPParseError(kind: .lineTooLong, reason: "a line exceeds \(limits.maxLineLength) bytes")
    }
}

/// Where a header field's bytes stand in its quoted strings, carried across continuation lines, so a
/// quoted-pair (`\` and any byte but CR and LF, RFC 3261 §25.1) is told from a control byte in the open.
private struct QuotingState {
    private var inQuotes = false
    private var afterBackslash = false

    /// Whether the next byte is escaped by a quoted-pair.
    var escapes: Bool { afterBackslash }

    mutating func advance(over byte: UInt8) {
        if afterBackslash {
            afterBackslash = false
        } else if inQuotes, byte == ASCII.backslash {
            afterBackslash = true
        } else if byte == ASCII.quote {
            inQuotes.toggle()
        }
    }
}
