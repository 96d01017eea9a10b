import BusSchema
import SIPCore
import Testing
@testable import Bridge

/// The bridge checks every URI it is asked to dial or redirect to, whether or not a gateway checked it
/// first: commands always, worker targets unless `policy_worker_targets` is `off`.
@Suite struct DestinationGuardTests {
    typealias Harness = SIPSideHarness

    static let premium = "sip:+19005551234@127.0.0.2"
    static let caribbean = "sip:+18095551234@127.0.0.2"

    /// The caller's INVITE decided by a worker; returns the caller's final response.
    private func decide(_ decision: Decision, _ harness: Harness = Harness()) -> SIPResponse? {
        harness.receive(.request(harness.callerInvite()), from: Harness.caller)
        harness.resolveAll(.decided(decision, workerId: "w1"))
        return harness.wire.take().compactMap(\.response).first { $0.status >= 200 }
    }

    /// The message of a `policy_denied` refusal; nil for any other outcome.
    private func policyMessage(_ outcome: CommandOutcome) -> String? {
        guard case .failed(let error) = outcome, error.code == .policyDenied else { return nil }
        return error.message
    }

    @Test func aRefusedRedirectTargetIsDroppedAndTheOthersStay() throws {
        let response = try #require(decide(.redirect([Target(uri: Self.premium, q: 1), Target(uri: "sip:+12025550100@127.0.0.2", q: 0.5)])))
        #expect(response.status == 302)
        #expect(response.headers["Contact"] == "<sip:+12025550100@127.0.0.2>;q=0.5")
    }

    @Test func whenNoTargetIsLeftTheCallerGets403NamingTheRule() throws {
        let harness = Harness()
        let response = try #require(decide(.redirect([Target(uri: Self.caribbean), Target(uri: "sip:+12025550100@evil.example")]), harness))
        #expect(response.status == 403)
        #expect(response.headers["Warning"] == #"399 switchboard "destination policy: nanp_foreign""#)
        guard case .callRejected(let rejected)? = harness.bus.events.last?.body else {
            Issue.record("no call.rejected: \(harness.bus.types)")
            return
        }
        #expect(rejected.cause == .policyDenied)
        #expect(rejected.status == 403)
        #expect(rejected.workerId == "w1")
    }

    @Test func aBridgeDecisionToADeniedNumberDialsNothing() throws {
        let harness = Harness()
        let route = BridgeRoute(targets: [BridgeTarget(uri: "sip:19005551234:x@127.0.0.2")])
        harness.receive(.request(harness.callerInvite()), from: Harness.caller)
        harness.resolveAll(.decided(.bridge(route), workerId: "w1"))
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.request).isEmpty, "no INVITE to the callee")
        #expect(sent.compactMap(\.response).last?.status == 403)
        #expect(sent.compactMap(\.response).last?.headers["Warning"]?.contains("password_in_uri") == true)
    }

    @Test func workerTargetsCanBeLeftUnchecked() throws {
        var configuration = BridgeFixture.configuration()
        configuration.policyWorkerTargets = .off
        let response = try #require(decide(.redirect([Target(uri: Self.caribbean)]), Harness(configuration: configuration)))
        #expect(response.status == 302)
    }

    @Test func theFallbackIsTheOperatorsAndIsNotScreened() throws {
        var configuration = BridgeFixture.configuration()
        configuration.fallback = .redirect([Target(uri: "sip:operator@pbx.example.com", q: 1)])
        let harness = Harness(configuration: configuration)
        harness.receive(.request(harness.callerInvite()), from: Harness.caller)
        harness.resolveAll(.fallback(.noWorker))
        #expect(harness.wire.take().compactMap(\.response).first { $0.status >= 200 }?.status == 302)
    }

    @Test func anOriginateToADeniedDestinationIsRefusedNamingTheRule() {
        let harness = Harness()
        let outcome = harness.side.b2bua.execute(.originate(Originate(a: Party(uri: "sip:alice@switchboard.local"),
                                                                      b: Party(uri: Self.caribbean))))
        #expect(policyMessage(outcome)?.hasPrefix("nanp_foreign: b.uri: ") == true, "\(outcome)")
        #expect(harness.wire.take().isEmpty, "nothing dialled")
        #expect(harness.bus.events.isEmpty, "no call.originated")

        let password = harness.side.b2bua.execute(.originate(Originate(a: Party(uri: "sip:19005551234:x@anyhost"),
                                                                       b: Party(uri: "sip:bob@switchboard.local"))))
        #expect(password == .failed(ErrorReply(code: .policyDenied, message: "password_in_uri: a.uri: a password in the URI (user:password@host) is not allowed")))
    }

    @Test func aTransferToADeniedTargetIsRefusedAndTheCallStays() throws {
        let harness = Harness()
        let (_, ok) = try harness.answeredCall()
        let toTag = try #require(ok.to?.tag)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        let callId = try #require(harness.bus.events.first?.callId)
        _ = harness.wire.take()
        let outcome = harness.side.b2bua.execute(.transfer(callId: callId, leg: .a, target: "tel:+1-809-555-1234"))
        #expect(policyMessage(outcome)?.hasPrefix("nanp_foreign: target: ") == true, "\(outcome)")
        #expect(harness.wire.take().isEmpty, "no BYE, no INVITE")
        #expect(harness.bus.types.last == "call.connected")
    }
}
