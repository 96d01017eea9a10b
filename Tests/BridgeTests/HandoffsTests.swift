import BusSchema
import Testing
@testable import Bridge

/// `decide`: a call a proxy holds (OpenSER 1.x through switchboard-exec) goes through the INVITE's decision
/// path — offer, deadline, fallback, destination policy, events — and the reply carries the decision.
@Suite struct HandoffsTests {
    static let offer = HandoffOffer(requestUri: "sip:12025550100@switchboard.local", from: #""Alice" <sip:alice@switchboard.local>;tag=a1"#,
                                    to: "<sip:12025550100@switchboard.local>", sipCallId: "c-1@10.0.0.5",
                                    source: "10.0.0.5:5060;transport=udp", authUser: "alice")

    func decide(_ harness: SIPSideHarness, _ offer: HandoffOffer = offer, scope: CommandScope = .everyAccount) {
        harness.side.command(CommandRequest(requestId: "exec-1", command: .decide(offer)), envelope: [], scope: scope)
    }

    func decided(_ harness: SIPSideHarness) -> HandoffDecision? {
        if case .decided(let decided)? = harness.bus.replies.last?.outcome { decided } else { nil }
    }

    func answer(_ harness: SIPSideHarness, _ resolution: BusEndpoints.Resolution) {
        harness.side.resolve(harness.bus.decisionRequests.map { (requestId: $0.requestId, resolution: resolution) })
        harness.loop.run()
    }

    @Test func theOfferIsTheINVITEsAndTheWorkersRedirectComesBack() throws {
        let harness = SIPSideHarness()
        decide(harness)
        #expect(harness.bus.replies.isEmpty, "no reply before a decision")
        let offered = try #require(harness.bus.decisionRequests.first?.offer)
        #expect(offered.requestUri.user == "12025550100")
        #expect(offered.from.displayName == "Alice" && offered.from.user == "alice")
        #expect(offered.authUser == "alice")
        #expect(offered.source.address == "10.0.0.5" && offered.source.port == 5060)
        answer(harness, .decided(.redirect([Target(uri: "sip:12025550100@gw1.example.com", q: 1)]), workerId: "router-1"))
        let reply = try #require(decided(harness))
        #expect(reply.decision == .redirect([Target(uri: "sip:12025550100@gw1.example.com", q: 1)]))
        #expect(reply.workerId == "router-1" && !reply.fallback)
        #expect(harness.bus.types == ["call.offered", "call.routed"])
        #expect(harness.bus.events.map(\.callId) == [reply.callId, reply.callId])
    }

    @Test func aRejectCarriesItsStandardReason() throws {
        let harness = SIPSideHarness()
        decide(harness)
        answer(harness, .decided(.reject(status: 486), workerId: "pbx"))
        #expect(decided(harness)?.decision == .reject(status: 486, reason: "Busy Here"))
        #expect(harness.bus.types == ["call.offered", "call.rejected"])
    }

    @Test func theDeadlineGivesTheFallback() throws {
        let harness = SIPSideHarness(configuration: BridgeFixture.configuration(decisionTimeout: .milliseconds(500)))
        decide(harness)
        harness.advance(by: .milliseconds(499))
        #expect(harness.bus.replies.isEmpty)
        harness.advance(by: .milliseconds(1))
        let reply = try #require(decided(harness))
        #expect(reply.fallback && reply.cause == .timeout)
        #expect(reply.decision == .reject(status: 503, reason: "Service Unavailable", headers: ["Retry-After": "30"]))
        // A decision racing the deadline finds nothing waiting.
        answer(harness, .decided(.redirect([Target(uri: "sip:1@gw1.example.com")]), workerId: "late"))
        #expect(harness.bus.replies.count == 1)
    }

    @Test func aBridgeDecisionBecomesARedirectTheProxyForks() {
        let serial = Decision.bridge(BridgeRoute(targets: [BridgeTarget(uri: "sip:a@s"), BridgeTarget(uri: "sip:b@s")]))
        #expect(Handoffs.proxyable(serial) == .redirect([Target(uri: "sip:a@s", q: 1), Target(uri: "sip:b@s", q: 0.5)]))
        let parallel = Decision.bridge(BridgeRoute(targets: [BridgeTarget(uri: "sip:a@s"), BridgeTarget(uri: "sip:b@s")], mode: .parallel))
        #expect(Handoffs.proxyable(parallel) == .redirect([Target(uri: "sip:a@s", q: 1), Target(uri: "sip:b@s", q: 1)]))
    }

    @Test func targetsTheDestinationPolicyRefusesGiveA403() throws {
        let harness = SIPSideHarness()
        decide(harness)
        answer(harness, .decided(.redirect([Target(uri: "sip:19005550100@gw1.example.com")]), workerId: "router-1"))
        let reply = try #require(decided(harness))
        guard case .reject(403, _, let headers) = reply.decision else {
            Issue.record("not a 403: \(reply.decision)")
            return
        }
        #expect(headers["Warning"]?.contains("destination policy") == true)
        #expect(reply.cause == .policyDenied)
    }

    @Test func refusalsAreNamed() throws {
        let harness = SIPSideHarness()
        decide(harness, scope: .accounts(["acme"]))
        #expect(CommandScopeTests.code(harness.bus.replies.last?.outcome) == .accountDenied)
        decide(harness, HandoffOffer(requestUri: "sip:1@s", from: "not an address <", to: "<sip:1@s>", sipCallId: "c"))
        guard case .failed(let error)? = harness.bus.replies.last?.outcome else {
            Issue.record("accepted a From that does not parse")
            return
        }
        #expect(error.code == .badCommand && error.message.contains("from"), "\(error.message)")
        #expect(harness.bus.decisionRequests.isEmpty)
    }

    @Test func aStoppingBridgeAnswersWaitingHandoffsWithTheFallback() throws {
        let harness = SIPSideHarness()
        decide(harness)
        _ = harness.side.drain()
        let reply = try #require(decided(harness))
        #expect(reply.fallback && reply.cause == .shutdown)
    }
}
