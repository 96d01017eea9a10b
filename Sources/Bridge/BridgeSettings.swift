import CallPolicy
import Configuration
import Foundation
import Logging
import NIOCore
import ZeroMQ

/// One setting of the bridge. It has one name everywhere: `max_calls` in the configuration file,
/// `--max-calls` on the command line, `SWITCHBOARD_BRIDGE_MAX_CALLS` in the environment. Its default is
/// whatever `BridgeConfiguration()` holds, so defaults live in one place.
struct BridgeSetting: Sendable {
    enum Kind: Sendable {
        case text, integer, number
    }

    /// A value as read from the file, the environment or the command line, already of the setting's kind.
    enum Value: Sendable {
        case text(String)
        case integer(Int)
        case number(Double)
    }

    let key: String
    let kind: Kind
    let help: String
    /// What an unset (nil) value means, for `current` returning nil.
    let unset: String
    /// The setting's value in a configuration, spelled as in the file; nil when unset.
    let current: @Sendable (BridgeConfiguration) -> String?
    /// Sets the value; throws the problem (without the setting's name) when it is unusable.
    let apply: @Sendable (inout BridgeConfiguration, Value) throws(BridgeSettingProblem) -> Void

    var flag: String { "--" + key.replacingOccurrences(of: "_", with: "-") }
    var environmentVariable: String { "SWITCHBOARD_BRIDGE_" + key.uppercased() }
    /// The default as the README's option table shows it.
    var defaultText: String { current(BridgeConfiguration()) ?? unset }

    /// Reads a command-line or environment string as this setting's kind.
    func parse(_ text: String) throws(BridgeSettingProblem) -> Value {
        switch kind {
        case .text:
            return .text(text)
        case .integer:
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else { throw .init("expected a whole number, got \"\(text)\"") }
            return .integer(value)
        case .number:
            guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
                throw .init("expected a number, got \"\(text)\"")
            }
            return .number(value)
        }
    }
}

/// Why a setting's value was refused; `BridgeSettingsError` adds the setting's names.
struct BridgeSettingProblem: Error, Sendable {
    let message: String
    init(_ message: String) { self.message = message }
}

/// A configuration the bridge refuses to start with; the message names the setting in all its spellings.
struct BridgeSettingsError: Error, CustomStringConvertible, Sendable {
    let description: String

    init(_ setting: BridgeSetting, source: String?, _ problem: String) {
        let from = source.map { " (from \($0))" } ?? ""
        description = "\(setting.key) / \(setting.flag) / \(setting.environmentVariable)\(from): \(problem)"
    }

    init(key: String, source: String? = nil, _ problem: String) {
        guard let setting = BridgeSetting.named(key) else { preconditionFailure("no bridge setting \(key)") }
        self.init(setting, source: source, problem)
    }

    init(_ description: String) { self.description = description }
}

extension BridgeSetting {
    private static func text(_ key: String, _ help: String, unset: String = "none",
                             _ current: @escaping @Sendable (BridgeConfiguration) -> String?,
                             _ apply: @escaping @Sendable (inout BridgeConfiguration, String) throws(BridgeSettingProblem) -> Void) -> Self {
        Self(key: key, kind: .text, help: help, unset: unset, current: current) { configuration, value throws(BridgeSettingProblem) in
            guard case .text(let text) = value else { throw .init("expected text") }
            try apply(&configuration, text)
        }
    }

    private static func integer(_ key: String, _ help: String, minimum: Int,
                                _ current: @escaping @Sendable (BridgeConfiguration) -> Int,
                                _ apply: @escaping @Sendable (inout BridgeConfiguration, Int) -> Void) -> Self {
        Self(key: key, kind: .integer, help: help, unset: "none", current: { "\(current($0))" }) { configuration, value throws(BridgeSettingProblem) in
            guard case .integer(let number) = value else { throw .init("expected a whole number") }
            guard number >= minimum else { throw .init("must be at least \(minimum), got \(number)") }
            apply(&configuration, number)
        }
    }

