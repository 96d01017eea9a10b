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

    /// A WebSocket upgrade request as a browser would send it, through the plain HTTP test client.
    func upgrade(_ client: any TestClientProtocol, origin: String?, cookie: String? = nil, key: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [.connection: "Upgrade", .upgrade: "websocket", .secWebSocketKey: "dGhlIHNhbXBsZSBub25jZQ==",
                                   .secWebSocketVersion: "13"]
        if let origin { headers[.origin] = origin }
        if let cookie { headers[.cookie] = cookie }
        if let key { headers[.authorization] = "Bearer \(key)" }
        return try await client.executeRequest(uri: "/api/v1/events", method: .get, headers: headers, body: nil)
    }

    func sessionCookie(_ fixture: GatewayFixture) throws -> String {
        try fixture.store.addUser(name: "alice", password: "correct horse", policy: AccessPolicy(admin: true), iterations: 1000)
        let (cookie, _) = try #require(try fixture.store.openSession(user: "alice", lifetime: .seconds(3600)))
        return "sb_session=\(cookie)"
    }

    @Test func aForeignOriginIsRefusedWith403BeforeTheUpgrade() async throws {
        let fixture = try GatewayFixture()
        let cookie = try sessionCookie(fixture)
        // Each refusal closes its connection, and the live test client has one: one server per case.
        // A cookie without Origin is no browser; the gateway's host on another port is another origin.
        for origin in ["https://evil.example", nil, "http://127.0.0.1:1"] as [String?] {
            try await fixture.application().test(.live) { client async throws in
                let refused = try await upgrade(client, origin: origin, cookie: cookie)
                #expect(refused.status == .forbidden, "\(origin ?? "no Origin")")
                #expect(refused.headers[.contentType] == "application/problem+json")
                #expect(refused.object["type"] as? String == "https://switchboard.dev/problems/origin-denied")
            }
        }
    }

    @Test func theGatewaysOwnOriginAndConfiguredOnesMayUseTheCookie() throws {
        let policy = OriginPolicy(allowed: ["https://crm.example.com/"])
        #expect(policy.refusal(origin: "http://127.0.0.1:8080", host: "127.0.0.1:8080", hasAPIKey: false) == nil)
        #expect(policy.refusal(origin: "https://gw.example.com", host: "GW.example.com", hasAPIKey: false) == nil)
        #expect(policy.refusal(origin: "https://crm.example.com", host: "127.0.0.1:8080", hasAPIKey: false) == nil)
        #expect(policy.refusal(origin: "https://evil.example", host: "127.0.0.1:8080", hasAPIKey: false) != nil)
        #expect(policy.refusal(origin: "null", host: "127.0.0.1:8080", hasAPIKey: false) != nil)
        #expect(policy.refusal(origin: nil, host: "127.0.0.1:8080", hasAPIKey: false) != nil)
        // A key is sent by its holder's own client, never attached by a browser: any or no Origin.
        #expect(policy.refusal(origin: nil, host: "127.0.0.1:8080", hasAPIKey: true) == nil)
        #expect(policy.refusal(origin: "ws://127.0.0.1", host: "127.0.0.1:8080", hasAPIKey: true) == nil)
    }

    @Test func aConfiguredOriginOpensTheSocketWithTheCookie() async throws {
        // HummingbirdWSClient sends `Origin: ws://HOST` (no port): configured, it may use the cookie.
        let fixture = try GatewayFixture { $0.webSocketAllowedOrigins = ["ws://127.0.0.1"] }
        let cookie = try sessionCookie(fixture)
        let received = NIOLockedValueBox<[String]>([])
        try await fixture.application().test(.live) { client async throws in
            let port = try #require(client.port)
            try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/api/v1/events",
                                              configuration: .init(additionalHeaders: [.cookie: cookie]), logger: Logger(label: "test")) {
                inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                if case .text(let snapshot) = try await messages.next() { received.withLockedValue { $0.append(snapshot) } }
                try await outbound.close(.normalClosure, reason: nil)
            }
        }
        #expect(received.withLockedValue { $0.first?.contains(#""type":"snapshot""#) } == true)
    }

    @Test func aPrincipalOverItsSocketCapIsRefusedBeforeTheUpgrade() async throws {
        let fixture = try GatewayFixture { $0.webSocketsPerPrincipal = 1 }
        let key = try fixture.key()
        try await fixture.application().test(.live) { client async throws in
            let url = "ws://127.0.0.1:\(try #require(client.port))/api/v1/events"
            let headers: HTTPFields = [.authorization: "Bearer \(key.secret)"]
            try await WebSocketClient.connect(url: url, configuration: .init(additionalHeaders: headers), logger: Logger(label: "test")) {
                inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                _ = try await messages.next()  // the first socket is open and counted
                let upgrade: HTTPFields = [.authorization: "Bearer \(key.secret)", .connection: "Upgrade", .upgrade: "websocket",
                                           .secWebSocketVersion: "13", .secWebSocketKey: "dGhlIHNhbXBsZSBub25jZQ=="]
                let refused = try await client.execute(uri: "/api/v1/events", method: .get, headers: upgrade)
                #expect(refused.status == .badRequest)
                await #expect(throws: (any Error).self) {
                    try await WebSocketClient.connect(url: url, configuration: .init(additionalHeaders: headers),
                                                      logger: Logger(label: "test")) { _, _, _ in }
                }
                try await outbound.close(.normalClosure, reason: nil)
            }
            // Once the first is closed, the cap is free again.
            try await Task.sleep(for: .milliseconds(200))
            let again = try await WebSocketClient.connect(url: url, configuration: .init(additionalHeaders: headers),
                                                          logger: Logger(label: "test")) { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                #expect(try await messages.next() != nil)
                try await outbound.close(.normalClosure, reason: nil)
            }
            #expect(again?.closeCode != .policyViolation)
        }
    }

    /// Opens a socket, ends its credentials with `end`, and returns how the server closed it (the
    /// client gives up after 5 s and closes it normally itself).
    func closeAfter(_ fixture: GatewayFixture, headers: HTTPFields, _ end: @escaping @Sendable () throws -> Void) async throws
        -> WebSocketCloseFrame? {
        let close = NIOLockedValueBox<WebSocketCloseFrame?>(nil)
        try await fixture.application().test(.live) { client async throws in
            let port = try #require(client.port)
            let frame = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/api/v1/events",
                                                          configuration: .init(additionalHeaders: headers),
                                                          logger: Logger(label: "test")) { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                _ = try await messages.next()
                try end()
                let giveUp = Task {
                    try await Task.sleep(for: .seconds(5))
                    try await outbound.close(.normalClosure, reason: nil)
                }
                while try await messages.next() != nil {}
                giveUp.cancel()
            }
            close.withLockedValue { $0 = frame }
        }
        return close.withLockedValue { $0 }
    }

    @Test func revokingTheKeyClosesItsOpenSocket() async throws {
        let fixture = try GatewayFixture { $0.webSocketRecheckInterval = .milliseconds(100) }
        let key = try fixture.key()
        let store = fixture.store
        let close = try await closeAfter(fixture, headers: [.authorization: "Bearer \(key.secret)"]) { try store.revokeKey(id: key.id) }
        #expect(close?.closeCode == .policyViolation)
    }

    @Test func loggingOutClosesTheSessionsOpenSocket() async throws {
        let fixture = try GatewayFixture {
            $0.webSocketRecheckInterval = .milliseconds(100)
            $0.webSocketAllowedOrigins = ["ws://127.0.0.1"]
        }
        let cookie = try sessionCookie(fixture)
        let store = fixture.store
        let close = try await closeAfter(fixture, headers: [.cookie: cookie]) {
            try store.logout(cookie: String(cookie.dropFirst("sb_session=".count)))
        }
        #expect(close?.closeCode == .policyViolation)
    }
}
