import CallPolicy
import Foundation
import Testing
@testable import Bridge

@Suite struct BridgeSettingsTests {
    private static let readme = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("README.md")

    /// The rows of the README's "Bridge settings" table: the setting's key and its default, as written.
    private static func readmeRows() throws -> [(key: String, defaultText: String)] {
        let text = try String(contentsOf: readme, encoding: .utf8)
        guard let start = text.range(of: "### Bridge settings") else { return [] }
        var rows: [(String, String)] = []
        for line in text[start.upperBound...].split(separator: "\n", omittingEmptySubsequences: false).dropFirst() {
            if line.hasPrefix("#") { break }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4, cells[1].hasPrefix("`"), cells[2].hasPrefix("`") else { continue }
            rows.append((cells[1].trimmingCharacters(in: ["`"]), cells[2].trimmingCharacters(in: ["`"])))
        }
        return rows
    }

    private func load(file: [String: Any]? = nil, environment: [String: String] = [:], arguments: [String] = [])
        async throws -> BridgeConfiguration {
        var loader = BridgeSettingsLoader(environment: environment)
        loader.commandLine = try BridgeSettingsLoader.commandLineValues(arguments)
        if let file {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("bridge-settings-\(UUID().uuidString).json").path
            try JSONSerialization.data(withJSONObject: file).write(to: URL(fileURLWithPath: path))
            loader.file = path
        }
        defer { if let file = loader.file { try? FileManager.default.removeItem(atPath: file) } }
        return try await loader.load()
    }

