import Testing
@testable import Bridge

/// The SIP TCP listener's caps: who may connect, how many connections stay open, and for how long idle.
@Suite struct SIPConnectionGateTests {
    @Test func aConnectionBeyondTheCapIsClosedAndTheSlotComesBackWhenOneCloses() async throws {
        var configuration = BridgeFixture.configuration()
        configuration.tcpMaxConnections = 2
        try await BridgeFixture.with(configuration) { _, bound in
            do {
                let first = try SIPTestClient(.tcp, bridgePort: bound.sipPort)
                let second = try SIPTestClient(.tcp, bridgePort: bound.sipPort)
                let third = try SIPTestClient(.tcp, bridgePort: bound.sipPort)
                #expect(await third.closedByPeer(within: 2))
                #expect(await !first.closedByPeer(within: 0.3))
                #expect(await !second.closedByPeer(within: 0.1))
            }
            // The first two are closed now; the bridge sees it on its loop; a new connection is admitted once it has.
            var admitted = false
            for _ in 0..<20 where !admitted {
                let next = try SIPTestClient(.tcp, bridgePort: bound.sipPort)
                admitted = await !next.closedByPeer(within: 0.2)
            }
            #expect(admitted)
        }
    }

    @Test func anIdleConnectionIsClosedAfterTheIdleTimeout() async throws {
        var configuration = BridgeFixture.configuration()
        configuration.tcpIdleTimeout = .milliseconds(300)
        try await BridgeFixture.with(configuration) { _, bound in
            let phone = try SIPTestClient(.tcp, bridgePort: bound.sipPort)
            #expect(await phone.closedByPeer(within: 5))
        }
    }

    @Test func aStrangersConnectionIsClosedBeforeItIsRead() async throws {
        var configuration = BridgeFixture.configuration()
        configuration.trustedSources = try TrustedSources(parsing: "127.0.0.2")
        try await BridgeFixture.with(configuration) { _, bound in
            let stranger = try SIPTestClient(.tcp, bridgePort: bound.sipPort)
            stranger.send(stranger.request("OPTIONS", branch: "stranger"))
            #expect(await stranger.closedByPeer(within: 2))
        }
    }
}
