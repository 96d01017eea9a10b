import BusSchema
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import WebGateway

@Suite struct CallRoutesTests {
    let body = #"{"from":"+12025550100","to":"sip:bob@switchboard.local"}"#

    @Test func withoutAKeyIs401ProblemJSON() async throws {
        let fixture = try GatewayFixture()
        try await fixture.test { client async throws in
            let response = try await client.send(.post, "/api/v1/calls", json: body)
            #expect(response.status == .unauthorized)
            #expect(response.headers[.contentType] == "application/problem+json")
            #expect(response.headers[.wwwAuthenticate] != nil)
            #expect(response.object["type"] as? String == "https://switchboard.dev/problems/unauthorized")
            #expect(response.object["status"] as? Int == 401)
            #expect(response.object["title"] as? String == "Not authenticated")
            #expect((response.object["detail"] as? String)?.contains("API key") == true)
            #expect(try await client.send(.get, "/api/v1/calls").status == .unauthorized)
        }
        #expect(fixture.bridge.sent.isEmpty)
    }

    @Test func aRevokedKeyIs401() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            #expect(try await client.send(.get, "/api/v1/calls", key: key.secret).status == .ok)
            try fixture.store.revokeKey(id: key.id)
            let response = try await client.send(.get, "/api/v1/calls", key: key.secret)
            #expect(response.status == .unauthorized)
            #expect((response.object["detail"] as? String)?.contains("revoked") == true)
            // A right id with a wrong secret is no better.
            let forged = try await client.send(.get, "/api/v1/calls", key: key.id + "_" + Secrets.randomToken())
            #expect(forged.status == .unauthorized)
            #expect(try key.id.wholeMatch(of: Regex("sbk_[0-9a-f]{8}")) != nil)
            #expect(key.secret.hasPrefix(key.id + "_"))
            #expect(try fixture.store.key(id: key.id)?.secretHash == Secrets.sha256Hex(key.secret))
        }
    }

    @Test func overTheKeysRateIs429WithRetryAfter() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key(AccessPolicy(ratePerSecond: 0.5, burst: 2))
        try await fixture.test { client async throws in
            #expect(try await client.send(.get, "/api/v1/calls", key: key.secret).status == .ok)
            #expect(try await client.send(.get, "/api/v1/calls", key: key.secret).status == .ok)
            let limited = try await client.send(.get, "/api/v1/calls", key: key.secret)
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[.retryAfter] == "2")
            #expect(limited.object["type"] as? String == "https://switchboard.dev/problems/rate-limited")
            // Another key is not affected.
            let other = try fixture.key()
            #expect(try await client.send(.get, "/api/v1/calls", key: other.secret).status == .ok)
        }
    }

    @Test func overTheSourceRateIs429EvenWithoutAKey() async throws {
        let fixture = try GatewayFixture { $0.sourceBurst = 3; $0.sourceRatePerSecond = 0.1 }
        try await fixture.test { client async throws in
            for _ in 0..<3 { #expect(try await client.send(.get, "/api/v1/calls").status == .unauthorized) }
            let limited = try await client.send(.get, "/api/v1/calls")
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[.retryAfter] != nil)
        }
    }

    @Test func aDeniedDestinationIs403NamingTheRuleAndSendsNoCommand() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            let international = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                      json: #"{"from":"+12025550100","to":"0044 20 7946 0000"}"#)
            #expect(international.status == .forbidden)
            #expect(international.object["type"] as? String == "https://switchboard.dev/problems/destination-denied")
            #expect(international.object["rule"] as? String == "international")
            #expect(international.object["field"] as? String == "to")
            let premium = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                json: #"{"from":"+19005551234","to":"sip:bob@switchboard.local"}"#)
            #expect(premium.status == .forbidden)
            #expect(premium.object["rule"] as? String == "premium_rate")
            #expect(premium.object["field"] as? String == "from")
        }
        #expect(fixture.bridge.sent.isEmpty)
    }

    /// Issue 11: a password hid the number from the text check and the host was never checked; and with
    /// home country 1 every NANP number passed, the Caribbean's revenue-share codes included.
    @Test func theIssuesTwoAttacksAre403NamingTheRule() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            let password = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                 json: #"{"from":"+12025550100","to":"sip:19005551234:x@anyhost"}"#)
            #expect(password.status == .forbidden)
            #expect(password.object["rule"] as? String == "password_in_uri")
            #expect(password.object["field"] as? String == "to")
            let caribbean = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                  json: #"{"from":"+12025550100","to":"+18095551234"}"#)
            #expect(caribbean.status == .forbidden)
            #expect(caribbean.object["rule"] as? String == "nanp_foreign")
            #expect(caribbean.object["pattern"] as? String == "+1809")
            let host = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                             json: #"{"from":"+12025550100","to":"sip:bob@evil.example"}"#)
            #expect(host.object["rule"] as? String == "host_not_allowed")
            // The gateway has no trunk by default: not even loopback may be named.
            let loopback = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                 json: #"{"from":"+12025550100","to":"sip:bob@127.0.0.1:5060"}"#)
            #expect(loopback.object["rule"] as? String == "host_not_allowed")
        }
        #expect(fixture.bridge.sent.isEmpty)
    }

    @Test func aKeysDenyPatternRefusesAndItsAllowPatternLiftsTheDefault() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key(AccessPolicy(allow: ["+44", "+1"], deny: ["+1202555"], ratePerSecond: 100, burst: 100, numbers: ["+1"]))
        try await fixture.test { client async throws in
            let denied = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                               json: #"{"from":"+12025550100","to":"+13125550100"}"#)
            #expect(denied.status == .forbidden)
            #expect(denied.object["rule"] as? String == "key_deny")
            #expect(denied.object["pattern"] as? String == "+1202555")
            #expect(fixture.bridge.sent.isEmpty)
            let allowed = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                json: #"{"from":"+13125550100","to":"+442079460000"}"#)
            #expect(allowed.status == .created)
        }
        #expect(fixture.bridge.sent.count == 1)
    }

    @Test func originateSendsTheCommandAndReturnsTheCall() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            let response = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                 json: #"{"from":"+1 202 555 0100","to":"bob","ring_timeout_s":20}"#)
            #expect(response.status == .created)
            let callId = try #require(response.object["call_id"] as? String)
            #expect(response.headers[.location] == "/api/v1/calls/\(callId)")
            let call = try await client.send(.get, "/api/v1/calls/\(callId)", key: key.secret)
            #expect(call.status == .ok)
            #expect(call.object["owner"] as? String == key.id)
            #expect(call.object["state"] as? String == "dialing")
        }
        guard case .originate(let command) = fixture.bridge.sent.first else {
            Issue.record("no originate sent")
            return
        }
        #expect(command.a.uri == "sip:+12025550100@switchboard.local")
        #expect(command.b.uri == "sip:bob@switchboard.local")
        #expect(command.a.ringTimeoutMs == 20_000)
        #expect(command.b.callerId?.uri == command.a.uri)
        #expect(command.account == key.id)
        #expect(command.idempotencyKey == nil)
    }

    @Test func theIdempotencyKeyIsScopedByKeyAndReturnsTheFirstCall() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            let headers: HTTPFields = [.idempotencyKey: "order-42"]
            let first = try await client.send(.post, "/api/v1/calls", key: key.secret, json: body, headers: headers)
            let second = try await client.send(.post, "/api/v1/calls", key: key.secret, json: body, headers: headers)
            #expect(first.status == .created)
            #expect(second.status == .ok)
            #expect(second.object["existing"] as? Bool == true)
            #expect(second.object["call_id"] as? String == first.object["call_id"] as? String)
        }
        guard case .originate(let command) = fixture.bridge.sent.first else { return }
        #expect(command.idempotencyKey == "\(key.id):order-42")
    }

    @Test func aRepeatedIdempotencyKeyOfALiveCallIsNotCountedAgainstTheCap() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key(AccessPolicy(maxConcurrent: 1, ratePerSecond: 100, burst: 100, numbers: ["+1"]))
        try await fixture.test { client async throws in
            let headers: HTTPFields = [.idempotencyKey: "order-7"]
            let first = try await client.send(.post, "/api/v1/calls", key: key.secret, json: body, headers: headers)
            #expect(first.status == .created)
            // The client lost the response and retries: the same call, though the key is at its cap.
            let retry = try await client.send(.post, "/api/v1/calls", key: key.secret, json: body, headers: headers)
            #expect(retry.status == .ok)
            #expect(retry.object["existing"] as? Bool == true)
            #expect(retry.object["call_id"] as? String == first.object["call_id"] as? String)
            // Another call is over the cap.
            let other = try await client.send(.post, "/api/v1/calls", key: key.secret, json: body, headers: [.idempotencyKey: "order-8"])
            #expect(other.status == .tooManyRequests)
            let callId = try #require(first.object["call_id"] as? String)
            #expect(fixture.table.call(id: callId)?.idempotencyKey == "\(key.id):order-7")
        }
        #expect(fixture.bridge.sent.count == 2)
    }

    @Test func overTheConcurrencyCapIs429UntilACallEnds() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key(AccessPolicy(maxConcurrent: 2, ratePerSecond: 100, burst: 100, numbers: ["+1"]))
        try await fixture.test { client async throws in
            let first = try await client.send(.post, "/api/v1/calls", key: key.secret, json: body)
            #expect(try await client.send(.post, "/api/v1/calls", key: key.secret, json: body).status == .created)
            let capped = try await client.send(.post, "/api/v1/calls", key: key.secret, json: body)
            #expect(capped.status == .tooManyRequests)
            #expect(capped.object["type"] as? String == "https://switchboard.dev/problems/concurrency-limit")
            #expect(fixture.bridge.sent.count == 2)
            // The bridge says the first call ended: the key may call again.
            let callId = try #require(first.object["call_id"] as? String)
            fixture.table.apply(.ended(callId: callId, cause: "normal_clearing"), bridge: "bridge-1", seq: 9, at: Timestamp.now())
            #expect(try await client.send(.post, "/api/v1/calls", key: key.secret, json: body).status == .created)
        }
    }

    @Test func aMalformedBodyIs400NamingTheField() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            let missing = try await client.send(.post, "/api/v1/calls", key: key.secret, json: #"{"from":"+12025550100"}"#)
            #expect(missing.status == .badRequest)
            #expect(missing.headers[.contentType] == "application/problem+json")
            #expect(missing.invalidParamNames == ["to"])
            let wrongType = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                  json: #"{"from":"+12025550100","to":"bob","ring_timeout_s":"soon"}"#)
            #expect(wrongType.invalidParamNames == ["ring_timeout_s"])
            let outOfRange = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                   json: #"{"from":"+12025550100","to":"bob","ring_timeout_s":0}"#)
            #expect(outOfRange.invalidParamNames == ["ring_timeout_s"])
            let badURI = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                               json: #"{"from":"<sip:evil>","to":"bob"}"#)
            #expect(badURI.invalidParamNames == ["from"])
            let notJSON = try await client.send(.post, "/api/v1/calls", key: key.secret, json: "{from:")
            #expect(notJSON.status == .badRequest)
            #expect(notJSON.invalidParamNames == ["body"])
            let badIdempotency = try await client.send(.post, "/api/v1/calls", key: key.secret, json: body,
                                                       headers: [.idempotencyKey: String(repeating: "k", count: 200)])
            #expect(badIdempotency.invalidParamNames == ["Idempotency-Key"])
        }
        #expect(fixture.bridge.sent.isEmpty)
    }

    /// schemathesis: `caller_id: ""` fitted the document (a string) and was refused 400. The document's `Party` pattern
    /// and `maxLength` now say what the gateway takes: each sample is refused 400 by both or by neither.
    @Test func thePartySyntaxIsTheDocumentsPattern() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key(AccessPolicy(maxConcurrent: 100, ratePerSecond: 100, burst: 100, numbers: ["*"]))
        let samples = ["+1 (202) 555-0100", "alice", " alice\t", "bob.smith_2", "sip:bob@switchboard.local", "SIPS:bob@switchboard.local",
                       "tel:+12025550100", "sip:ü@switchboard.local", String(repeating: "1", count: 256), "", " ", "sip:", "sip: bob",
                       "sip:bob smith", "sip:<bob>", "tel:+1\"", "a\tb", "(-)", "<sip:evil>", "alice@host", "ü", "1\u{301}",
                       "sip:bob@switchboard.local\r\n", "alice\n", String(repeating: "1", count: 257)]
        try await fixture.test { client async throws in
            let document = try await client.send(.get, "/api/v1/openapi.yaml").text
            let party = try #require(document.range(of: "\n    Party:\n"))
            let line = try #require(document[party.upperBound...].split(separator: "\n").first { $0.contains("pattern: '") })
            let quoted = line.drop { $0 != "'" }.dropFirst().dropLast()
            // JSON Schema's `$` is the end of the input (ECMA 262); ICU's also matches before a final line break.
            let pattern = try NSRegularExpression(pattern: quoted.dropLast() + "\\z")
            var documented = 0
            for sample in samples {
                let inDocument = sample.unicodeScalars.count <= 256
                    && pattern.firstMatch(in: sample, range: NSRange(sample.startIndex..., in: sample)) != nil
                let body = try JSONSerialization.data(withJSONObject: ["from": "+12025550100", "to": sample])
                let response = try await client.send(.post, "/api/v1/calls", key: key.secret, json: String(decoding: body, as: UTF8.self))
                let refused = response.status == .badRequest && response.invalidParamNames == ["to"]
                #expect(refused != inDocument, "\(sample.debugDescription): \(response.status) \(response.text)")
                documented += inDocument ? 1 : 0
            }
            #expect(documented == 9)
        }
    }

    /// schemathesis: `"caller_id": null` was taken as no caller id while the document said a string (it now says
    /// string or null); `ring_timeout_s` 351 passed the gateway's 1...600 and the bridge refused it with
    /// `bad_command` (its `max_ring_timeout` is 300), so the gateway takes 1...300.
    @Test func nullMeansLeftOutAndTheRingTimeoutIsTheBridgesRange() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key(AccessPolicy(maxConcurrent: 100, ratePerSecond: 100, burst: 100, numbers: ["+1"]))
        try await fixture.test { client async throws in
            let nulls = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                              json: #"{"from":"+12025550100","to":"bob","caller_id":null,"ring_timeout_s":null}"#)
            #expect(nulls.status == .created)
            let longest = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                json: #"{"from":"+12025550100","to":"bob","ring_timeout_s":300}"#)
            #expect(longest.status == .created)
            let tooLong = try await client.send(.post, "/api/v1/calls", key: key.secret,
                                                json: #"{"from":"+12025550100","to":"bob","ring_timeout_s":301}"#)
            #expect(tooLong.invalidParamNames == ["ring_timeout_s"])
        }
        guard case .originate(let first) = fixture.bridge.sent.first, case .originate(let second) = fixture.bridge.sent.last else {
            Issue.record("no originate sent")
            return
        }
        #expect(first.b.callerId?.uri == first.a.uri && first.a.ringTimeoutMs == nil)
        #expect(second.a.ringTimeoutMs == 300_000)
        #expect(fixture.bridge.sent.count == 2)
    }

    /// The document's `Idempotency-Key` is visible ASCII (`^[!-~]+$`); a space or a control character is a 400.
    @Test func anIdempotencyKeyIsVisibleASCII() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            for value in ["order 42", "order\t42"] {
                let response = try await client.send(.post, "/api/v1/calls", key: key.secret, json: body,
                                                     headers: [.idempotencyKey: value])
                #expect(response.invalidParamNames == ["Idempotency-Key"], "\(value.debugDescription)")
            }
            let visible = try await client.send(.post, "/api/v1/calls", key: key.secret, json: body, headers: [.idempotencyKey: "order-42:~!"])
            #expect(visible.status == .created)
        }
    }

    @Test func bridgeErrorsMapToHTTPStatuses() async throws {
        let cases: [(String, HTTPResponse.Status)] = [
            ("unknown_call", .notFound), ("invalid_state", .conflict), ("account_limit", .tooManyRequests),
            ("limit_exceeded", .serviceUnavailable), ("shutting_down", .serviceUnavailable), ("timeout", .gatewayTimeout),
            ("unreachable", .serviceUnavailable), ("bad_command", .badRequest), ("policy_denied", .forbidden),
            ("something_new", .badGateway),
        ]
        for (code, status) in cases {
            let error = BridgeError(code: ErrorCode(rawValue: code), message: "m")
            #expect(CallRoutes.problem(for: error, bridge: "b").status == status, "\(code)")
            #expect(CallRoutes.problem(for: error, bridge: "b").extensions["bridge_code"] == code)
        }
        // The bridge's own policy check: its rule reaches the client like the gateway's.
        let bridgeDenial = CallRoutes.problem(for: BridgeError(code: .policyDenied, message: "nanp_foreign: +18095551234 is ..."), bridge: "b")
        #expect(bridgeDenial.extensions["rule"] == "nanp_foreign")
        let fixture = try GatewayFixture()
        let key = try fixture.key(AccessPolicy(maxConcurrent: 1, ratePerSecond: 100, burst: 100, numbers: ["+1"]))
        fixture.bridge.failure = BridgeError(code: .timeout, message: "no reply")
        try await fixture.test { client async throws in
            #expect(try await client.send(.post, "/api/v1/calls", key: key.secret, json: body).status == .gatewayTimeout)
            // A failed originate gives its concurrency slot back.
            fixture.bridge.failure = nil
            #expect(try await client.send(.post, "/api/v1/calls", key: key.secret, json: body).status == .created)
        }
    }

    @Test func hangupGoesToTheCallsBridgeAndOnlyTheOwnerSeesTheCall() async throws {
        let fixture = try GatewayFixture()
        let owner = try fixture.key()
        let stranger = try fixture.key()
        let admin = try fixture.key(AccessPolicy(ratePerSecond: 100, burst: 100, admin: true, numbers: ["+1"]))
        try await fixture.test { client async throws in
            let created = try await client.send(.post, "/api/v1/calls", key: owner.secret, json: body)
            let callId = try #require(created.object["call_id"] as? String)
            #expect(try await client.send(.get, "/api/v1/calls/\(callId)", key: stranger.secret).status == .notFound)
            #expect(try await client.send(.delete, "/api/v1/calls/\(callId)", key: stranger.secret).status == .notFound)
            let listed = try await client.send(.get, "/api/v1/calls", key: admin.secret)
            #expect((listed.object["calls"] as? [Any])?.count == 1)
            let hangup = try await client.send(.delete, "/api/v1/calls/\(callId)", key: owner.secret)
            #expect(hangup.status == .accepted)
            #expect(hangup.object["state"] as? String == "ending")
            #expect(try await client.send(.delete, "/api/v1/calls/nope", key: owner.secret).status == .notFound)
        }
        #expect(fixture.bridge.sent.last == .hangup("bridge-1-c1"))
    }
}