    private func refusal(file: [String: Any]? = nil, environment: [String: String] = [:], arguments: [String] = []) async -> String? {
        do {
            _ = try await load(file: file, environment: environment, arguments: arguments)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func readmeTableListsEverySettingWithItsDefault() throws {
        let rows = try Self.readmeRows()
        #expect(rows.map(\.key) == BridgeSetting.all.map(\.key))
        for (key, defaultText) in rows {
            #expect(BridgeSetting.named(key)?.defaultText == defaultText, "README default of \(key)")
        }
    }

    @Test func everyDefaultReadsBackAsItself() async throws {
        let arguments = BridgeSetting.all.flatMap { setting in
            setting.current(BridgeConfiguration()).map { [setting.flag, $0] } ?? []
        }
        let configuration = try await load(arguments: arguments)
        for setting in BridgeSetting.all {
            #expect(setting.current(configuration) == setting.current(BridgeConfiguration()), "\(setting.key)")
        }
    }

    @Test func commandLineWinsOverEnvironmentWhichWinsOverFile() async throws {
        let configuration = try await load(file: ["max_calls": 100, "ring_timeout": 20, "bridge_id": "from-file"],
                                           environment: ["SWITCHBOARD_BRIDGE_MAX_CALLS": "200", "SWITCHBOARD_BRIDGE_BRIDGE_ID": "from-env"],
                                           arguments: ["--max-calls", "300"])
        #expect(configuration.callLimits.maxCalls == 300)
        #expect(configuration.bridgeId == "from-env")
        #expect(configuration.callLimits.defaultRingTimeout == .seconds(20))
        #expect(configuration.callLimits.maxRingTimeout == .seconds(300))
    }

    @Test func valuesOfEveryKindFromTheFile() async throws {
        let configuration = try await load(file: ["journal_max_age_hours": 1.5, "sip_listen": "[::1]:5090", "outbound_proxy": "",
                                                  "sip_trusted_sources": "10.0.0.0/8, [2001:db8::1]",
                                                  "fallback": "redirect:sip:operator@example.com", "metrics_listen": "",
                                                  "log_level": "debug", "decision_timeout_ms": 250])
        #expect(configuration.journalMaxAge == .seconds(5400))
        #expect(configuration.sipHost == "::1" && configuration.sipPort == 5090)
        #expect(configuration.outboundProxy == nil)
        #expect(configuration.trustedSources?.description == "10.0.0.0/8, [2001:db8::1]")
        #expect(configuration.fallback == .redirect([.init(uri: "sip:operator@example.com", q: 1.0)]))
        #expect(configuration.metricsListen == nil)
        #expect(configuration.logLevel == .debug)
        #expect(configuration.decisionTimeout == .milliseconds(250))
    }

    @Test func retryAfterRefinesARejectFallbackWhicheverOrderTheyCome() async throws {
        let configuration = try await load(arguments: ["--fallback-retry-after=0", "--fallback", "reject:480:Temporarily Unavailable"])
        #expect(configuration.fallback == .reject(status: 480, reason: "Temporarily Unavailable", retryAfter: nil))
        let byDefault = try await load(arguments: ["--fallback", "reject:486"])
        #expect(byDefault.fallback == .reject(status: 486, reason: nil, retryAfter: 30))
    }

    @Test func refusalsNameTheSettingInEverySpellingAndWhereItCameFrom() async throws {
        let zero = try #require(await refusal(arguments: ["--max-calls", "0"]))
        #expect(zero.contains("max_calls / --max-calls / SWITCHBOARD_BRIDGE_MAX_CALLS (from command line): must be at least 1, got 0"))

        let word = try #require(await refusal(environment: ["SWITCHBOARD_BRIDGE_DECISION_TIMEOUT_MS": "fast"]))
        #expect(word.contains("decision_timeout_ms") && word.contains("(from environment)") && word.contains("\"fast\""))

        let text = try #require(await refusal(file: ["max_calls": "many"]))
        #expect(text.contains("max_calls") && text.contains("expected a whole number"))

        let fallback = try #require(await refusal(arguments: ["--fallback", "reject:200"]))
        #expect(fallback.contains("--fallback") && fallback.contains("reject:200"))

        let level = try #require(await refusal(arguments: ["--log-level", "loud"]))
        #expect(level.contains("log_level") && level.contains("\"loud\""))

        let host = try #require(await refusal(arguments: ["--sip-listen", "::1:5080"]))
        #expect(host.contains("sip_listen") && host.contains("brackets"))

        let endpoint = try #require(await refusal(arguments: ["--bus-events", "127.0.0.1:5570"]))
        #expect(endpoint.contains("bus_events") && endpoint.contains("tcp://"))
    }

    @Test func destinationPolicySettingsAreReadAndChecked() async throws {
        let configuration = try await load(file: ["sip_domains": "pbx.example.com, Voice.Example.com", "policy_trunks": "sbc.example.com:5070,[2001:db8::1]"],
                                           arguments: ["--policy-home-area-codes", "212,646", "--policy-worker-targets", "off"])
        #expect(configuration.destinationRules.sipDomains == ["pbx.example.com", "voice.example.com"])
        #expect(configuration.destinationRules.trunkHosts == ["sbc.example.com:5070", "[2001:db8::1]"])
        #expect(configuration.destinationRules.homeAreaCodes == .only(["212", "646"]))
        #expect(configuration.policyWorkerTargets == .off)
        #expect(await refusal(arguments: ["--policy-worker-targets", "warn"])?.contains("must be enforce or off") == true)
        #expect(await refusal(arguments: ["--policy-home-area-codes", "2125"])?.contains("policy_home_area_codes") == true)
        #expect(await refusal(arguments: ["--policy-trunks", "evil example"])?.contains("not a host") == true)
        #expect(await refusal(arguments: ["--sip-domains", ""])?.contains("at least one domain") == true)
        #expect(await refusal(arguments: ["--policy-home-country-code", "+1"]) != nil)
    }

    @Test func rulesBetweenSettingsAreChecked() async throws {
        let ring = try #require(await refusal(arguments: ["--ring-timeout", "400"]))
        #expect(ring.contains("ring_timeout") && ring.contains("max_ring_timeout"))

        let curve = try #require(await refusal(arguments: ["--curve-key", "/nonexistent/bridge.key"]))
        #expect(curve.contains("curve_clients") && curve.contains("curve_key needs the keys to admit"))
        let roleWithoutKey = try #require(await refusal(arguments: ["--curve-workers", "/etc/switchboard/workers"]))
        #expect(roleWithoutKey.contains("curve_key") && roleWithoutKey.contains("need curve_key"))

        let twice = try #require(await refusal(arguments: ["--bus-replay", "tcp://127.0.0.1:5570"]))
        #expect(twice.contains("tcp://127.0.0.1:5570") && twice.contains("must differ"))
    }

    @Test func unknownNamesAreRefusedNotIgnored() async throws {
        let flag = try #require(await refusal(arguments: ["--max-cals", "5"]))
        #expect(flag.contains("unknown option --max-cals"))

        let key = try #require(await refusal(file: ["max_cals": 5]))
        #expect(key.contains("unknown setting \"max_cals\""))

        let missing = try #require(await refusal(arguments: ["--max-calls"]))
        #expect(missing.contains("--max-calls needs a value"))
    }
}
