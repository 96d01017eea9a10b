import BusSchema
import Logging
import NIOCore
import SIPCore
import Testing
@testable import Bridge

/// SIP only from the bridge's proxies: what `sip_trusted_sources` admits, and what the edge answers the rest.
@Suite struct SIPTrustTests {
    typealias Harness = SIPSideHarness

    static let stranger = try! SocketAddress(ipAddress: "192.0.2.66", port: 5060)

    // Matching itself is IPNetwork's (CallPolicyTests); here: the setting's lists, `any`, and socket addresses.
    @Test(arguments: [
        ("10.1.1.1, 10.2.2.2", "10.2.2.2", true),
        ("10.1.1.1, 10.2.2.2", "10.3.3.3", false),
        ("10.0.0.0/8, [2001:db8::1]", "2001:db8::1", true),
        // A dual-stack socket reports an IPv4 peer in its IPv6-mapped form.
        ("10.0.0.0/8, [2001:db8::1]", "::ffff:10.9.9.9", true),
        ("any", "2001:db8::1", true),
    ])
    func admitsWhatItNames(setting: String, peer: String, admitted: Bool) throws {
        let sources = try TrustedSources(parsing: setting)
        #expect(sources.admits(try SocketAddress(ipAddress: peer, port: 5060)) == admitted)
    }

    @Test(arguments: [
        ("", "names no address"),
        ("kamailio.example", "not an IP address"),
        ("10.0.0.0/33", "prefix length must be 0...32"),
        ("::1/129", "prefix length must be 0...128"),
        ("10.0.0.0/x", "no prefix length"),
    ])
    func refusesWhatIsNoAddress(setting: String, problem: String) {
        #expect {
            try TrustedSources(parsing: setting)
        } throws: { error in
            (error as? BridgeSettingProblem)?.message.contains(problem) == true
        }
    }

    @Test func byDefaultOnlyTheOutboundProxyIsTrusted() throws {
        var configuration = BridgeConfiguration()
        configuration.outboundProxy = try SocketAddress(ipAddress: "10.0.0.5", port: 5060)
        #expect(configuration.resolvedTrustedSources.admits(try SocketAddress(ipAddress: "10.0.0.5", port: 40000)))
        #expect(!configuration.resolvedTrustedSources.admits(try SocketAddress(ipAddress: "10.0.0.6", port: 5060)))
        configuration.outboundProxy = nil
        #expect(throws: BridgeSettingsError.self) { try configuration.validate() }
        configuration.trustedSources = .any
        try configuration.validate()
    }

    @Test func anINVITEFromAStrangerGets403AndIsNeverOffered() throws {
        let harness = Harness()
        var invite = harness.callerInvite()
        // What Kamailio would vouch for: from a stranger it must not count.
        invite.headers.add("X-Switchboard-Auth-User", "alice")
        harness.receive(.request(invite), from: Self.stranger)
        let sent = harness.wire.take()
        #expect(sent.map(\.status) == [403])
        #expect(sent.first?.destination == Self.stranger)
        #expect(harness.bus.decisionRequests.isEmpty)
        #expect(harness.bus.events.isEmpty)
        // Its retransmission is refused again: no transaction was kept for it.
        harness.receive(.request(invite), from: Self.stranger)
        #expect(harness.wire.take().map(\.status) == [403])
    }

    @Test func responsesAndACKsFromAStrangerAreDropped() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee()
        // A stranger answering the bridge's INVITE cannot take the call over.
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 200, sdp: Harness.answer)), from: Self.stranger)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: "x", branch: "z9hG4bKack9")), from: Self.stranger)
        #expect(harness.wire.take().isEmpty)
        #expect(!harness.bus.types.contains("call.connected"))
        // The real callee still can.
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 200, sdp: Harness.answer)), from: Harness.callee)
        #expect(harness.bus.types.contains("call.connected"))
    }

    @Test func oneSourceCannotHoldMoreOffersThanItsCap() throws {
        var configuration = BridgeFixture.configuration()
        configuration.maxPendingOffersPerSource = 2
        let harness = Harness(configuration: configuration)
        for n in 1...3 {
            harness.receive(.request(harness.callerInvite(branch: "z9hG4bKcap\(n)", callID: "cap-\(n)")), from: Harness.caller)
        }
        #expect(harness.bus.decisionRequests.count == 2)
        let refusal = harness.wire.take().compactMap(\.response).first { $0.status == 503 }
        #expect(refusal?.callID == "cap-3")
        #expect(refusal?.headers["Retry-After"] == "5")
        // Another proxy is not held back by the first one's offers.
        let other = try SocketAddress(ipAddress: "127.0.0.3", port: 5060)
        harness.receive(.request(harness.callerInvite(branch: "z9hG4bKcap4", callID: "cap-4")), from: other)
        #expect(harness.bus.decisionRequests.count == 3)
        // A decided offer frees its slot.
        harness.resolveAll(.decided(.reject(status: 486), workerId: "w1"))
        harness.receive(.request(harness.callerInvite(branch: "z9hG4bKcap5", callID: "cap-5")), from: Harness.caller)
        #expect(harness.bus.decisionRequests.count == 4)
    }
}

