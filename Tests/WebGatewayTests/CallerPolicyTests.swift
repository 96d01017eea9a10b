import CallPolicy
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
@testable import WebGateway

@Suite struct CallerPolicyTests {
    func policy(_ access: AccessPolicy, user: String? = nil) -> CallerPolicy {
        CallerPolicy(policy: access, user: user, sipDomain: "switchboard.local", rules: DestinationRules())
    }

    @Test func fromMustBeOneOfTheNumbers() {
        let policy = policy(AccessPolicy(numbers: ["+1202555", "alice"]))
        #expect(policy.check(from: "+1 202 555 0100", callerId: nil) == nil)
        #expect(policy.check(from: "sip:alice@switchboard.local", callerId: nil) == nil)
        #expect(policy.check(from: "tel:+12025550101", callerId: nil) == nil)
        #expect(policy.check(from: "+13125550100", callerId: nil)?.rule == "from_not_owned")
        #expect(policy.check(from: "bob", callerId: nil)?.field == "from")
        // Our account's name on someone else's domain is not ours.
        #expect(policy.check(from: "sip:alice@evil.example", callerId: nil)?.rule == "from_not_owned")
        // Owning nothing (a key made before `numbers`): no from at all.
        #expect(self.policy(AccessPolicy()).check(from: "+12025550100", callerId: nil)?.rule == "from_not_owned")
    }

    @Test func aUserOwnsTheAccountOfItsNameExactly() {
        let policy = policy(AccessPolicy(), user: "alice")
        #expect(policy.check(from: "alice", callerId: nil) == nil)
        #expect(policy.check(from: "sip:alice@switchboard.local", callerId: "alice") == nil)
        #expect(policy.check(from: "alice2", callerId: nil)?.rule == "from_not_owned")
        #expect(self.policy(AccessPolicy()).check(from: "alice", callerId: nil)?.rule == "from_not_owned")
    }

    @Test func callerIdDefaultsToTheNumbersAndCanBeListed() {
        let owned = policy(AccessPolicy(numbers: ["+1202555"]))
        #expect(owned.check(from: "+12025550100", callerId: "+12025550199") == nil)
        let denied = owned.check(from: "+12025550100", callerId: "+18005550100")
        #expect(denied?.rule == "caller_id_not_allowed")
        #expect(denied?.field == "caller_id")
        let listed = policy(AccessPolicy(numbers: ["+1202555"], callerIds: ["+1800555"]))
        #expect(listed.check(from: "+12025550100", callerId: "+18005550100") == nil)
        #expect(listed.check(from: "+12025550100", callerId: "+12025550100")?.rule == "caller_id_not_allowed")
    }

    @Test func theRouteRefusesWith403NamingTheRuleAndSendsNothing() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key(AccessPolicy(ratePerSecond: 100, burst: 100, numbers: ["+1202555"]))
        try await fixture.test { client async throws in
            let from = try await client.send(.post, "/api/v1/calls", key: key.secret, json: #"{"from":"+13125550100","to":"bob"}"#)
            #expect(from.status == .forbidden)
            #expect(from.headers[.contentType] == "application/problem+json")
            #expect(from.object["type"] as? String == "https://switchboard.dev/problems/caller-denied")
            #expect(from.object["rule"] as? String == "from_not_owned")
            #expect(from.object["field"] as? String == "from")
            let callerId = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                 json: #"{"from":"+12025550100","to":"bob","caller_id":"+18005550100"}"#)
            #expect(callerId.status == .forbidden)
            #expect(callerId.object["rule"] as? String == "caller_id_not_allowed")
            #expect(callerId.object["field"] as? String == "caller_id")
            #expect(fixture.bridge.sent.isEmpty)
            let allowed = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                json: #"{"from":"+12025550100","to":"bob","caller_id":"+12025550199"}"#)
            #expect(allowed.status == .created)
        }
        #expect(fixture.bridge.sent.count == 1)
    }
}
