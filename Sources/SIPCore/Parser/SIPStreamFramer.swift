/// Cuts a byte stream (TCP, TLS) into SIP messages by Content-Length, which is mandatory on streams
/// (RFC 3261 §18.3). Hand each result to ``SIPParser/parse(_:)``.
///
/// CRLFs between messages are skipped: they are RFC 5626 keep-alives (`CRLFCRLF` ping, `CRLF` pong) or the
/// stray line ends RFC 3261 §7.5 tells receivers to ignore. After an error the stream cannot be resynchronised;
/// the owner should answer if it can and close the connection.
///
/// ```swift
/// var framer = SIPStreamFramer()
/// framer.append(chunk)
/// while let message = try framer.nextMessage() {
///     handle(try parser.parse(message))
/// }
/// ```
public struct SIPStreamFramer: Sendable {
    /// The limits enforced while buffering; `maxMessageSize` bounds the buffer.
    public let limits: SIPParserLimits
    private var buffer: [UInt8] = []
    private var start = 0
    /// Where the search for the end of the header section resumes, so each byte is scanned once.
    private var scanned = 0

    /// Creates a framer.
    public init(limits: SIPParserLimits = SIPParserLimits()) {
        self.limits = limits
    }

    /// The bytes received but not yet returned as a message.
    public var bufferedByteCount: Int { buffer.count - start }

    /// Appends bytes read from the stream.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeFirst(start)
            scanned = max(0, scanned - start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete message, or nil when more bytes are needed. Throws when the header section or the
    /// announced message exceeds the limits, or Content-Length is missing or malformed.
    public mutating func nextMessage() throws(SIPParseError) -> [UInt8]? {
        while start < buffer.count, buffer[start] == ASCII.cr || buffer[start] == ASCII.lf {
            start += 1
        }
        scanned = max(scanned, start)
        guard let headerEnd = findHeaderEnd() else {
            guard bufferedByteCount <= limits.maxMessageSize else {
                throw SIPParseError(
                    kind: .tooLarge, reason: "no complete header section within \(limits.maxMessageSize) bytes")
            }
            return nil
        }
        let length = try contentLength(in: buffer[start..<headerEnd])
        let (total, overflow) = (headerEnd - start).addingReportingOverflow(length)
        guard !overflow, total <= limits.maxMessageSize else {
            throw SIPParseError(kind: .tooLarge, reason: "message exceeds \(limits.maxMessageSize) bytes")
        }
        guard bufferedByteCount >= total else { return nil }
        let message = Array(buffer[start..<(start + total)])
        start += total
        scanned = start
        return message
    }

    /// The index just past the `CRLFCRLF` ending the header section, if buffered.
    private mutating func findHeaderEnd() -> Int? {
        var index = max(scanned, start)
        while index + 3 < buffer.count {
            if buffer[index] == ASCII.cr, buffer[index + 1] == ASCII.lf, buffer[index + 2] == ASCII.cr,
               buffer[index + 3] == ASCII.lf
            {
                return index + 4
            }
            index += 1
        }
        scanned = index
        return nil
    }

    /// The Content-Length of a header section; every Content-Length line must agree.
    private func contentLength(in head: ArraySlice<UInt8>) throws(SIPParseError) -> Int {
        var reader = HeadReader(bytes: head, limits: limits)
        try reader.read()
        let values = SIPHeaders(reader.fields).lines("Content-Length").map(\.value)
        guard let first = values.first else {
            throw SIPParseError(
                kind: .badContentLength, reason: "Content-Length is mandatory on a stream",
                responseContext: reader.responseContext)
        }
        guard Grammar.isDigits(first), let length = Int(first), values.allSatisfy({ $0 == first }) else {
            throw SIPParseError(
                kind: .badContentLength, reason: "Content-Length \(values.joined(separator: ", ").prefix(80)) is unusable",
                responseContext: reader.responseContext)
        }
        return length
    }
}
