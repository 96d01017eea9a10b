import CallPolicy
import Configuration
import Foundation
import Logging
import WorkerSDK
import ZeroMQ

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
    /// CURVE on the bus connections (`bus.curve_key`, `bus.bridge_key`, `bridges.<id>.bridge_key`); nil: plain.
    var curve: WorkerConfiguration.Curve?
    /// How long a command waits for the bridge's reply.
    var commandTimeout: Duration = .seconds(5)
    /// Keys, users, sessions, the live-call table and its event cursors.
    var database = "gateway.sqlite"
    /// The accounting worker's CDR file, read only; nil: `GET /cdrs` answers 503.
    var cdrDatabase: String?
    /// The bridge's recordings folder as this host sees it; `GET /recordings/{call_id}` serves only files whose real path
    /// is inside it. Nil: recordings are listed but not served (404).
    var recordingsDirectory: String?
    /// The PBX worker's rules file (`switchboard-worker pbx --db`); nil: `/pbx` answers 503.
    var pbxDatabase: String?
    /// Kamailio's SQLite file (openser-cfg/make-db.sh), where SIP accounts are provisioned; nil: `/sip-accounts` answers 503.
    var kamailioDatabase: String?
    /// The shortest SIP account password accepted (``PasswordPolicy``).
    var sipPasswordMinimumLength = 12
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
    /// Proxies (addresses or CIDR blocks) whose `Forwarded`/`X-Forwarded-For` headers name the client
    /// that rate limits key on; from any other peer those headers are ignored.
    var trustedProxies: [String] = []
    var sessionLifetime: Duration = .seconds(12 * 3600)
    /// Whether the session cookie is `Secure`; nil: when the browser talks HTTPS, that is with TLS
    /// configured here or behind the TLS-terminating proxy that `allowInsecurePublic` is for.
    var secureCookies: Bool?
    /// Password hashes computed at once (each costs ~600,000 PBKDF2 rounds); logins beyond get 503.
    var loginConcurrentHashes = 2
    /// Failed logins per user name before lock-outs start; the first lock-out, doubled per further
    /// failure up to the maximum.
    var loginFreeFailures = 3
    var loginLockout: Duration = .seconds(1)
    var loginLockoutMaximum: Duration = .seconds(900)
    /// Origins (`https://crm.example.com`) besides the gateway's own whose pages may open the events WebSocket.
    var webSocketAllowedOrigins: [String] = []
    var webSocketsPerPrincipal = 8
    /// How often an open events WebSocket re-checks its key or session, closing it once revoked, logged out or expired.
    var webSocketRecheckInterval: Duration = .seconds(5)
    /// How often each bridge is asked for its live calls (health, reconciliation).
    var healthInterval: Duration = .seconds(5)
    /// An HTTP connection is closed once it has read no complete request head or body part, nor finished a
    /// response, for this long: a client sending nothing, or a head a byte at a time (slowloris), cannot hold it.
    var httpIdleTimeout: Duration = .seconds(30)
    var logLevel: Logger.Level = .info

    /// Whether `host` is a loopback address, where plain HTTP is acceptable.
    var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    var cookiesAreSecure: Bool {
        secureCookies ?? (tls != nil || allowInsecurePublic)
    }

    /// Refuses a configuration that would serve the API in the clear beyond loopback.
    func validate() throws(GatewayConfigurationError) {
        if !isLoopback && tls == nil && !allowInsecurePublic {
            throw .insecurePublicListener(host: host)
        }
        if bridges.isEmpty { throw .invalid("bridges.ids", "at least one bridge is needed") }
        if sourceRatePerSecond <= 0 || sourceBurst < 1 { throw .invalid("limits.source", "rate and burst must be positive") }
        for proxy in trustedProxies where IPNetwork(proxy) == nil {
            throw .invalid("proxy.trusted", "\(proxy) is not an IP address or CIDR block")
        }
        if loginConcurrentHashes < 1 { throw .invalid("login.max_concurrent_hashes", "must be at least 1") }
        if loginFreeFailures < 0 || loginLockout <= .zero || loginLockoutMaximum < loginLockout {
            throw .invalid("login.lockout", "lockout_after_failures >= 0 and 0 < lockout_base_ms <= lockout_max_s")
        }
        if webSocketsPerPrincipal < 1 { throw .invalid("websocket.max_per_principal", "must be at least 1") }
        if webSocketRecheckInterval <= .zero { throw .invalid("websocket.recheck_ms", "must be positive") }
        if httpIdleTimeout <= .zero { throw .invalid("listen.idle_timeout_ms", "must be positive") }
        if !(8...128).contains(sipPasswordMinimumLength) { throw .invalid("sip_accounts.min_password_length", "must be 8 to 128") }
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
        curve = try Self.curve(reader: reader, bridges: bridges)
        commandTimeout = .milliseconds(reader.int(forKey: "bus.command_timeout_ms", default: 5000))
        database = reader.string(forKey: "database", default: defaults.database)
        cdrDatabase = reader.string(forKey: "cdr_database")
        recordingsDirectory = reader.string(forKey: "recordings_dir")
        pbxDatabase = reader.string(forKey: "pbx_database")
        kamailioDatabase = reader.string(forKey: "kamailio_database")
        sipPasswordMinimumLength = reader.int(forKey: "sip_accounts.min_password_length", default: defaults.sipPasswordMinimumLength)
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
        trustedProxies = reader.stringArray(forKey: "proxy.trusted", default: [])
        sessionLifetime = .seconds(reader.int(forKey: "session.lifetime_hours", default: 12) * 3600)
        secureCookies = reader.bool(forKey: "session.secure_cookies")
        loginConcurrentHashes = reader.int(forKey: "login.max_concurrent_hashes", default: defaults.loginConcurrentHashes)
        loginFreeFailures = reader.int(forKey: "login.lockout_after_failures", default: defaults.loginFreeFailures)
        loginLockout = .milliseconds(reader.int(forKey: "login.lockout_base_ms", default: 1000))
        loginLockoutMaximum = .seconds(reader.int(forKey: "login.lockout_max_s", default: 900))
        webSocketAllowedOrigins = reader.stringArray(forKey: "websocket.allowed_origins", default: [])
        webSocketsPerPrincipal = reader.int(forKey: "websocket.max_per_principal", default: defaults.webSocketsPerPrincipal)
        webSocketRecheckInterval = .milliseconds(reader.int(forKey: "websocket.recheck_ms", default: 5000))
        healthInterval = .milliseconds(reader.int(forKey: "bus.health_interval_ms", default: 5000))
        httpIdleTimeout = .milliseconds(reader.int(forKey: "listen.idle_timeout_ms", default: 30_000))
        let level = reader.string(forKey: "log_level", default: "info")
        guard let parsed = Logger.Level(rawValue: level) else { throw GatewayConfigurationError.invalid("log_level", level) }
        logLevel = parsed
    }
}

