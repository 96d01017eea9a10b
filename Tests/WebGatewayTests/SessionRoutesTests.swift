import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import WebGateway

@Suite struct SessionRoutesTests {
    /// Logs alice in and returns her cookie header and CSRF token.
    func login(_ client: any TestClientProtocol, password: String = "correct horse") async throws -> (cookie: String, csrf: String)? {
        let response = try await client.send(.post, "/api/v1/session", json: #"{"username":"alice","password":"\#(password)"}"#)
        guard response.status == .ok, let setCookie = response.headers[.setCookie],
              let csrf = response.object["csrf_token"] as? String else { return nil }
        return (String(setCookie.prefix { $0 != ";" }), csrf)
    }

    func fixture() throws -> GatewayFixture {
        let fixture = try GatewayFixture()
        try fixture.store.addUser(name: "alice", password: "correct horse", policy: AccessPolicy(ratePerSecond: 100, burst: 100, admin: true, numbers: ["+1"]),
                                  iterations: 1000)
        return fixture
    }

    @Test func loginSetsAStrictHttpOnlyCookieAndLogoutEndsTheSession() async throws {
        let fixture = try fixture()
        try await fixture.test { client async throws in
            #expect(try await login(client, password: "wrong") == nil)
            let response = try await client.send(.post, "/api/v1/session", json: #"{"username":"alice","password":"correct horse"}"#)
            let setCookie = try #require(response.headers[.setCookie])
            #expect(setCookie.hasPrefix("sb_session="))
            #expect(setCookie.contains("HttpOnly"))
            #expect(setCookie.contains("SameSite=Strict"))
            #expect(!setCookie.contains("Secure"))  // no TLS in this test
            let session = try #require(try await login(client))
            let current = try await client.send(.get, "/api/v1/session", headers: [.cookie: session.cookie])
            #expect(current.object["user"] as? String == "alice")
            #expect(current.object["csrf_token"] as? String == session.csrf)
            // Logout changes state: it needs the token too.
            #expect(try await client.send(.delete, "/api/v1/session", headers: [.cookie: session.cookie]).status == .forbidden)
            let logout = try await client.send(.delete, "/api/v1/session", headers: [.cookie: session.cookie, .csrfToken: session.csrf])
            #expect(logout.status == .noContent)
            #expect(try await client.send(.get, "/api/v1/calls", headers: [.cookie: session.cookie]).status == .unauthorized)
        }
    }

    @Test func loginNeedsJSON() async throws {
        let fixture = try fixture()
        try await fixture.test { client async throws in
            let form = try await client.executeRequest(uri: "/api/v1/session", method: .post,
                                                       headers: [.contentType: "application/x-www-form-urlencoded"],
                                                       body: ByteBuffer(string: "username=alice&password=correct+horse"))
            #expect(form.status == .unsupportedMediaType)
            let missing = try await client.send(.post, "/api/v1/session", json: #"{"username":"alice"}"#)
            #expect(missing.invalidParamNames == ["password"])
        }
    }

    @Test func sessionRequestsThatChangeStateNeedTheCSRFToken() async throws {
        let fixture = try fixture()
        let body = #"{"from":"+12025550100","to":"bob"}"#
        try await fixture.test { client async throws in
            let session = try #require(try await login(client))
            // Reading needs no token.
            #expect(try await client.send(.get, "/api/v1/calls", headers: [.cookie: session.cookie]).status == .ok)
            let missing = try await client.send(.post, "/api/v1/calls", json: body, headers: [.cookie: session.cookie])
            #expect(missing.status == .forbidden)
            #expect(missing.object["type"] as? String == "https://switchboard.dev/problems/csrf")
            let wrong = try await client.send(.post, "/api/v1/calls", json: body, headers: [.cookie: session.cookie, .csrfToken: "x"])
            #expect(wrong.status == .forbidden)
            #expect(fixture.bridge.sent.isEmpty)
            let right = try await client.send(.post, "/api/v1/calls", json: body,
                                              headers: [.cookie: session.cookie, .csrfToken: session.csrf])
            #expect(right.status == .created)
            let callId = try #require(right.object["call_id"] as? String)
            #expect(fixture.table.call(id: callId)?.owner == "user:alice")
        }
    }

    @Test func passwordsAreStoredAsPBKDF2() throws {
        let stored = try PasswordHash.make("correct horse", iterations: 1000)
        #expect(stored.hasPrefix("pbkdf2-sha256$1000$"))
        #expect(!stored.contains("correct"))
        #expect(PasswordHash.verify("correct horse", against: stored))
        #expect(!PasswordHash.verify("correct horsE", against: stored))
        #expect(!PasswordHash.verify("correct horse", against: "sha256$abc"))
    }

    @Test func secureCookiesSetsSecureOnTheSessionCookieWithoutTLS() async throws {
        var fixture = try fixture()
        fixture.configuration.secureCookies = true  // TLS ends at a proxy in front
        try await fixture.test { client async throws in
            let response = try await client.send(.post, "/api/v1/session", json: #"{"username":"alice","password":"correct horse"}"#)
            #expect(response.headers[.setCookie]?.contains("Secure") == true)
            let session = try #require(try await login(client))
            let logout = try await client.send(.delete, "/api/v1/session", headers: [.cookie: session.cookie, .csrfToken: session.csrf])
            #expect(logout.headers[.setCookie]?.contains("Secure") == true)
        }
    }
}
