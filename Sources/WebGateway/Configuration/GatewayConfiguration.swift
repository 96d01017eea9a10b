import CallPolicy
import Configuration
import Foundation
import Logging

/// Everything the gateway needs to start. `switchboard-gateway serve` fills it from a JSON file and
/// `SWITCHBOARD_GATEWAY_*` environment variables (see ``load(file:environment:)``); tests build it
/// directly with port 0. The defaults run the demo on loopback.
///
/// ```swift
/// var configuration = GatewayConfiguration()
/// configuration.port = 0
/// configuration.database = "/tmp/gateway.sqlite"
/// ```
struct GatewayConfiguration: Sendable {
    /// One bridge's bus endpoints. `id` is the gateway's name for it (logs, metrics, the `bridge` of a call).
    struct Bridge: Equatable, Sendable {
        var id: String
        var commands: String
        var events: String
        var replay: String
    }

    /// PEM files for HTTPS.
    struct TLS: Equatable, Sendable {
        var certificateChain: String
        var privateKey: String
    }

    var host = "127.0.0.1"
    var port = 8080
    /// Serve plain HTTP on a non-loopback address anyway (behind a TLS-terminating proxy, say).
    var allowInsecurePublic = false
    var tls: TLS?
    var bridges = [Bridge(id: "bridge-1", commands: "tcp://127.0.0.1:5573", events: "tcp://127.0.0.1:5570",
                          replay: "tcp://127.0.0.1:5572")]
    /// How long a command waits for the bridge's reply.
    var commandTimeout: Duration = .seconds(5)
    /// Keys, users, sessions, the live-call table and its event cursors.
    var database = "gateway.sqlite"
    /// The accounting worker's CDR file, read only; nil: `GET /cdrs` answers 503.
    var cdrDatabase: String?
    /// The page's files; nil: the ones bundled with the executable.
    var staticDirectory: String?
    /// Numbers and user names become `sip:USER@domain`; the destination policy allows this host.
    var sipDomain = "switchboard.local"
    /// The display name party A's phone shows for a Click2Call.
    var callerIdName = "Click2Call"
    /// The destination policy's shared half; its `sipDomains` is `sipDomain` (set where the routes are built).
    /// No trunk by default: a Click2Call user names numbers and users, not hosts.
    var destinationRules: DestinationRules = {
        var rules = DestinationRules()
        rules.trunkHosts = []
        return rules
    }()
    /// Per source address, over every `/api` request (before authentication).
    var sourceRatePerSecond = 20.0
    var sourceBurst = 40
    var sessionLifetime: Duration = .seconds(12 * 3600)
    /// How often each bridge is asked for its live calls (health, reconciliation).
    var healthInterval: Duration = .seconds(5)
    var logLevel: Logger.Level = .info

    /// Whether `host` is a loopback address, where plain HTTP is acceptable.
    var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Refuses a configuration that would serve the API in the clear beyond loopback.
    func validate() throws(GatewayConfigurationError) {
        if !isLoopback && tls == nil && !allowInsecurePublic {
            throw .insecurePublicListener(host: host)
        }
        if bridges.isEmpty { throw .invalid("bridges.ids", "at least one bridge is needed") }
        if sourceRatePerSecond <= 0 || sourceBurst < 1 { throw .invalid("limits.source", "rate and burst must be positive") }
    }

