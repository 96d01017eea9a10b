import Testing
import CallPolicy

/// The one IP network type: the bridge's `sip_trusted_sources` and the gateway's `proxy.trusted` both read it.
@Suite struct IPNetworkTests {
    @Test(arguments: [
        ("127.0.0.1", "127.0.0.1", true),
        ("127.0.0.1", "127.0.0.2", false),
        ("10.0.0.0/8", "10.255.1.2", true),
        ("10.0.0.0/8", "11.0.0.1", false),
        ("192.168.1.0/25", "192.168.1.127", true),
        ("192.168.1.0/25", "192.168.1.128", false),
        ("192.0.2.128/25", "192.0.2.200", true),
        ("192.0.2.128/25", "192.0.2.100", false),
        ("[2001:db8::1]", "2001:db8::1", true),
        ("2001:db8::/32", "2001:db8:ffff::5", true),
        ("2001:db8::/32", "2001:db9::5", false),
        ("2001:db8::/32", "10.0.0.1", false),
        // A dual-stack socket reports an IPv4 peer in its IPv6-mapped form; a network so written is its
        // IPv4 network, prefix included.
        ("127.0.0.1", "::ffff:127.0.0.1", true),
        ("::ffff:10.0.0.0/8", "10.1.2.3", true),
        ("::ffff:10.0.0.1", "10.0.0.1", true),
        ("0.0.0.0/0", "203.0.113.9", true),
        ("0.0.0.0/0", "2001:db8::1", false),
        ("::/0", "2001:db8::1", true),
    ])
    func containsWhatItNames(network: String, address: String, contained: Bool) throws {
        let network = try IPNetwork(parsing: network)
        #expect(network.contains(try #require(IPNetwork.address(address))) == contained)
    }

    @Test func mappedAddressesReadAsIPv4() {
        #expect(IPNetwork.address("::ffff:127.0.0.1") == [127, 0, 0, 1])
        #expect(IPNetwork.unmapped([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 0, 0, 1]) == [10, 0, 0, 1])
        #expect(IPNetwork(host: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 0, 0, 1], description: "proxy").bytes == [10, 0, 0, 1])
        #expect(IPNetwork.address("2001:db8::1")?.count == 16)
    }

    @Test func keepsTheTextItWasWrittenAs() throws {
        #expect(try IPNetwork(parsing: "[2001:db8::1]").description == "[2001:db8::1]")
        #expect(try IPNetwork(parsing: "10.0.0.0/8").prefixLength == 8)
        #expect(try IPNetwork(parsing: "10.0.0.1").prefixLength == 32)
    }

    @Test(arguments: [
        ("", IPNetwork.ParseError.notAnAddress("")),
        ("example.com", .notAnAddress("example.com")),
        ("10.0.0/8", .notAnAddress("10.0.0/8")),
        ("10.0.0.1:5060", .notAnAddress("10.0.0.1:5060")),
        ("10.0.0.0/x", .missingPrefixLength("10.0.0.0/x")),
        ("10.0.0.0/", .missingPrefixLength("10.0.0.0/")),
        ("10.0.0.0/33", .prefixLengthOutOfRange("10.0.0.0/33", maximum: 32)),
        ("10.0.0.0/-1", .prefixLengthOutOfRange("10.0.0.0/-1", maximum: 32)),
        ("::/129", .prefixLengthOutOfRange("::/129", maximum: 128)),
    ])
    func refusesWhatIsNoNetwork(text: String, error: IPNetwork.ParseError) {
        #expect(throws: error) { try IPNetwork(parsing: text) }
        #expect(IPNetwork(text) == nil)
    }
}
