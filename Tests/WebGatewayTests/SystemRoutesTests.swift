import CallPolicy
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import WebGateway

@Suite struct SystemRoutesTests {
    @Test func theOpenAPIDocumentIsServed() async throws {
        let fixture = try GatewayFixture()
        try await fixture.test { client async throws in
            let response = try await client.send(.get, "/api/v1/openapi.yaml")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/yaml")
            #expect(response.text.hasPrefix("openapi: 3.1.0"))
            // Every route the gateway serves is in the document.
            for path in ["/calls:", "/calls/{id}:", "/cdrs:", "/session:", "/events:", "/health:"] {
                #expect(response.text.contains("  \(path)"), "\(path)")
            }
        }
    }

    @Test func metricsCountDenialsAndRateLimits() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            _ = try await client.send(.post, "/api/v1/calls", key: key.secret, json: #"{"from":"+12025550100","to":"+442079460000"}"#)
            let metrics = try await client.send(.get, "/metrics")
            #expect(metrics.status == .ok)
            #expect(metrics.text.contains(#"switchboard_gateway_policy_denials_total{rule="international"} 1"#))
            #expect(metrics.text.contains(#"switchboard_gateway_originates_total{result="denied"} 1"#))
        }
    }

    @Test func healthReportsEachBridgeToAdminsAndOnlyTheStatusToOthers() async throws {
        let fixture = try GatewayFixture()
        let admin = try fixture.key(AccessPolicy(ratePerSecond: 100, burst: 100, admin: true))
        let tenant = try fixture.key()
        fixture.table.apply(.originated(callId: "c1", account: "sbk_other", a: "sip:a@x", b: "sip:b@x"), bridge: "bridge-1", seq: 1, at: "t1")
        try await fixture.test { client async throws in
            #expect(try await client.send(.get, "/health").object["status"] as? String == "ok")
            let health = try await client.send(.get, "/api/v1/health", key: admin.secret)
            #expect(health.status == .ok)
            #expect(health.object["live_calls"] as? Int == 1)
            let bridges = try #require(health.object["bridges"] as? [[String: Any]])
            #expect(bridges.map { $0["id"] as? String } == ["bridge-1"])
            // Anyone else: whether the gateway works, not how many calls every tenant has.
            for key in [nil, tenant.secret, "sbk_00000000_wrong"] {
                let anonymous = try await client.send(.get, "/api/v1/health", key: key)
                #expect(anonymous.status == .ok)
                #expect(anonymous.object.keys.sorted() == ["status"], "\(key ?? "no key")")
                #expect(anonymous.object["status"] as? String == "ok")
            }
        }
    }

    @Test func unknownRoutesAreProblemJSON() async throws {
        let fixture = try GatewayFixture()
        try await fixture.test { client async throws in
            let response = try await client.send(.get, "/api/v1/nothing-here")
            #expect(response.status == .notFound || response.status == .unauthorized)
            #expect(response.headers[.contentType] == "application/problem+json")
        }
    }

    /// schemathesis: `TRACE /api/v1/health` was 404, as if the path did not exist; a method a path does not serve is
    /// 405 naming the ones it does. A path no route has stays 404.
    @Test func aMethodAPathDoesNotServeIs405WithAllow() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            for (method, path, allow) in [(HTTPRequest.Method.trace, "/api/v1/health", "GET"), (.put, "/api/v1/calls", "GET, POST"),
                                          (.patch, "/api/v1/calls/c1", "DELETE, GET"), (.put, "/api/v1/session", "DELETE, GET, POST"),
                                          (.post, "/metrics", "GET")] {
                let response = try await client.send(method, path, key: key.secret)
                #expect(response.status == .methodNotAllowed, "\(method) \(path)")
                #expect(response.headers[.allow] == allow, "\(method) \(path)")
                #expect(response.headers[.contentType] == "application/problem+json")
            }
            #expect(try await client.send(.put, "/api/v1/nothing-here", key: key.secret).status == .notFound)
            #expect(try await client.send(.get, "/api/v1/calls/c1/legs", key: key.secret).status == .notFound)
        }
    }

    /// schemathesis: a plain `GET /api/v1/events` (no upgrade) was 404; it is 426 with `Upgrade: websocket`.
    @Test func theEventsSocketWithoutAnUpgradeIs426() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            let response = try await client.send(.get, "/api/v1/events", key: key.secret)
            #expect(response.status == .upgradeRequired)
            #expect(response.headers[.upgrade] == "websocket")
            #expect(response.object["type"] as? String == "https://switchboard.dev/problems/upgrade-required")
        }
    }

    @Test func thePageIsServedFromThePublicFolder() async throws {
        let fixture = try GatewayFixture()
        try await fixture.test { client async throws in
            let page = try await client.send(.get, "/")
            #expect(page.status == .ok)
            #expect(page.text.contains("Switchboard"))
        }
    }
}