    /// Reads `file` (JSON; optional) with the environment on top: a key `listen.host` is
    /// `{"listen":{"host":...}}` in the file and `SWITCHBOARD_GATEWAY_LISTEN_HOST` in the environment.
    /// Missing keys keep their defaults. Every key is listed in docs/gateway.md.
    static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) async throws
        -> GatewayConfiguration {
        var providers: [any ConfigProvider] = [
            EnvironmentVariablesProvider(environmentVariables: environment).prefixKeys(with: "switchboard.gateway"),
        ]
        if let file {
            let location = ConfigReader(provider: InMemoryProvider(values: ["filePath": ConfigValue(.string(file), isSecret: false)]))
            providers.append(try await FileProvider<JSONSnapshot>(config: location))
        }
        return try GatewayConfiguration(reader: ConfigReader(providers: providers))
    }

    init() {}

    init(reader: ConfigReader) throws {
        let defaults = GatewayConfiguration()
        host = reader.string(forKey: "listen.host", default: defaults.host)
        port = reader.int(forKey: "listen.port", default: defaults.port)
        allowInsecurePublic = reader.bool(forKey: "listen.allow_insecure_public", default: false)
        if let certificate = reader.string(forKey: "tls.certificate_chain") {
            guard let key = reader.string(forKey: "tls.private_key") else {
                throw GatewayConfigurationError.invalid("tls.private_key", "needed with tls.certificate_chain")
            }
            tls = TLS(certificateChain: certificate, privateKey: key)
        }
        let ids = reader.stringArray(forKey: "bridges.ids", default: defaults.bridges.map(\.id))
        bridges = try ids.enumerated().map { index, id in
            let fallback = index == 0 ? defaults.bridges[0] : nil
            func endpoint(_ name: String, _ value: String?) throws -> String {
                guard let found = reader.string(forKey: ConfigKey(["bridges", id, name])) ?? value else {
                    throw GatewayConfigurationError.invalid("bridges.\(id).\(name)", "missing")
                }
                return found
            }
            return Bridge(id: id, commands: try endpoint("commands", fallback?.commands),
                          events: try endpoint("events", fallback?.events), replay: try endpoint("replay", fallback?.replay))
        }
        commandTimeout = .milliseconds(reader.int(forKey: "bus.command_timeout_ms", default: 5000))
        database = reader.string(forKey: "database", default: defaults.database)
        cdrDatabase = reader.string(forKey: "cdr_database")
        staticDirectory = reader.string(forKey: "static_dir")
        sipDomain = reader.string(forKey: "sip.domain", default: defaults.sipDomain)
        callerIdName = reader.string(forKey: "sip.caller_id_name", default: defaults.callerIdName)
        let rules = defaults.destinationRules
        destinationRules.homeCountryCode = reader.string(forKey: "policy.home_country_code", default: rules.homeCountryCode)
        destinationRules.internationalPrefixes = reader.stringArray(forKey: "policy.international_prefixes",
                                                                    default: rules.internationalPrefixes)
        destinationRules.extraDeniedPrefixes = reader.stringArray(forKey: "policy.premium_prefixes", default: rules.extraDeniedPrefixes)
        let areaCodes = reader.stringArray(forKey: "policy.home_area_codes", default: rules.homeAreaCodes.values)
        guard let homeAreaCodes = DestinationRules.HomeAreaCodes(areaCodes) else {
            throw GatewayConfigurationError.invalid("policy.home_area_codes", "[\"US+CA\"] or a list of three-digit area codes")
        }
        destinationRules.homeAreaCodes = homeAreaCodes
        destinationRules.trunkHosts = reader.stringArray(forKey: "policy.trunk_hosts", default: rules.trunkHosts)
        if let problem = destinationRules.trunkHosts.lazy.compactMap(DestinationRules.hostProblem).first {
            throw GatewayConfigurationError.invalid("policy.trunk_hosts", problem)
        }
        sourceRatePerSecond = reader.double(forKey: "limits.source.rate_per_second", default: defaults.sourceRatePerSecond)
        sourceBurst = reader.int(forKey: "limits.source.burst", default: defaults.sourceBurst)
        sessionLifetime = .seconds(reader.int(forKey: "session.lifetime_hours", default: 12) * 3600)
        healthInterval = .milliseconds(reader.int(forKey: "bus.health_interval_ms", default: 5000))
        let level = reader.string(forKey: "log_level", default: "info")
        guard let parsed = Logger.Level(rawValue: level) else { throw GatewayConfigurationError.invalid("log_level", level) }
        logLevel = parsed
    }
}

/// Why the gateway refused to start.
enum GatewayConfigurationError: Error, Equatable, CustomStringConvertible {
    case insecurePublicListener(host: String)
    case invalid(String, String)

    var description: String {
        switch self {
        case .insecurePublicListener(let host):
            "refusing to serve plain HTTP on \(host), which is not a loopback address: configure tls.certificate_chain and "
                + "tls.private_key, or set listen.allow_insecure_public to true (e.g. behind a TLS-terminating proxy)"
        case .invalid(let key, let problem):
            "configuration \(key): \(problem)"
        }
    }
}