/// A bus that anyone on the network could reach takes CURVE or an explicit yes.
@Suite struct BusExposureTests {
    @Test func aBusBeyondLoopbackWithoutCURVEDoesNotStart() throws {
        var configuration = BridgeConfiguration()
        configuration.decisionsEndpoint = "tcp://0.0.0.0:5571"
        #expect {
            try configuration.validate()
        } throws: { error in
            "\(error)".contains("tcp://0.0.0.0:5571 is reachable beyond this host")
        }
        configuration.busAllowInsecure = true
        try configuration.validate()
        configuration.busAllowInsecure = false
        (configuration.curveKeyFile, configuration.curveClientsDirectory) = ("bridge.key", "clients")
        try configuration.validate()
    }
}

/// The address the bridge gives in its Via and Contact.
@Suite struct AdvertisedAddressTests {
    @Test func anIPv6BridgeDialsWithABracketedViaAndContact() throws {
        let harness = SIPSideHarness(localHost: "[::1]")
        let invite = try harness.bridgeToCallee()
        #expect(invite.topVia?.host == "[::1]")
        #expect(invite.headers["Contact"] == "<sip:switchboard@[::1]:5080>")
    }

    @Test func theTransportBracketsAnIPv6Host() {
        let transport = NIOSIPTransport(logger: Logger(label: "test.transport"))
        transport.bound(host: "::1", port: 5080)
        #expect(transport.localHost == "[::1]")
        transport.bound(host: "[2001:db8::1]", port: 5080)
        #expect(transport.localHost == "[2001:db8::1]")
        transport.bound(host: "sbc.example.net", port: 5080)
        #expect(transport.localHost == "sbc.example.net")
    }

    @Test func aWildcardListenAddressNeedsAnAdvertisedOne() throws {
        var configuration = BridgeConfiguration()
        configuration.sipHost = "0.0.0.0"
        #expect {
            try configuration.validate()
        } throws: { error in
            "\(error)".contains("sip_advertised_address")
        }
        configuration.advertisedAddress = .init(host: "192.0.2.10", port: 0)
        try configuration.validate()
    }

    @Test(arguments: [
        ("sbc.example.net", "sbc.example.net", 0), ("192.0.2.10:5090", "192.0.2.10", 5090),
        ("[2001:db8::5]:5060", "2001:db8::5", 5060), ("[2001:db8::5]", "2001:db8::5", 0), ("2001:db8::5", "2001:db8::5", 0),
    ])
    func advertisedAddressesAreRead(text: String, host: String, port: Int) async throws {
        let setting = try #require(BridgeSetting.named("sip_advertised_address"))
        var configuration = BridgeConfiguration()
        try setting.apply(&configuration, .text(text))
        #expect(configuration.advertisedAddress == .init(host: host, port: port))
    }
}