@Suite struct GatewayConfigurationTests {
    @Test func plainHTTPBeyondLoopbackIsRefused() throws {
        var configuration = GatewayConfiguration()
        configuration.host = "0.0.0.0"
        configuration.database = FileManager.default.temporaryDirectory.appendingPathComponent("gw-\(UUID()).sqlite").path
        #expect(throws: GatewayConfigurationError.insecurePublicListener(host: "0.0.0.0")) {
            try buildApplication(configuration: configuration, dependencies: .init(bridges: [], followBus: false))
        }
        configuration.allowInsecurePublic = true
        #expect(throws: Never.self) { try configuration.validate() }
        configuration.allowInsecurePublic = false
        configuration.tls = .init(certificateChain: "cert.pem", privateKey: "key.pem")
        #expect(throws: Never.self) { try configuration.validate() }
        for host in ["127.0.0.1", "localhost", "::1", "127.0.0.53"] {
            configuration.tls = nil
            configuration.host = host
            #expect(throws: Never.self) { try configuration.validate() }
        }
    }

    @Test func aFileAndTheEnvironmentOverrideTheDefaults() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gw-\(UUID()).json")
        try Data("""
            {"listen": {"host": "127.0.0.2", "port": 9000},
             "bridges": {"ids": ["east", "west"],
                         "east": {"commands": "tcp://10.0.0.1:5573", "events": "tcp://10.0.0.1:5570", "replay": "tcp://10.0.0.1:5572"},
                         "west": {"commands": "tcp://10.0.0.2:5573", "events": "tcp://10.0.0.2:5570", "replay": "tcp://10.0.0.2:5572"}},
             "policy": {"home_country_code": "49", "premium_prefixes": ["0900"], "home_area_codes": ["212", "646"],
                        "trunk_hosts": ["sbc.example.com:5060"]}}
            """.utf8).write(to: file)
        let configuration = try await GatewayConfiguration.load(
            file: file.path, environment: ["SWITCHBOARD_GATEWAY_LISTEN_PORT": "9100", "SWITCHBOARD_GATEWAY_CDR_DATABASE": "/var/cdr.sqlite"])
        #expect(configuration.host == "127.0.0.2")
        #expect(configuration.port == 9100)
        #expect(configuration.cdrDatabase == "/var/cdr.sqlite")
        #expect(configuration.bridges.map(\.id) == ["east", "west"])
        #expect(configuration.bridges[1].commands == "tcp://10.0.0.2:5573")
        #expect(configuration.destinationRules.homeCountryCode == "49")
        #expect(configuration.destinationRules.extraDeniedPrefixes == ["0900"])
        #expect(configuration.destinationRules.homeAreaCodes == .only(["212", "646"]))
        #expect(configuration.destinationRules.trunkHosts == ["sbc.example.com:5060"])
        let defaults = try await GatewayConfiguration.load(file: nil, environment: [:])
        #expect(defaults.bridges == GatewayConfiguration().bridges)
        #expect(defaults.port == 8080)
        #expect(defaults.trustedProxies.isEmpty && defaults.secureCookies == nil && defaults.webSocketsPerPrincipal == 8)
    }

    @Test func theHardeningSettingsLoad() async throws {
        let configuration = try await GatewayConfiguration.load(file: nil, environment: [
            "SWITCHBOARD_GATEWAY_PROXY_TRUSTED": "10.0.0.0/8,::1",
            "SWITCHBOARD_GATEWAY_SESSION_SECURE_COOKIES": "false",
            "SWITCHBOARD_GATEWAY_LOGIN_MAX_CONCURRENT_HASHES": "4",
            "SWITCHBOARD_GATEWAY_LOGIN_LOCKOUT_AFTER_FAILURES": "5",
            "SWITCHBOARD_GATEWAY_LOGIN_LOCKOUT_BASE_MS": "500",
            "SWITCHBOARD_GATEWAY_LOGIN_LOCKOUT_MAX_S": "60",
            "SWITCHBOARD_GATEWAY_WEBSOCKET_ALLOWED_ORIGINS": "https://crm.example.com",
            "SWITCHBOARD_GATEWAY_WEBSOCKET_MAX_PER_PRINCIPAL": "3",
            "SWITCHBOARD_GATEWAY_WEBSOCKET_RECHECK_MS": "2000",
        ])
        #expect(configuration.trustedProxies == ["10.0.0.0/8", "::1"])
        #expect(configuration.secureCookies == false)
        #expect(configuration.loginConcurrentHashes == 4 && configuration.loginFreeFailures == 5)
        #expect(configuration.loginLockout == .milliseconds(500) && configuration.loginLockoutMaximum == .seconds(60))
        #expect(configuration.webSocketAllowedOrigins == ["https://crm.example.com"])
        #expect(configuration.webSocketsPerPrincipal == 3 && configuration.webSocketRecheckInterval == .seconds(2))
        #expect(throws: Never.self) { try configuration.validate() }
    }

    @Test func cookiesAreSecureUnderTLSBehindAProxyOrWhenSaidSo() {
        var configuration = GatewayConfiguration()
        #expect(!configuration.cookiesAreSecure)
        configuration.allowInsecurePublic = true  // plain HTTP here, HTTPS at the proxy
        #expect(configuration.cookiesAreSecure)
        configuration.secureCookies = false
        #expect(!configuration.cookiesAreSecure)
        configuration = GatewayConfiguration()
        configuration.tls = .init(certificateChain: "cert.pem", privateKey: "key.pem")
        #expect(configuration.cookiesAreSecure)
        configuration.tls = nil
        configuration.secureCookies = true
        #expect(configuration.cookiesAreSecure)
    }
}
