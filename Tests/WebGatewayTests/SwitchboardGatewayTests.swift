import ArgumentParser
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
@testable import WebGateway

/// The CLI's `keys numbers` and `users numbers`: numbers of an existing key or user.
@Suite struct SwitchboardGatewayTests {
    @Test func keysNumbersAddsAndRemovesAndTheKeysNextRequestSeesThem() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key(AccessPolicy(ratePerSecond: 100, burst: 100, numbers: ["alice"]))
        let database = fixture.configuration.database
        let body = #"{"from":"+12025550100","to":"bob"}"#
        try await fixture.test { client async throws in
            let before = try await client.send(.post, "/api/v1/calls", key: key.secret, json: body)
            #expect(before.object["rule"] as? String == "from_not_owned")
            let change = try KeysCommand.Numbers.parse(["--db", database, "--id", key.id, "--add", "+1202", "--remove", "alice"])
            #expect(try await change.execute() == "key \(key.id) owns +1202")
            #expect(try await client.send(.post, "/api/v1/calls", key: key.secret, json: body).status == .created)
            let none = try KeysCommand.Numbers.parse(["--db", database, "--id", key.id, "--remove", "+1202"])
            #expect(try await none.execute() == "key \(key.id) owns no number: it can place no call")
            let after = try await client.send(.post, "/api/v1/calls", key: key.secret, json: body)
            #expect(after.object["rule"] as? String == "from_not_owned")
        }
    }

    @Test func usersNumbersChangesTheUsersNumbersAndAddingTwiceKeepsOne() async throws {
        let fixture = try GatewayFixture()
        try fixture.store.addUser(name: "ops", password: "a long password", policy: AccessPolicy(), iterations: 1_000)
        let database = fixture.configuration.database
        let add = try UsersCommand.Numbers.parse(["--db", database, "--name", "ops", "--add", "+1202", "--add", "+1303", "--add", "+1202"])
        #expect(try await add.execute() == "user ops owns its own SIP account and +1202, +1303")
        let remove = try UsersCommand.Numbers.parse(["--db", database, "--name", "ops", "--remove", "+1202", "--remove", "+1303"])
        #expect(try await remove.execute() == "user ops owns its own SIP account only")
        #expect(try fixture.store.user(name: "ops")?.policy.numbers == [])
    }

    @Test func aRemovalOfANumberItDoesNotHaveChangesNothingAndSaysWhatItHas() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key(AccessPolicy(numbers: ["+1202"]))
        let database = fixture.configuration.database
        let typo = try KeysCommand.Numbers.parse(["--db", database, "--id", key.id, "--add", "+1303", "--remove", "+1220"])
        await #expect(throws: GatewayStoreError.notANumberOf("+1220", numbers: ["+1202", "+1303"])) { try await typo.execute() }
        #expect(try fixture.store.key(id: key.id)?.policy.numbers == ["+1202"])
        let unknownKey = try KeysCommand.Numbers.parse(["--db", database, "--id", "sbk_00000000", "--add", "+1"])
        await #expect(throws: GatewayStoreError.unknownKey("sbk_00000000")) { try await unknownKey.execute() }
        let unknownUser = try UsersCommand.Numbers.parse(["--db", database, "--name", "nobody", "--add", "+1"])
        await #expect(throws: GatewayStoreError.unknownUser("nobody")) { try await unknownUser.execute() }
        // Nothing to do, or a pattern that is not one, is refused before the database is opened.
        #expect(throws: (any Error).self) { try KeysCommand.Numbers.parse(["--db", database, "--id", key.id]) }
        #expect(throws: (any Error).self) { try KeysCommand.Numbers.parse(["--db", database, "--id", key.id, "--add", "+1 202"]) }
    }
}
