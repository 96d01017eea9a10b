import Foundation
import HTTPTypes
import HummingbirdTesting
import HummingbirdWSClient
import Logging
import NIOConcurrencyHelpers
import Testing
@testable import WebGateway

@Suite struct EventsSocketTests {
    @Test func aKeyGetsASnapshotThenItsCallsChanges() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        fixture.table.apply(.originated(callId: "mine", account: key.id, a: "sip:a@x", b: "sip:b@x"), bridge: "bridge-1", seq: 1, at: "t1")
        fixture.table.apply(.originated(callId: "other", account: "sbk_other", a: "sip:c@x", b: "sip:d@x"), bridge: "bridge-1",
                            seq: 2, at: "t2")
        let table = fixture.table
        let received = NIOLockedValueBox<[String]>([])
        try await fixture.application().test(.live) { client async throws in
            let port = try #require(client.port)
            try await WebSocketClient.connect(
                url: "ws://127.0.0.1:\(port)/api/v1/events",
                configuration: .init(additionalHeaders: [.authorization: "Bearer \(key.secret)"]),
                logger: Logger(label: "test")
            ) { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                if case .text(let snapshot) = try await messages.next() { received.withLockedValue { $0.append(snapshot) } }
                table.apply(.ringing(callId: "other", leg: "a"), bridge: "bridge-1", seq: 3, at: "t3")
                table.apply(.ringing(callId: "mine", leg: "a"), bridge: "bridge-1", seq: 4, at: "t4")
                if case .text(let change) = try await messages.next() { received.withLockedValue { $0.append(change) } }
                try await outbound.close(.normalClosure, reason: nil)
            }
        }
        let messages = received.withLockedValue { $0 }
        try #require(messages.count == 2)
        #expect(messages[0].contains(#""type":"snapshot""#))
        #expect(messages[0].contains(#""call_id":"mine""#))
        #expect(!messages[0].contains(#""call_id":"other""#))
        #expect(messages[1].contains(#""type":"call""#))
        #expect(messages[1].contains(#""call_id":"mine""#))
        #expect(messages[1].contains(#""state":"ringing""#))
    }

    @Test func noUpgradeWithoutAuthentication() async throws {
        let fixture = try GatewayFixture()
        try await fixture.application().test(.live) { client async throws in
            let port = try #require(client.port)
            await #expect(throws: (any Error).self) {
                try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/api/v1/events", logger: Logger(label: "test")) { _, _, _ in
                    Issue.record("upgraded without authentication")
                }
            }
        }
    }
}
