import CallPolicy
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
@testable import WebGateway

@Suite struct TrustedProxiesTests {
    @Test func theClientIsTheRightmostUntrustedHopOnlyBehindATrustedProxy() throws {
        let proxies = TrustedProxies(networks: [try #require(IPNetwork("10.0.0.0/8"))])
        // A trusted peer: the rightmost hop that is not a proxy; what the client wrote left of it does not count.
        #expect(proxies.client(peer: "10.0.0.2", headers: [.xForwardedFor: "6.6.6.6, 198.51.100.7, 10.0.0.9"]) == "198.51.100.7")
        var twoLines = HTTPFields()
        twoLines.append(HTTPField(name: .xForwardedFor, value: "6.6.6.6"))
        twoLines.append(HTTPField(name: .xForwardedFor, value: "198.51.100.8"))
        #expect(proxies.client(peer: "10.0.0.2", headers: twoLines) == "198.51.100.8")
        // RFC 7239 wins over X-Forwarded-For, with quoted IPv6 and ports.
        let forwarded: HTTPFields = [.forwarded: #"for=6.6.6.6;proto=https, for="[2001:db8::7]:4711";by=10.0.0.2"#,
                                     .xForwardedFor: "203.0.113.1"]
        #expect(proxies.client(peer: "10.0.0.2", headers: forwarded) == "2001:db8::7")
        #expect(proxies.client(peer: "10.0.0.2", headers: [.forwarded: "for=192.0.2.60:8080"]) == "192.0.2.60")
        // Only proxies in the chain: the leftmost is the client.
        #expect(proxies.client(peer: "10.0.0.2", headers: [.xForwardedFor: "10.1.1.1, 10.2.2.2"]) == "10.1.1.1")
        #expect(proxies.client(peer: "10.0.0.2", headers: [:]) == "10.0.0.2")
        // An untrusted peer's headers are ignored.
        #expect(proxies.client(peer: "203.0.113.9", headers: [.xForwardedFor: "198.51.100.7"]) == "203.0.113.9")
        #expect(proxies.client(peer: "203.0.113.9", headers: [.forwarded: "for=198.51.100.7"]) == "203.0.113.9")
    }

    /// One source bucket of one request per client: behind the trusted proxy (this test's own
    /// loopback connection) each forwarded client has its own; untrusted, the header changes nothing.
    @Test func theSourceLimitKeysOnTheForwardedClientOnlyFromATrustedProxy() async throws {
        for trusted in [true, false] {
            let fixture = try GatewayFixture {
                $0.sourceBurst = 1
                $0.sourceRatePerSecond = 0.01
                $0.trustedProxies = trusted ? ["127.0.0.0/8", "::1"] : []
            }
            try await fixture.application().test(.live) { client async throws in
                let first = try await client.send(.get, "/api/v1/health", headers: [.xForwardedFor: "198.51.100.1"])
                #expect(first.status == .ok)
                let sameClient = try await client.send(.get, "/api/v1/health", headers: [.xForwardedFor: "6.6.6.6, 198.51.100.1"])
                #expect(sameClient.status == .tooManyRequests)
                let otherClient = try await client.send(.get, "/api/v1/health", headers: [.xForwardedFor: "198.51.100.2"])
                #expect(otherClient.status == (trusted ? .ok : .tooManyRequests), "trusted: \(trusted)")
            }
        }
    }

    @Test func anUntrustableProxySettingIsRefused() throws {
        var configuration = GatewayConfiguration()
        configuration.trustedProxies = ["10.0.0.0/8", "proxy.example.com"]
        #expect(throws: GatewayConfigurationError.invalid("proxy.trusted", "proxy.example.com is not an IP address or CIDR block")) {
            try configuration.validate()
        }
    }
}
