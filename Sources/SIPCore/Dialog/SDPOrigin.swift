/// The `o=` line one side of a session shows its peer (RFC 4566 §5.2), kept the same across every SDP it sends
/// there. A B2BUA sends one leg bodies that several parties wrote (a transfer's new party, Flow III's own held
/// answer, the far leg's offers); the peer must still see one session, same username and session id, whose
/// version goes up by one with each change and stays when nothing changed (RFC 3264 §8, §5).
///
/// ```swift
/// var origin = SDPOrigin()
/// let first = origin.stamp(bOffer, answer: false)        // B's o= line, as it came
/// let later = origin.stamp(cOffer, answer: false)        // C's body under B's o=, version one higher
/// ```
public struct SDPOrigin: Sendable, Equatable {
    /// The `o=` fields of the first body sent, all but the version.
    private var fields: [ArraySlice<UInt8>]?
    private var version: UInt64 = 0
    /// The last body sent, its `o=` line left out: a body equal to it keeps the version.
    private var lastContent: [UInt8] = []

    public init() {}

    /// `sdp` as this side sends it: under the first body's origin, with the version the same as the last body's
    /// when nothing else changed and one higher otherwise. In an answer, `a=setup:actpass` becomes
    /// `a=setup:active`: an answerer picks a role (RFC 4145 §4.1, RFC 5763 §5), and a B2BUA that hands one party's
    /// offer to another as an answer (Flow III, a delayed-offer ACK) must not pass the offerer's choice on. A body
    /// without a well-formed `o=` line keeps its own.
    public mutating func stamp(_ sdp: [UInt8], answer: Bool) -> [UInt8] {
        let lines = SDPLine.lines(of: sdp)
        var content: [UInt8] = []
        content.reserveCapacity(sdp.count)
        var originIndex: Int?
        var origin: [ArraySlice<UInt8>]?
        for (index, line) in lines.enumerated() {
            if origin == nil, line.content.starts(with: Self.prefix), let parsed = Self.fields(of: line.content) {
                originIndex = index
                origin = parsed
                continue
            }
            content += answer && line.content.elementsEqual(Self.actpass) ? Self.active[...] : line.content
            content += line.end
        }
        guard let originIndex, let origin, let version = UInt64(String(decoding: origin[2], as: UTF8.self)) else {
            return sdp
        }
        if fields == nil {
            fields = [origin[0], origin[1], origin[3], origin[4], origin[5]]
            self.version = version
        } else if content != lastContent, self.version < UInt64.max {
            self.version += 1
        }
        lastContent = content
        return rebuilt(lines, originAt: originIndex, answer: answer)
    }

    /// The body with our `o=` line in place of its own, setup rewritten as `stamp` says.
    private func rebuilt(_ lines: [SDPLine], originAt originIndex: Int, answer: Bool) -> [UInt8] {
        guard let fields else { return [] }
        var output: [UInt8] = []
        for (index, line) in lines.enumerated() {
            if index == originIndex {
                output += Self.prefix
                let all = [fields[0], fields[1], ArraySlice(String(version).utf8), fields[2], fields[3], fields[4]]
                output += Array(all.joined(separator: [ASCII.space]))
            } else {
                output += answer && line.content.elementsEqual(Self.actpass) ? Self.active[...] : line.content
            }
            output += line.end
        }
        return output
    }

    /// `sdp` with a new origin of its own (username and session id), version 1: for a body this side writes from
    /// one the peer sent, such as Flow III's held answer built from the peer's own offer, which must not carry the
    /// peer's session identity back to it.
    public static func replacingOrigin(of sdp: [UInt8], username: String, sessionID: UInt64) -> [UInt8] {
        let lines = SDPLine.lines(of: sdp)
        var output: [UInt8] = []
        output.reserveCapacity(sdp.count)
        var replaced = false
        for line in lines {
            if !replaced, line.content.starts(with: prefix), var parsed = fields(of: line.content) {
                replaced = true
                parsed[0] = ArraySlice(username.utf8)
                parsed[1] = ArraySlice(String(sessionID).utf8)
                parsed[2] = ArraySlice("1".utf8)
                output += prefix + Array(parsed.joined(separator: [ASCII.space]))
            } else {
                output += line.content
            }
            output += line.end
        }
        return output
    }

    /// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>` split into its six fields.
    private static func fields(of line: ArraySlice<UInt8>) -> [ArraySlice<UInt8>]? {
        let fields = line.dropFirst(prefix.count).split(separator: ASCII.space, omittingEmptySubsequences: false)
        guard fields.count == 6, UInt64(String(decoding: fields[2], as: UTF8.self)) != nil else { return nil }
        return fields
    }

    private static let prefix = Array("o=".utf8)
    private static let actpass = Array("a=setup:actpass".utf8)
    private static let active = Array("a=setup:active".utf8)
}

/// One line of an SDP body: its content and the CRLF or LF that ended it (empty for an unterminated last line).
struct SDPLine {
    var content: ArraySlice<UInt8>
    var end: ArraySlice<UInt8>

    static func lines(of sdp: [UInt8]) -> [SDPLine] {
        var lines: [SDPLine] = []
        var start = sdp.startIndex
        while start < sdp.endIndex {
            let newline = sdp[start...].firstIndex(of: ASCII.lf) ?? sdp.endIndex
            var contentEnd = newline
            if contentEnd > start, sdp[contentEnd - 1] == ASCII.cr { contentEnd -= 1 }
            let lineEnd = newline < sdp.endIndex ? newline + 1 : newline
            lines.append(SDPLine(content: sdp[start..<contentEnd], end: sdp[contentEnd..<lineEnd]))
            start = lineEnd
        }
        return lines
    }
}
