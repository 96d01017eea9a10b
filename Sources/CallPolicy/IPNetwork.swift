#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 network: an address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`), or one host
/// (`127.0.0.1`, `[::1]`). Who may send the bridge SIP (`sip_trusted_sources`) and whose forwarding headers
/// the gateway believes (`proxy.trusted`) are lists of these.
///
/// An IPv4 address in its IPv6-mapped form (`::ffff:192.0.2.1`, as a dual-stack socket reports IPv4 peers)
/// reads as the IPv4 address it is, in an address matched against a network and in a network, whose prefix
/// then counts IPv4 bits (`::ffff:10.0.0.0/8` is `10.0.0.0/8`).
///
/// ```swift
/// let proxies = try IPNetwork(parsing: "10.0.0.0/8")
/// proxies.contains(IPNetwork.address("10.1.2.3")!)          // true
/// proxies.contains(IPNetwork.address("::ffff:10.1.2.3")!)   // true
/// IPNetwork("example.com")                                   // nil
/// ```
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    /// Why a text is not a network; each case carries the text.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        /// Not an IPv4 or IPv6 address (a host name, say).
        case notAnAddress(String)
        /// A `/` without a number after it.
        case missingPrefixLength(String)
        /// A prefix longer than the address (`10.0.0.0/33`); `maximum` is 32 or 128.
        case prefixLengthOutOfRange(String, maximum: Int)

        public var description: String {
            switch self {
            case .notAnAddress(let text): "\"\(text)\" is not an IP address or network"
            case .missingPrefixLength(let text): "\"\(text)\" has no prefix length after /"
            case .prefixLengthOutOfRange(let text, let maximum): "\"\(text)\": prefix length must be 0...\(maximum)"
            }
        }
    }

    /// The network's address: 4 bytes (IPv4) or 16 (IPv6).
    public let bytes: [UInt8]
    /// How many leading bits of an address must match `bytes`.
    public let prefixLength: Int
    /// The network as it was written.
    public let description: String

    /// Reads `ADDRESS` or `ADDRESS/PREFIX`; an IPv6 address may be in brackets (`[2001:db8::1]`).
    public init(parsing text: String) throws(ParseError) {
        var address = Substring(text)
        var prefix: Int?
        if let slash = address.lastIndex(of: "/") {
            guard let length = Int(address[address.index(after: slash)...]) else { throw .missingPrefixLength(text) }
            prefix = length
            address = address[..<slash]
        }
        if address.hasPrefix("["), address.hasSuffix("]") { address = address.dropFirst().dropLast() }
        guard let bytes = Self.address(String(address)) else { throw .notAnAddress(text) }
        let length = prefix ?? bytes.count * 8
        guard (0...bytes.count * 8).contains(length) else { throw .prefixLengthOutOfRange(text, maximum: bytes.count * 8) }
        (self.bytes, prefixLength, description) = (bytes, length, text)
    }

    /// ``init(parsing:)``, nil instead of the reason.
    public init?(_ text: String) {
        guard let network = try? IPNetwork(parsing: text) else { return nil }
        self = network
    }

    /// The one host at `address` (4 or 16 bytes, as ``address(_:)`` gives them), described as `description`.
    public init(host address: [UInt8], description: String) {
        precondition(address.count == 4 || address.count == 16, "an IP address has 4 or 16 bytes")
        (bytes, prefixLength, self.description) = (Self.unmapped(address), address.count * 8, description)
    }

    /// Whether `address` (4 or 16 bytes) is in the network; an IPv4 address is never in an IPv6 network.
    public func contains(_ address: [UInt8]) -> Bool {
        let address = Self.unmapped(address)
        guard address.count == bytes.count else { return false }
        var remaining = prefixLength
        for (ours, theirs) in zip(bytes, address) where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
            if ours & mask != theirs & mask { return false }
            remaining -= 8
        }
        return true
    }

    /// The bytes of a textual IPv4 or IPv6 address (no brackets, no port); nil for anything else.
    public static func address(_ text: String) -> [UInt8]? {
        var v4 = [UInt8](repeating: 0, count: 4)
        if v4.withUnsafeMutableBytes({ inet_pton(AF_INET, text, $0.baseAddress) }) == 1 { return v4 }
        var v6 = [UInt8](repeating: 0, count: 16)
        guard v6.withUnsafeMutableBytes({ inet_pton(AF_INET6, text, $0.baseAddress) }) == 1 else { return nil }
        return unmapped(v6)
    }

    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its 4 IPv4 bytes; any other address unchanged.
    public static func unmapped(_ bytes: [UInt8]) -> [UInt8] {
        bytes.count == 16 && bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF ? Array(bytes[12...]) : bytes
    }
}
