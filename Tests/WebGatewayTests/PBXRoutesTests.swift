import Foundation
import HTTPTypes
import HummingbirdTesting
import PBX
import Testing
@testable import WebGateway

@Suite struct PBXRoutesTests {
    static func pbxPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("pbx-\(UUID()).sqlite").path
    }

    static let admin = AccessPolicy(ratePerSecond: 100, burst: 100, admin: true)

    @Test func anAdminSavesListsAndDeletesRulesTheWorkerReads() async throws {
        let path = Self.pbxPath()
        let fixture = try GatewayFixture { $0.pbxDatabase = path }
        let admin = try fixture.key(Self.admin)
        try await fixture.test { client async throws in
            let saved = try await client.send(.put, "/api/v1/pbx/extensions/bob", key: admin.secret, json: """
                {"forward_busy":"carol","forward_no_answer":"sip:vm@vm.example","no_answer_seconds":5,
                 "schedule":{"time_zone":"Europe/Paris","days":["mon","tue"],"opens":"09:00","closes":"17:00"}}
                """)
            #expect(saved.status == .ok)
            #expect(saved.object["user"] as? String == "bob")
            let group = try await client.send(.put, "/api/v1/pbx/groups/sales", key: admin.secret,
                                              json: #"{"strategy":"round_robin","members":["alice","bob"],"ring_seconds":10}"#)
            #expect(group.status == .ok)
            let list = try await client.send(.get, "/api/v1/pbx", key: admin.secret)
            #expect((list.object["extensions"] as? [[String: Any]])?.compactMap { $0["user"] as? String } == ["bob"])
            #expect((list.object["groups"] as? [[String: Any]])?.first?["strategy"] as? String == "round_robin")
            // What the worker reads from the same file.
            let rule = try PBXStore(path: path).extension("bob")
            #expect(rule?.forwardBusy == "carol" && rule?.noAnswerSeconds == 5 && rule?.schedule?.timeZone == "Europe/Paris")

            #expect(try await client.send(.delete, "/api/v1/pbx/extensions/bob", key: admin.secret).status == .noContent)
            #expect(try await client.send(.get, "/api/v1/pbx/extensions/bob", key: admin.secret).status == .notFound)
            #expect(try await client.send(.delete, "/api/v1/pbx/extensions/bob", key: admin.secret).status == .notFound)
        }
    }

    @Test func badRulesAreRefusedByName() async throws {
        let fixture = try GatewayFixture { $0.pbxDatabase = Self.pbxPath() }
        let admin = try fixture.key(Self.admin)
        try await fixture.test { client async throws in
            for (body, detail) in [(#"{"schedule":{"time_zone":"Mars/Base","days":["mon"],"opens":"09:00","closes":"17:00"}}"#, "Mars/Base"),
                                   (#"{"no_answer_seconds":0}"#, "no_answer_seconds 0"),
                                   (#"{"forward_busy":"http://x"}"#, "forward_busy")] {
                let refused = try await client.send(.put, "/api/v1/pbx/extensions/bob", key: admin.secret, json: body)
                #expect(refused.status == .unprocessableContent, "\(body)")
                #expect((refused.object["detail"] as? String)?.contains(detail) == true, "\(refused.text)")
            }
            let mismatch = try await client.send(.put, "/api/v1/pbx/extensions/bob", key: admin.secret, json: #"{"user":"eve"}"#)
            #expect(mismatch.status == .badRequest)
            let notJSON = try await client.send(.put, "/api/v1/pbx/groups/g", key: admin.secret, json: #"{"strategy":"random","members":["a"]}"#)
            #expect(notJSON.status == .badRequest)
            _ = try await client.send(.put, "/api/v1/pbx/groups/sales", key: admin.secret, json: #"{"strategy":"sequential","members":["a"]}"#)
            let taken = try await client.send(.put, "/api/v1/pbx/extensions/sales", key: admin.secret, json: "{}")
            #expect(taken.status == .conflict)
        }
    }

    @Test func onlyAdminsAndOnlyWithADatabase() async throws {
        let fixture = try GatewayFixture { $0.pbxDatabase = Self.pbxPath() }
        let user = try fixture.key()
        try await fixture.test { client async throws in
            let refused = try await client.send(.get, "/api/v1/pbx", key: user.secret)
            #expect(refused.status == .forbidden)
        }
        let without = try GatewayFixture()
        let admin = try without.key(Self.admin)
        try await without.test { client async throws in
            #expect(try await client.send(.get, "/api/v1/pbx", key: admin.secret).status == .serviceUnavailable)
        }
    }
}
