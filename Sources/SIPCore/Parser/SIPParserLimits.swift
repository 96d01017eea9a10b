/// Bounds on what the parser and the stream framer accept, so that hostile input costs bounded memory.
///
/// ```swift
/// let parser = SIPParser(limits: SIPParserLimits(maxMessageSize: 8192))
/// ```
public struct SIPParserLimits: Sendable, Hashable {
    /// The largest message, start line to end of body, in bytes (exceeded: 513).
    public var maxMessageSize: Int
    /// The most header field lines.
    public var maxHeaderCount: Int
    /// The longest physical line of the start line and headers, in bytes.
    public var maxLineLength: Int
    /// The largest body, in bytes (exceeded: 513).
    public var maxBodySize: Int

    /// Creates limits; the defaults suit a UDP/TCP SIP edge (64 KiB is the largest UDP datagram).
    public init(maxMessageSize: Int = 65535, maxHeaderCount: Int = 128, maxLineLength: Int = 8192, maxBodySize: Int = 65535) {
        self.maxMessageSize = maxMessageSize
        self.maxHeaderCount = maxHeaderCount
        self.maxLineLength = maxLineLength
        self.maxBodySize = maxBodySize
    }
}
