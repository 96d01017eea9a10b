/// The media direction attribute of an SDP body (RFC 4566 §6), read and rewritten for hold and resume
/// (RFC 3264 §8.4). Works on the body's bytes, so every other line passes through untouched.
///
/// ```swift
/// let hold = SDPDirection.sendonly.applied(to: lastOffer)   // put the peer on hold
/// SDPDirection.direction(of: answer)                        // .recvonly when the peer agreed
/// ```
public enum SDPDirection: String, Sendable, Hashable, CaseIterable, Codable {
    /// Send and receive, the default when no attribute says otherwise.
    case sendrecv
    /// Send only: this end holds the peer.
    case sendonly
    /// Receive only: the answer to a `sendonly` offer.
    case recvonly
    /// Neither: both ends hold.
    case inactive

    /// The direction of the first media section: its own attribute, else the session-level one, else `sendrecv`
    /// (RFC 4566 §6). A body without media sections gives the session-level direction.
    public static func direction(of sdp: [UInt8]) -> SDPDirection {
        var session: SDPDirection?
        var media: SDPDirection?
        var mediaSections = 0
        for line in SDPLine.lines(of: sdp) {
            if line.content.starts(with: mediaPrefix) {
                mediaSections += 1
                if mediaSections > 1 { break }
            } else if let direction = SDPDirection(line: line.content) {
                if mediaSections == 0 { session = direction } else { media = direction }
            }
        }
        return media ?? session ?? .sendrecv
    }

    /// `sdp` with this direction on every media section (RFC 3264 §8.4): direction attributes are removed
    /// everywhere, session level included, one `a=` line with this direction ends each media section (or the
    /// session when there is none), and the session version in `o=` goes up by one, as a new offer in the
    /// session needs (RFC 3264 §8). Pass the last SDP this UA sent, so that the version follows its own.
    public func applied(to sdp: [UInt8]) -> [UInt8] {
        let lines = SDPLine.lines(of: sdp)
        // New lines end as the body's lines do; CRLF is what RFC 4566 §5 asks for.
        let lineEnd = Array(lines.first { !$0.end.isEmpty }?.end ?? [ASCII.cr, ASCII.lf])
        let attribute = Array("a=\(rawValue)".utf8) + lineEnd
        var output: [UInt8] = []
        output.reserveCapacity(sdp.count + attribute.count * 4)
        var inMedia = false
        for line in lines where SDPDirection(line: line.content) == nil {
            if line.content.starts(with: Self.mediaPrefix) {
                if inMedia { output += attribute }
                inMedia = true
            }
            if line.content.starts(with: Self.originPrefix) {
                output += Self.bumpingVersion(line.content)
            } else {
                output += line.content
            }
            // An unterminated last line gets an end, since the attribute follows it.
            output += line.end.isEmpty ? lineEnd[...] : line.end
        }
        return output + attribute
    }

    /// The direction a line sets, when it is one of the four attributes.
    private init?(line: ArraySlice<UInt8>) {
        guard line.starts(with: Self.attributePrefix) else { return nil }
        self.init(rawValue: String(decoding: line.dropFirst(2), as: UTF8.self))
    }

    private static let mediaPrefix = Array("m=".utf8)
    private static let originPrefix = Array("o=".utf8)
    private static let attributePrefix = Array("a=".utf8)

    /// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>` with the version one higher; the line
    /// as it was when the version is not a number.
    private static func bumpingVersion(_ line: ArraySlice<UInt8>) -> [UInt8] {
        var fields = line.split(separator: ASCII.space, omittingEmptySubsequences: false)
        guard fields.count == 6, let version = UInt64(String(decoding: fields[2], as: UTF8.self)),
              version < UInt64.max
        else { return Array(line) }
        fields[2] = ArraySlice(String(version + 1).utf8)
        return Array(fields.joined(separator: [ASCII.space]))
    }
}
