#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// The addresses the bridge takes SIP from: its proxies. Kamailio authenticates the phones and vouches
/// for them in `X-Switchboard-*` headers, so a packet from anywhere else could place calls as anyone.
///
/// ```swift
/// let sources = try TrustedSources(parsing: "127.0.0.1, 10.0.0.0/24, [2001:db8::1]")
/// sources.admits(try SocketAddress(ipAddress: "10.0.0.7", port: 5060))   // true
/// ```
struct TrustedSources: Equatable, CustomStringConvertible {
    /// An IPv4 or IPv6 network: its address bytes and prefix length.
    struct Network: Equatable, CustomStringConvertible {
        let bytes: [UInt8]
        let prefixLength: Int
        let description: String

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var remaining = prefixLength
            for (ours, theirs) in zip(bytes, address) where remaining > 0 {
                let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
                if ours & mask != theirs & mask { return false }
                remaining -= 8
            }
            return true
        }
    }

    /// nil: every source (the `any` setting, for a bridge behind a firewall that does the same job).
    let networks: [Network]?

    static let any = TrustedSources(networks: nil)

    init(networks: [Network]?) {
        self.networks = networks
    }

    /// Parses a comma-separated list of addresses and CIDR networks (`10.0.0.0/8`, `[::1]`, `fd00::/8`), or `any`.
    init(parsing text: String) throws(BridgeSettingProblem) {
        let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw .init("names no address; use any to take SIP from every source") }
        if items == ["any"] {
            self = .any
            return
        }
        var networks: [Network] = []
        for item in items {
            var address = Substring(item)
            var prefix: Int?
            if let slash = address.lastIndex(of: "/") {
                guard let length = Int(address[address.index(after: slash)...]) else { throw .init("\"\(item)\" has no prefix length after /") }
                prefix = length
                address = address[..<slash]
            }
            if address.hasPrefix("["), address.hasSuffix("]") { address = address.dropFirst().dropLast() }
            guard let bytes = Self.addressBytes(String(address)) else { throw .init("\"\(item)\" is not an IP address or network") }
            let length = prefix ?? bytes.count * 8
            guard (0...bytes.count * 8).contains(length) else { throw .init("\"\(item)\": prefix length must be 0...\(bytes.count * 8)") }
            networks.append(Network(bytes: bytes, prefixLength: length, description: item))
        }
        self.networks = networks
    }

    var description: String { networks.map { $0.map(\.description).joined(separator: ", ") } ?? "any" }

    func admits(_ address: SocketAddress) -> Bool {
        guard let networks else { return true }
        guard let bytes = Self.addressBytes(address) else { return false }
        return networks.contains { $0.contains(bytes) }
    }

    /// The sources the bridge trusts when none are configured: its outbound proxy's address, nil without one.
    static func defaultSources(outboundProxy: SocketAddress?) -> TrustedSources? {
        guard let outboundProxy, let bytes = addressBytes(outboundProxy) else { return nil }
        return TrustedSources(networks: [Network(bytes: bytes, prefixLength: bytes.count * 8, description: outboundProxy.ipAddress ?? "")])
    }

    private static func addressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return unmapped(withUnsafeBytes(of: &v6) { Array($0) }) }
        return nil
    }

    private static func addressBytes(_ address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            var raw = v4.address.sin_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        case .v6(let v6):
            var raw = v6.address.sin6_addr
            return unmapped(withUnsafeBytes(of: &raw) { Array($0) })
        case .unixDomainSocket:
            return nil
        }
    }

    /// A dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`: compare them as the IPv4 address they are.
    private static func unmapped(_ bytes: [UInt8]) -> [UInt8] {
        bytes.count == 16 && bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF ? Array(bytes[12...]) : bytes
    }
}
