import BusSchema

/// What `exec_dset` reads from `switchboard-exec`: one URI a line, the first the new Request-URI, the others
/// branches it appends (forked in parallel by `t_relay`). A reject is one line the cfg recognises by its
/// host and answers itself: `sip:STATUS@reject.invalid;reason=REASON[;retry-after=SECONDS]` (`.invalid` can
/// never be routed, RFC 2606). exec_dset hides the program's exit status from the cfg but for true/false,
/// so the status travels in the line, not in the exit code.
enum ExecOutput {
    /// The host of the reject line.
    static let rejectHost = "reject.invalid"

    static func lines(for decision: Decision) -> [String] {
        switch decision {
        case .redirect(let targets):
            // Highest q first; equal q keep the worker's order (a stable sort).
            return targets.enumerated().sorted { ($0.element.q ?? 1, -$0.offset) > ($1.element.q ?? 1, -$1.offset) }.map(\.element.uri)
        case .reject(let status, let reason, let headers):
            var line = "sip:\(status)@\(rejectHost)"
            if let reason, !reason.isEmpty { line += ";reason=\(escaped(reason))" }
            if let retryAfter = headers.first(where: { $0.key.lowercased() == "retry-after" })?.value, let seconds = Int(retryAfter) {
                line += ";retry-after=\(seconds)"
            }
            return [line]
        case .bridge(let route):
            // The bridge turns bridge into redirect for a proxy; a reply that did not is still a list of targets.
            return route.targets.map(\.uri)
        case .answer:
            // Only the bridge answers a call itself, and the proxy holds this one: the bridge replies 503 in its place
            // (Handoffs.proxyable), and a reply that did not gets the same, as the caller would without a bridge.
            return lines(for: .reject(status: 503, reason: "Service Unavailable"))
        }
    }

    /// RFC 3261 §25.1 `paramchar`, as the cfg's `{s.unescape.param}` reads it: unreserved characters stay, the rest is %HH.
    static func escaped(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "!"), UInt8(ascii: "~"), UInt8(ascii: "*"):
                bytes.append(byte)
            default:
                bytes += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