extension GatewayConfiguration {
    /// The gateway's key pair and each bridge's public key, read from their files; nil without `bus.curve_key`.
    private static func curve(reader: ConfigReader, bridges: [Bridge]) throws -> WorkerConfiguration.Curve? {
        guard let keyFile = reader.string(forKey: "bus.curve_key") else {
            if reader.string(forKey: "bus.bridge_key") != nil { throw GatewayConfigurationError.invalid("bus.bridge_key", "needs bus.curve_key") }
            return nil
        }
        func load<Key>(_ key: String, _ read: () throws -> Key) throws -> Key {
            do {
                return try read()
            } catch {
                throw GatewayConfigurationError.invalid(key, "\(error)")
            }
        }
        let keyPair = try load("bus.curve_key") { try CurveKeyFile.loadKeyPair(from: keyFile) }
        let common = try reader.string(forKey: "bus.bridge_key").map { file in try load("bus.bridge_key") { try CurveKeyFile.loadPublicKey(from: file) } }
        var perEndpoint: [String: CurvePublicKey] = [:]
        for bridge in bridges {
            let name = "bridges.\(bridge.id).bridge_key"
            guard let file = reader.string(forKey: ConfigKey(["bridges", bridge.id, "bridge_key"])) else {
                if common == nil { throw GatewayConfigurationError.invalid(name, "missing: with bus.curve_key, each bridge needs its public key (or bus.bridge_key for all)") }
                continue
            }
            let key = try load(name) { try CurveKeyFile.loadPublicKey(from: file) }
            for endpoint in [bridge.commands, bridge.events, bridge.replay] { perEndpoint[endpoint] = key }
        }
        // Every endpoint has a key of its own when there is no common one, so the fallback is never used.
        return WorkerConfiguration.Curve(keyPair: keyPair, bridgeKey: common ?? keyPair.publicKey, bridgeKeys: perEndpoint)
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
