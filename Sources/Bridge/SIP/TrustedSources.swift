#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CallPolicy
import NIOCore

/// The addresses the bridge takes SIP from: its proxies. Kamailio authenticates the phones and vouches
/// for them in `X-Switchboard-*` headers, so a packet from anywhere else could place calls as anyone.
///
/// ```swift
/// let sources = try TrustedSources(parsing: "127.0.0.1, 10.0.0.0/24, [2001:db8::1]")
/// sources.admits(try SocketAddress(ipAddress: "10.0.0.7", port: 5060))   // true
/// ```
struct TrustedSources: Equatable, CustomStringConvertible {
    /// nil: every source (the `any` setting, for a bridge behind a firewall that does the same job).
    let networks: [IPNetwork]?

    static let any = TrustedSources(networks: nil)

    init(networks: [IPNetwork]?) {
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
        var networks: [IPNetwork] = []
        for item in items {
            do throws(IPNetwork.ParseError) {
                networks.append(try IPNetwork(parsing: item))
            } catch {
                throw .init(error.description)
            }
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
        return TrustedSources(networks: [IPNetwork(host: bytes, description: outboundProxy.ipAddress ?? "")])
    }

    private static func addressBytes(_ address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            var raw = v4.address.sin_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        case .v6(let v6):
            var raw = v6.address.sin6_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        case .unixDomainSocket:
            return nil
        }
    }
}
