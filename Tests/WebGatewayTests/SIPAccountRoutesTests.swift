import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import Testing
@testable import WebGateway

@Suite struct SIPAccountRoutesTests {
    /// Kamailio's database made by openser-cfg/make-db.sh itself (what the store is written against).
    static func makeKamailioDatabase() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kamailio-\(UUID()).db").path
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let process = try Process.run(URL(fileURLWithPath: "/bin/sh"), arguments: [repository.appendingPathComponent("openser-cfg/make-db.sh").path, path])
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)
        return path
    }

    static let admin = AccessPolicy(ratePerSecond: 100, burst: 100, admin: true)

    @Test func anAdminCreatesChangesDisablesAndDeletes() async throws {
        let kamailio = try Self.makeKamailioDatabase()
        let fixture = try GatewayFixture { $0.kamailioDatabase = kamailio }
        let admin = try fixture.key(Self.admin)
        try await fixture.test { client async throws in
            let created = try await client.send(.post, "/api/v1/sip-accounts", key: admin.secret, json: """
                {"user":"carol","password":"kx9-Tm2v-Qa7p","display_name":"Carol","aliases":["12025550123"],"billing_account":"acme"}
                """)
            #expect(created.status == .created)
            #expect(created.headers[.location] == "/api/v1/sip-accounts/carol")
            #expect(created.object["uri"] as? String == "sip:carol@switchboard.local")
            #expect(created.object["aliases"] as? [String] == ["12025550123"])
            #expect(created.object["enabled"] as? Bool == true)
            // Neither the password nor a hash is ever answered.
            #expect(!created.text.contains("kx9") && !created.text.contains("ha1"))

            let disabled = try await client.send(.patch, "/api/v1/sip-accounts/carol", key: admin.secret, json: #"{"enabled":false}"#)
            #expect(disabled.status == .ok)
            #expect(disabled.object["enabled"] as? Bool == false && disabled.object["display_name"] as? String == "Carol")
            let row = try DatabaseQueue(path: kamailio).read { db in
                try Row.fetchOne(db, sql: "SELECT password, ha1, disabled FROM subscriber WHERE username = 'carol'")
            }
            #expect(row?["password"] as String? == "" && row?["disabled"] as Int? == 1)
            #expect((row?["ha1"] as String?)?.count == 32)

            let list = try await client.send(.get, "/api/v1/sip-accounts", key: admin.secret)
            #expect((list.object["accounts"] as? [[String: Any]])?.compactMap { $0["user"] as? String } == ["carol"])
            let shown = try await client.send(.get, "/api/v1/sip-accounts/carol", key: admin.secret)
            #expect(shown.object["billing_account"] as? String == "acme")

            #expect(try await client.send(.delete, "/api/v1/sip-accounts/carol", key: admin.secret).status == .noContent)
            let gone = try await client.send(.get, "/api/v1/sip-accounts/carol", key: admin.secret)
            #expect(gone.status == .notFound)
        }
    }

    @Test func weakAndReusedPasswordsAreRefusedByName() async throws {
        let kamailio = try Self.makeKamailioDatabase()
        let fixture = try GatewayFixture { $0.kamailioDatabase = kamailio }
        let admin = try fixture.key(Self.admin)
        try await fixture.test { client async throws in
            for (password, rule) in [("short", "password_too_short"), ("Password2024!", "password_common"),
                                     ("carol-in-the-garden", "password_contains_user")] {
                let refused = try await client.send(.post, "/api/v1/sip-accounts", key: admin.secret,
                                                    json: #"{"user":"carol","password":"\#(password)"}"#)
                #expect(refused.status == .unprocessableContent)
                #expect(refused.object["rule"] as? String == rule)
                #expect(refused.object["type"] as? String == "https://switchboard.dev/problems/password-refused")
            }
            let created = try await client.send(.post, "/api/v1/sip-accounts", key: admin.secret,
                                                json: #"{"user":"carol","password":"kx9-Tm2v-Qa7p"}"#)
            #expect(created.status == .created)
            let reused = try await client.send(.patch, "/api/v1/sip-accounts/carol", key: admin.secret, json: #"{"password":"kx9-Tm2v-Qa7p"}"#)
            #expect(reused.status == .unprocessableContent)
            #expect(reused.object["rule"] as? String == "password_reused")
            let changed = try await client.send(.patch, "/api/v1/sip-accounts/carol", key: admin.secret, json: #"{"password":"Zq4-wide-Lake-81"}"#)
            #expect(changed.status == .ok)
        }
    }

    @Test func onlyAdminsMayProvision() async throws {
        let kamailio = try Self.makeKamailioDatabase()
        let fixture = try GatewayFixture { $0.kamailioDatabase = kamailio }
        let user = try fixture.key()
        try await fixture.test { client async throws in
            for (method, path) in [(HTTPRequest.Method.get, "/api/v1/sip-accounts"), (.post, "/api/v1/sip-accounts"),
                                   (.patch, "/api/v1/sip-accounts/carol"), (.delete, "/api/v1/sip-accounts/carol")] {
                let refused = try await client.send(method, path, key: user.secret, json: #"{"user":"carol","password":"kx9-Tm2v-Qa7p"}"#)
                #expect(refused.status == .forbidden, "\(method) \(path)")
                #expect(refused.object["type"] as? String == "https://switchboard.dev/problems/admin-required")
            }
            #expect(try await client.send(.get, "/api/v1/sip-accounts").status == .unauthorized)
        }
    }

    @Test func badInputIsNamed() async throws {
        let kamailio = try Self.makeKamailioDatabase()
        let fixture = try GatewayFixture { $0.kamailioDatabase = kamailio }
        let admin = try fixture.key(Self.admin)
        try await fixture.test { client async throws in
            let badUser = try await client.send(.post, "/api/v1/sip-accounts", key: admin.secret, json: #"{"user":"a b","password":"kx9-Tm2v-Qa7p"}"#)
            #expect(badUser.status == .badRequest && badUser.invalidParamNames == ["user"])
            let noPassword = try await client.send(.post, "/api/v1/sip-accounts", key: admin.secret, json: #"{"user":"carol"}"#)
            #expect(noPassword.invalidParamNames == ["password"])
            let header = try await client.send(.post, "/api/v1/sip-accounts", key: admin.secret,
                                               json: #"{"user":"carol","password":"kx9-Tm2v-Qa7p","billing_account":"a\r\nX-Evil: 1"}"#)
            #expect(header.invalidParamNames == ["billing_account"])
            try await client.send(.post, "/api/v1/sip-accounts", key: admin.secret, json: #"{"user":"carol","password":"kx9-Tm2v-Qa7p","aliases":["2000"]}"#)
            let duplicate = try await client.send(.post, "/api/v1/sip-accounts", key: admin.secret, json: #"{"user":"carol","password":"kx9-Tm2v-Qa7p"}"#)
            #expect(duplicate.status == .conflict)
            let taken = try await client.send(.post, "/api/v1/sip-accounts", key: admin.secret,
                                              json: #"{"user":"dave","password":"kx9-Tm2v-Qa7p","aliases":["2000"]}"#)
            #expect(taken.status == .conflict && taken.invalidParamNames == ["aliases"])
            let unknown = try await client.send(.patch, "/api/v1/sip-accounts/nobody", key: admin.secret, json: #"{"enabled":false}"#)
            #expect(unknown.status == .notFound)
        }
    }

    @Test func withoutAKamailioDatabaseItIs503() async throws {
        let fixture = try GatewayFixture()
        let admin = try fixture.key(Self.admin)
        try await fixture.test { client async throws in
            let response = try await client.send(.get, "/api/v1/sip-accounts", key: admin.secret)
            #expect(response.status == .serviceUnavailable)
            #expect(response.object["type"] as? String == "https://switchboard.dev/problems/no-kamailio-database")
        }
    }

    @Test func aFileMakeDBHasNotMadeStopsTheGateway() throws {
        let fixture = try GatewayFixture { $0.kamailioDatabase = "/nonexistent/switchboard.db" }
        #expect(throws: (any Error).self) { _ = try fixture.application() }
    }
}