    /// Every setting, in the order they are applied (`fallback_retry_after` refines `fallback`).
    static let all: [BridgeSetting] = [
        text("bridge_id", "Bridge id, carried in every event (unique per bridge).", { $0.bridgeId }) { configuration, value throws(BridgeSettingProblem) in
            guard !value.isEmpty, value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
                throw .init("letters, digits, '-', '_' and '.' only, got \"\(value)\"")
            }
            configuration.bridgeId = value
        },
        text("sip_listen", "SIP address, UDP and TCP (host:port).", { hostPort($0.sipHost, $0.sipPort) }) { configuration, value throws(BridgeSettingProblem) in
            (configuration.sipHost, configuration.sipPort) = try parseHostPort(value)
        },
        text("sip_advertised_address", "Address for the bridge's Via and Contact (host or host:port) when not sip_listen's: a wildcard listen address, NAT.",
             unset: "sip_listen", { $0.advertisedAddress.map { hostPort($0.host, $0.port) } }) { configuration, value throws(BridgeSettingProblem) in
            if let (host, port) = try? parseHostPort(value) {
                configuration.advertisedAddress = .init(host: host, port: port)
            } else {
                let host = value.hasPrefix("[") && value.hasSuffix("]") ? String(value.dropFirst().dropLast()) : value
                guard !host.isEmpty, !host.contains(" ") else { throw .init("must be host or host:port, got \"\(value)\"") }
                configuration.advertisedAddress = .init(host: host, port: 0)
            }
        },
        text("bus_events", "Events PUB endpoint to bind.", { $0.eventsEndpoint }) { configuration, value throws(BridgeSettingProblem) in
            configuration.eventsEndpoint = try endpoint(value)
        },
        text("bus_decisions", "Decisions ROUTER endpoint to bind (workers connect here).", { $0.decisionsEndpoint }) { configuration, value throws(BridgeSettingProblem) in
            configuration.decisionsEndpoint = try endpoint(value)
        },
        text("bus_replay", "Replay ROUTER endpoint to bind (journaled events from a sequence number).", { $0.replayEndpoint }) { configuration, value throws(BridgeSettingProblem) in
            configuration.replayEndpoint = try endpoint(value)
        },
        text("bus_commands", "Commands ROUTER endpoint to bind (originate, hangup, transfer, hold, list, get).", { $0.commandsEndpoint }) { configuration, value throws(BridgeSettingProblem) in
            configuration.commandsEndpoint = try endpoint(value)
        },
        text("outbound_proxy", "Where the calls the bridge places go first (IP:port, UDP), normally Kamailio; empty: straight to each target.",
             unset: "", { $0.outboundProxy.flatMap { address in address.ipAddress.map { hostPort($0, address.port ?? 0) } } }) { configuration, value throws(BridgeSettingProblem) in
            configuration.outboundProxy = try ipAddress(value)
        },
        text("sip_trusted_sources", "Addresses and networks the bridge takes SIP from (comma-separated, CIDR allowed), or any; others get 403.",
             unset: "outbound_proxy", { $0.trustedSources.map(\.description) }) { configuration, value throws(BridgeSettingProblem) in
            configuration.trustedSources = try TrustedSources(parsing: value)
        },
        integer("max_pending_offers_per_source", "INVITEs one source may have waiting for a decision at once; more get 503 at once.", minimum: 1,
                { $0.maxPendingOffersPerSource }) { $0.maxPendingOffersPerSource = $1 },
        integer("overload_busy_percent", "Share of the SIP loop's time, in percent, past which new calls are shed with 503 (100: never).",
                minimum: 1, { Int(($0.overload.busyLimit * 100).rounded()) }) { $0.overload.busyLimit = Double($1) / 100 },
        integer("overload_latency_percent", "Share of decision_timeout_ms, in percent, that even the fastest decision of 100 ms exceeding means overload (0: never).",
                minimum: 0, { Int(($0.overload.latencyShare * 100).rounded()) }) { $0.overload.latencyShare = Double($1) / 100 },
        integer("overload_retry_after", "Retry-After seconds on the 503 of a call shed for overload.", minimum: 0,
                { $0.overload.retryAfter }) { $0.overload.retryAfter = $1 },
        integer("sip_tcp_max_connections", "TCP connections the SIP listener keeps at once; a new one beyond it is closed.", minimum: 1,
                { $0.tcpMaxConnections }) { $0.tcpMaxConnections = $1 },
        integer("sip_tcp_idle_timeout", "Seconds without traffic after which a SIP TCP connection is closed.", minimum: 1,
                { Int($0.tcpIdleTimeout.components.seconds) }) { $0.tcpIdleTimeout = .seconds($1) },
        text("dialogs", "Dialogs of live calls, a SQLite file, so a restart can end them with BYE.", unset: "./bridge-<bridge_id>.dialogs.sqlite",
             { $0.dialogStorePath }) { configuration, value throws(BridgeSettingProblem) in
            configuration.dialogStorePath = try path(value)
        },
        integer("max_calls", "Most calls the bridge holds at once (bridged and originated).", minimum: 1,
                { $0.callLimits.maxCalls }) { $0.callLimits.maxCalls = $1 },
        integer("max_originates_per_account", "Most originated calls one account may have live at once (0: no limit).", minimum: 0,
                { $0.callLimits.maxOriginatesPerAccount }) { $0.callLimits.maxOriginatesPerAccount = $1 },
        integer("ring_timeout", "Ring timeout in seconds of a leg whose decision or command names none.", minimum: 1,
                { Int($0.callLimits.defaultRingTimeout.components.seconds) }) { $0.callLimits.defaultRingTimeout = .seconds($1) },
        integer("max_ring_timeout", "Longest ring timeout in seconds a decision or command may ask for.", minimum: 1,
                { Int($0.callLimits.maxRingTimeout.components.seconds) }) { $0.callLimits.maxRingTimeout = .seconds($1) },
        integer("max_call_duration_minutes", "Longest a connected call may last before the bridge hangs it up (cause limit).", minimum: 1,
                { Int($0.callLimits.maxCallDuration.components.seconds / 60) }) { $0.callLimits.maxCallDuration = .seconds($1 * 60) },
        integer("session_expires", "Session-Expires in seconds the bridge asks each leg for, and gives a caller that asks for none (RFC 4028).",
                minimum: 90, { $0.sessionTimer.interval }) { $0.sessionTimer.interval = $1 },
        integer("session_min_se", "Smallest session interval in seconds the bridge accepts (Min-SE); a caller asking for less gets 422.",
                minimum: 90, { $0.sessionTimer.minimum }) { $0.sessionTimer.minimum = $1 },
        text("journal", "Event journal, a SQLite file; every event is committed there before it is published.",
             unset: "./bridge-<bridge_id>.journal.sqlite", { $0.journalPath }) { configuration, value throws(BridgeSettingProblem) in
            configuration.journalPath = try path(value)
        },
        integer("journal_max_events", "Keep at most this many events in the journal.", minimum: 1,
                { $0.journalMaxEvents }) { $0.journalMaxEvents = $1 },
        Self(key: "journal_max_age_hours", kind: .number, help: "Prune journaled events older than this many hours.", unset: "none",
             current: { number(Double($0.journalMaxAge.components.seconds) / 3600) }) { configuration, value throws(BridgeSettingProblem) in
            let hours: Double
            switch value {
            case .number(let number): hours = number
            case .integer(let number): hours = Double(number)
            case .text: throw .init("expected a number")
            }
            guard hours > 0 else { throw .init("must be positive, got \(number(hours))") }
            configuration.journalMaxAge = .milliseconds(Int64(hours * 3_600_000))
        },
        integer("decision_timeout_ms", "How long a call waits for a worker's decision, in milliseconds.", minimum: 1,
                { Int($0.decisionTimeout.components.seconds * 1000 + $0.decisionTimeout.components.attoseconds / 1_000_000_000_000_000) }) {
            $0.decisionTimeout = .milliseconds($1)
        },
        text("fallback", "Answer when no worker decides in time: reject:STATUS[:REASON] (400-699) or redirect:SIP-URI.",
             { $0.fallback.argument }) { configuration, value throws(BridgeSettingProblem) in
            let retryAfter: Int? = if case .reject(_, _, let retryAfter) = configuration.fallback { retryAfter } else { nil }
            guard let fallback = BridgeConfiguration.Fallback(argument: value, retryAfter: retryAfter) else {
                throw .init("must be reject:STATUS[:REASON] (STATUS 400-699) or redirect:sip:URI, got \"\(value)\"")
            }
            configuration.fallback = fallback
        },
        integer("fallback_retry_after", "Retry-After seconds added to a reject fallback (0: none).", minimum: 0,
                { if case .reject(_, _, let retryAfter) = $0.fallback { retryAfter ?? 0 } else { 0 } }) { configuration, seconds in
            if case .reject(let status, let reason, _) = configuration.fallback {
                configuration.fallback = .reject(status: status, reason: reason, retryAfter: seconds > 0 ? seconds : nil)
            }
        },
        text("curve_key", "CURVE key pair file of this bridge (switchboard-worker keygen); turns CURVE on for every bus socket.",
             { $0.curveKeyFile }) { configuration, value throws(BridgeSettingProblem) in
            configuration.curveKeyFile = value.isEmpty ? nil : value
        },
        text("curve_clients", "With curve_key: directory of the client public keys (*.pub) admitted on every bus socket.",
             { $0.curveClientsDirectory }) { configuration, value throws(BridgeSettingProblem) in
            configuration.curveClientsDirectory = value.isEmpty ? nil : value
        },
        curveRole(.workers, "curve_workers", "With curve_key: keys (*.pub) admitted on the decisions socket only."),
        curveRole(.subscribers, "curve_subscribers", "With curve_key: keys (*.pub) admitted on the events and replay sockets only."),
        curveRole(.commanders, "curve_commanders", "With curve_key: keys (*.pub) admitted on the commands socket only."),
        integer("curve_reload_interval", "With curve_key: seconds between re-reads of the key directories (SIGHUP: at once); a removed key's connections are closed.",
                minimum: 1, { Int($0.curveReloadInterval.components.seconds) }) { $0.curveReloadInterval = .seconds($1) },
        text("bus_allow_insecure", "yes: let the bus bind beyond loopback without CURVE (the network is secured otherwise).",
             { $0.busAllowInsecure ? "yes" : "no" }) { configuration, value throws(BridgeSettingProblem) in
            switch value {
            case "yes": configuration.busAllowInsecure = true
            case "no": configuration.busAllowInsecure = false
            default: throw .init("must be yes or no, got \"\(value)\"")
            }
        },
        text("sip_domains", "SIP domains destinations may name (comma-separated); their users and numbers go through the outbound proxy.",
             { $0.destinationRules.sipDomains.joined(separator: ",") }) { configuration, value throws(BridgeSettingProblem) in
            configuration.destinationRules.sipDomains = try hosts(value)
            guard !configuration.destinationRules.sipDomains.isEmpty else { throw .init("needs at least one domain") }
        },
        text("policy_trunks", "Further hosts destinations may name: trunks, gateways, internal hosts workers route to (host or host:port, comma-separated).",
             unset: "", { $0.destinationRules.trunkHosts.isEmpty ? nil : $0.destinationRules.trunkHosts.joined(separator: ",") }) { configuration, value throws(BridgeSettingProblem) in
            configuration.destinationRules.trunkHosts = try hosts(value)
        },
        text("policy_home_country_code", "Home country calling code; numbers with another are international (denied).",
             { $0.destinationRules.homeCountryCode }) { configuration, value throws(BridgeSettingProblem) in
            guard (1...3).contains(value.count), value.allSatisfy({ $0.isASCII && $0.isNumber }), !value.hasPrefix("0") else {
                throw .init("must be a country calling code of 1 to 3 digits, got \"\(value)\"")
            }
            configuration.destinationRules.homeCountryCode = value
        },
        text("policy_home_area_codes", "With home country 1: US+CA, or the home area codes (comma-separated); other +1 numbers are nanp_foreign.",
             { $0.destinationRules.homeAreaCodes.values.joined(separator: ",") }) { configuration, value throws(BridgeSettingProblem) in
            let codes = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let home = DestinationRules.HomeAreaCodes(codes) else {
                throw .init("must be US+CA or three-digit area codes separated by commas, got \"\(value)\"")
            }
            configuration.destinationRules.homeAreaCodes = home
        },
        text("policy_worker_targets", "enforce: the destination policy checks worker redirect and bridge targets too; off: commands only.",
             { $0.policyWorkerTargets.rawValue }) { configuration, value throws(BridgeSettingProblem) in
            guard let mode = DestinationGuard.WorkerTargets(rawValue: value) else { throw .init("must be enforce or off, got \"\(value)\"") }
            configuration.policyWorkerTargets = mode
        },
        text("metrics_listen", "Prometheus /metrics address (host:port); empty to serve none.", unset: "",
             { $0.metricsListen.map { hostPort($0.host, $0.port) } }) { configuration, value throws(BridgeSettingProblem) in
            if value.isEmpty {
                configuration.metricsListen = nil
            } else {
                let (host, port) = try parseHostPort(value)
                configuration.metricsListen = .init(host: host, port: port)
            }
        },
        text("media_rtpengine", "rtpengine's ng address (IP:port, UDP) for anchored media, IVR, recording and DTMF; empty: no media features.",
             unset: "none", { $0.mediaRTPEngine.flatMap { address in address.ipAddress.map { hostPort($0, address.port ?? 0) } } }) { configuration, value throws(BridgeSettingProblem) in
            configuration.mediaRTPEngine = try ipAddress(value)
        },
        integer("media_timeout_ms", "How long an rtpengine request may take, retransmissions included, in milliseconds.", minimum: 50,
                { Int($0.mediaTimeout.milliseconds) }) { configuration, value in configuration.mediaTimeout = .milliseconds(value) },
        text("media_dtmf_listen", "UDP address (host:port) where rtpengine's --dtmf-log-dest sends the keys parties press; empty: no call.dtmf.",
             unset: "none", { $0.mediaDTMFListen.map { hostPort($0.host, $0.port) } }) { configuration, value throws(BridgeSettingProblem) in
            if value.isEmpty {
                configuration.mediaDTMFListen = nil
            } else {
                let (host, port) = try parseHostPort(value)
                configuration.mediaDTMFListen = .init(host: host, port: port)
            }
        },
        text("media_prompts", "Folder of the prompts play may name (NAME.wav, 8 kHz mono); rtpengine must read the same path.", unset: "none",
             { $0.mediaPrompts }) { configuration, value throws(BridgeSettingProblem) in
            configuration.mediaPrompts = value.isEmpty ? nil : value
        },
        text("media_tones", "Folder the bridge writes its tones to (ringback, busy, beep); rtpengine must read the same path.",
             unset: "./bridge-<bridge_id>.tones", { $0.mediaTones }) { configuration, value throws(BridgeSettingProblem) in
            configuration.mediaTones = value.isEmpty ? nil : value
        },
        text("media_recordings", "rtpengine's --recording-dir (with --recording-method=pcap) as this host sees it; empty: no recording.",
             unset: "none", { $0.mediaRecordings }) { configuration, value throws(BridgeSettingProblem) in
            configuration.mediaRecordings = value.isEmpty ? nil : value
        },
        integer("media_max_recordings", "Recordings at once, across calls; one more gets limit_exceeded.", minimum: 0,
                { $0.mediaMaxRecordings }) { configuration, value in configuration.mediaMaxRecordings = value },
        integer("media_min_free_mb", "Free space, in MB, the recordings folder needs for a recording to start.", minimum: 0,
                { $0.mediaMinFreeMB }) { configuration, value in configuration.mediaMinFreeMB = value },
        text("log_level", "trace, debug, info, notice, warning, error or critical.", { $0.logLevel.rawValue }) { configuration, value throws(BridgeSettingProblem) in
            guard let level = Logger.Level(rawValue: value) else {
                throw .init("must be trace, debug, info, notice, warning, error or critical, got \"\(value)\"")
            }
            configuration.logLevel = level
        },
    ]

    private static func curveRole(_ role: BusEndpoints.Role, _ key: String, _ help: String) -> Self {
        text(key, help, { $0.curveRoleDirectories[role] }) { configuration, value throws(BridgeSettingProblem) in
            configuration.curveRoleDirectories[role] = value.isEmpty ? nil : value
        }
    }

    static func named(_ key: String) -> BridgeSetting? {
        all.first { $0.key == key }
    }

    static func hostPort(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// An `IP:port` (`[v6]:port`) to send to; nil for the empty value (none).
    static func ipAddress(_ value: String) throws(BridgeSettingProblem) -> SocketAddress? {
        guard !value.isEmpty else { return nil }
        let (host, port) = try parseHostPort(value)
        guard let address = try? SocketAddress(ipAddress: host, port: port) else { throw .init("needs an IP address, got \"\(value)\"") }
        return address
    }

    /// `host:port` or `[v6]:port`; port 0 asks the system for a free one.
    static func parseHostPort(_ value: String) throws(BridgeSettingProblem) -> (String, Int) {
        guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]), (0...65535).contains(port) else {
            throw .init("must be host:port, got \"\(value)\"")
        }
        var host = String(value[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            throw .init("an IPv6 address goes in brackets, [::1]:5080, got \"\(value)\"")
        }
        guard !host.isEmpty else { throw .init("names no host, got \"\(value)\"") }
        return (host, port)
    }

    private static func endpoint(_ value: String) throws(BridgeSettingProblem) -> String {
        guard value.hasPrefix("tcp://") || value.hasPrefix("ipc://") || value.hasPrefix("inproc://") else {
            throw .init("must be a ZeroMQ endpoint such as tcp://127.0.0.1:5570, got \"\(value)\"")
        }
        return value
    }

    /// Comma-separated hosts (`host`, `host:port`, `[v6]:port`), lower-cased; empty text is none.
    private static func hosts(_ value: String) throws(BridgeSettingProblem) -> [String] {
        let entries = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if let problem = entries.lazy.compactMap(DestinationRules.hostProblem).first { throw .init(problem) }
        return entries
    }

    private static func path(_ value: String) throws(BridgeSettingProblem) -> String {
        guard !value.isEmpty else { throw .init("must be a file path") }
        return value
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}

