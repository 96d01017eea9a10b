import CallPolicy
import Foundation
import HTTPTypes

/// The proxies whose forwarding headers the gateway believes (`proxy.trusted`). Only when the TCP
/// peer is one of them is the client's address taken from `Forwarded` (RFC 7239) or, without it,
/// `X-Forwarded-For`: the rightmost hop that is not itself a trusted proxy, since every hop left of
/// that was written by the client and can be anything. From anyone else those headers are ignored.
///
/// ```swift
/// let proxies = TrustedProxies(networks: [IPNetwork("10.0.0.2")!])
/// proxies.client(peer: "10.0.0.2", headers: [.xForwardedFor: "1.2.3.4, 198.51.100.7"])   // "198.51.100.7"
/// proxies.client(peer: "203.0.113.9", headers: [.xForwardedFor: "1.2.3.4"])              // "203.0.113.9"
/// ```
struct TrustedProxies: Sendable {
    let networks: [IPNetwork]

    func trusts(_ address: String) -> Bool {
        guard let bytes = IPNetwork.address(address) else { return false }
        return networks.contains { $0.contains(bytes) }
    }

    /// The address rate limits key on.
    func client(peer: String, headers: HTTPFields) -> String {
        guard trusts(peer) else { return peer }
        let forwarded = headers[values: .forwarded]
        let hops = forwarded.isEmpty ? Self.hops(xForwardedFor: headers[values: .xForwardedFor]) : Self.hops(forwarded: forwarded)
        guard let client = hops.last(where: { !trusts($0) }) ?? hops.first else { return peer }
        return client
    }

    /// The `for=` of each element of `Forwarded` values, in order; an element without one is `unknown`.
    static func hops(forwarded values: [String]) -> [String] {
        values.flatMap { $0.split(separator: ",") }.map { element in
            for pair in element.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces).lowercased() == "for" {
                    return node(String(parts[1]))
                }
            }
            return "unknown"
        }
    }

    static func hops(xForwardedFor values: [String]) -> [String] {
        values.flatMap { $0.split(separator: ",") }.map { node(String($0)) }
    }

    /// An address without quotes, brackets and port: `"[2001:db8::1]:4711"` → `2001:db8::1`, `192.0.2.7:80` → `192.0.2.7`.
    private static func node(_ raw: String) -> String {
        var text = Substring(raw.trimmingCharacters(in: .whitespaces))
        if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 { text = text.dropFirst().dropLast() }
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") { return String(text[text.index(after: text.startIndex)..<close]) }
        if text.filter({ $0 == ":" }).count == 1, let colon = text.firstIndex(of: ":") { return String(text[..<colon]) }
        return String(text)
    }
}

extension HTTPField.Name {
    static let forwarded = Self("Forwarded")!
    static let xForwardedFor = Self("X-Forwarded-For")!
}