/// Reads the bridge's settings: the command line wins over the environment, which wins over the file;
/// a setting given nowhere keeps `BridgeConfiguration()`'s default.
struct BridgeSettingsLoader {
    /// Values given on the command line, by key.
    var commandLine: [String: String] = [:]
    var environment: [String: String] = ProcessInfo.processInfo.environment
    /// A JSON file of `{"key": value}` pairs; nil: none.
    var file: String?

    /// Where each setting's value came from, for `--check-config`.
    private(set) var sources: [String: String] = [:]

    /// Parses `--key value` and `--key=value` pairs (what the command line passes on) into `commandLine`.
    static func commandLineValues(_ arguments: [String]) throws(BridgeSettingsError) -> [String: String] {
        var values: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            guard argument.hasPrefix("--") else { throw BridgeSettingsError("unexpected argument \"\(argument)\"") }
            var name = String(argument.dropFirst(2))
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            let key = name.replacingOccurrences(of: "-", with: "_")
            guard BridgeSetting.named(key) != nil else {
                throw BridgeSettingsError("unknown option --\(name) (switchboard-bridge --help lists them)")
            }
            if value == nil {
                index += 1
                guard index < arguments.count else { throw BridgeSettingsError("--\(name) needs a value") }
                value = arguments[index]
            }
            values[key] = value
            index += 1
        }
        return values
    }

    /// The configuration these sources make, with every cross-setting rule checked and CURVE keys loaded.
    mutating func load() async throws -> BridgeConfiguration {
        var fileProvider: (any ConfigProvider)?
        if let file {
            guard FileManager.default.fileExists(atPath: file) else { throw BridgeSettingsError("configuration file \(file) does not exist") }
            let location = ConfigReader(provider: InMemoryProvider(values: ["filePath": ConfigValue(.string(file), isSecret: false)]))
            do {
                fileProvider = try await FileProvider<JSONSnapshot>(config: location)
            } catch {
                throw BridgeSettingsError("configuration file \(file): \(error)")
            }
            if let unknown = try Self.unknownKeys(inJSONFile: file) {
                throw BridgeSettingsError("configuration file \(file): unknown setting \"\(unknown)\" (switchboard-bridge --help lists them)")
            }
        }
        var configuration = BridgeConfiguration()
        for setting in BridgeSetting.all {
            let found: (value: BridgeSetting.Value, source: String)?
            do throws(BridgeSettingProblem) {
                if let text = commandLine[setting.key] {
                    found = (try setting.parse(text), "command line")
                } else if let text = environment[setting.environmentVariable] {
                    found = (try setting.parse(text), "environment")
                } else if let fileProvider, let file {
                    found = try Self.read(setting, from: fileProvider).map { ($0, file) }
                } else {
                    found = nil
                }
            } catch {
                let source = commandLine[setting.key] != nil ? "command line" : environment[setting.environmentVariable] != nil ? "environment" : file
                throw BridgeSettingsError(setting, source: source, error.message)
            }
            guard let found else { continue }
            do throws(BridgeSettingProblem) {
                try setting.apply(&configuration, found.value)
            } catch {
                throw BridgeSettingsError(setting, source: found.source, error.message)
            }
            sources[setting.key] = found.source
        }
        try configuration.validate()
        try configuration.loadCurveKeys()
        return configuration
    }

    private static func read(_ setting: BridgeSetting, from provider: any ConfigProvider) throws(BridgeSettingProblem) -> BridgeSetting.Value? {
        let key = AbsoluteConfigKey([setting.key])
        do {
            switch setting.kind {
            case .text:
                return try provider.value(forKey: key, type: .string).value.map { value in
                    if case .string(let text) = value.content { .text(text) } else { .text("\(value)") }
                }
            case .integer:
                return try provider.value(forKey: key, type: .int).value.map { value in
                    if case .int(let number) = value.content { .integer(number) } else { .integer(0) }
                }
            case .number:
                if let value = try? provider.value(forKey: key, type: .double).value, case .double(let number) = value.content {
                    return .number(number)
                }
                return try provider.value(forKey: key, type: .int).value.map { value in
                    if case .int(let number) = value.content { .number(Double(number)) } else { .number(0) }
                }
            }
        } catch {
            throw .init(setting.kind == .text ? "expected a string" : setting.kind == .integer ? "expected a whole number" : "expected a number")
        }
    }

    /// The first top-level key of a JSON file that is no setting: a misspelt key must not pass unnoticed.
    private static func unknownKeys(inJSONFile file: String) throws -> String? {
        guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any] else {
            throw BridgeSettingsError("configuration file \(file): expected a JSON object of settings")
        }
        return object.keys.sorted().first { BridgeSetting.named($0) == nil }
    }
}
