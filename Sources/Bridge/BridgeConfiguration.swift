import BusSchema
import CallPolicy
import Foundation
import Logging
import NIOCore
import SIPCore
import ZeroMQ

/// Everything a bridge needs to run. `BridgeSettingsLoader` fills it from a file, the environment and the
/// command line (`BridgeSetting.all` names each setting); tests build it directly with port 0. The
/// defaults here are the only ones: the settings, `--help` and the README's table show them.
struct BridgeConfiguration {
    /// What the bridge answers when no worker decides in time (or none is connected, or all are busy).
    enum Fallback: Equatable, CustomStringConvertible {
        case reject(status: Int, reason: String?, retryAfter: Int?)
        case redirect([Target])

        /// Parses `reject:503`, `reject:480:Temporarily Unavailable` or `redirect:sip:operator@example.com`.
        init?(argument: String, retryAfter: Int?) {
            if argument.hasPrefix("redirect:") {
                let uri = String(argument.dropFirst("redirect:".count))
                guard uri.hasPrefix("sip:") || uri.hasPrefix("sips:") else { return nil }
                self = .redirect([Target(uri: uri, q: 1.0)])
            } else if argument.hasPrefix("reject:") {
                let parts = argument.dropFirst("reject:".count).split(separator: ":", maxSplits: 1)
                guard let first = parts.first, let status = Int(first), (400...699).contains(status) else { return nil }
                self = .reject(status: status, reason: parts.count > 1 ? String(parts[1]) : nil, retryAfter: retryAfter)
            } else {
                return nil
            }
        }

        var decision: Decision {
            switch self {
            case .reject(let status, let reason, let retryAfter):
                .reject(status: status, reason: reason, headers: retryAfter.map { ["Retry-After": "\($0)"] } ?? [:])
            case .redirect(let targets):
                .redirect(targets)
            }
        }

        /// The setting's spelling, which `init(argument:retryAfter:)` reads back.
        var argument: String {
            switch self {
            case .reject(let status, let reason, _):
                "reject:\(status)\(reason.map { ":\($0)" } ?? "")"
            case .redirect(let targets):
                "redirect:\(targets.map(\.uri).joined(separator: ","))"
            }
        }

        var description: String {
            switch self {
            case .reject(let status, let reason, let retryAfter):
                "reject \(status)\(reason.map { " \($0)" } ?? "")\(retryAfter.map { " Retry-After \($0)" } ?? "")"
            case .redirect(let targets):
                "redirect \(targets.map(\.uri).joined(separator: ", "))"
            }
        }
    }

    var bridgeId = "bridge-1"
    var sipHost = "127.0.0.1"
    var sipPort = 5080
    /// Where the bridge's Via and Contact say it is, when that is not `sipHost:sipPort` (a wildcard
    /// listen address, NAT); nil: the listen address. Port 0: the listen port.
    var advertisedAddress: HostPort?
    var eventsEndpoint = "tcp://127.0.0.1:5570"
    var decisionsEndpoint = "tcp://127.0.0.1:5571"
    var replayEndpoint = "tcp://127.0.0.1:5572"
    var commandsEndpoint = "tcp://127.0.0.1:5573"
    /// Where new calls the bridge places go first (Kamailio finds registered users); nil: to each target.
    var outboundProxy: SocketAddress? = try? SocketAddress(ipAddress: "127.0.0.1", port: 5060)
    /// Who may send the bridge SIP; nil: the outbound proxy's address (see `resolvedTrustedSources`).
    var trustedSources: TrustedSources?
    /// INVITEs one source may have waiting for a decision at once; beyond it they get 503 at once.
    var maxPendingOffersPerSource = 2_000
    /// When new calls are shed with 503 because the bridge cannot keep up (``OverloadControl``).
    var overload = OverloadControl.Configuration()
    /// TCP connections the SIP listener keeps at once; a new one beyond it is closed.
    var tcpMaxConnections = 1_024
    /// A TCP connection with no traffic either way for this long is closed (Kamailio reconnects as needed).
    var tcpIdleTimeout: Duration = .seconds(300)
    /// The live calls' dialogs; nil means `./bridge-<bridge id>.dialogs.sqlite`.
    var dialogStorePath: String?
    var callLimits = B2BUA.Limits()
    /// Session timers (RFC 4028) on every leg: the interval asked for and the smallest accepted.
    var sessionTimer = SessionTimer.Configuration()
    /// The event journal's file; nil means `./bridge-<bridge id>.journal.sqlite`.
    var journalPath: String?
    var journalMaxEvents = 1_000_000
    var journalMaxAge: Duration = .seconds(72 * 3600)
    var journalPruneInterval: Duration = .seconds(60)
    /// How long a call waits for a worker before the fallback answers it.
    var decisionTimeout: Duration = .milliseconds(500)
    var fallback: Fallback = .reject(status: 503, reason: nil, retryAfter: 30)
    /// RFC 3261 §17.2.1: send 100 Trying only if the final answer is not ready by then.
    var tryingDelay: Duration = .milliseconds(200)
    var heartbeatInterval: Duration = .seconds(1)
    var liveness = 3
    var timers = SIPTimers()
    var parserLimits = SIPParserLimits()
    /// CURVE on the bus; nil serves plain ZeroMQ. `loadCurveKeys()` fills it from the two files below.
    var curve: BusEndpoints.CurveServer?
    /// This bridge's CURVE key pair file (`curve_key`).
    var curveKeyFile: String?
    /// The directory of client public keys admitted on every bus socket (`curve_clients`).
    var curveClientsDirectory: String?
    /// Directories of keys admitted on one role's sockets only (`curve_workers`, `curve_subscribers`, `curve_commanders`).
    var curveRoleDirectories: [BusEndpoints.Role: String] = [:]
    /// How often those directories are read again while the bridge runs (`curve_reload_interval`; SIGHUP reads
    /// them at once): a key added is admitted, a key removed is refused and its connections are closed.
    var curveReloadInterval: Duration = .seconds(2)
    /// Lets the bus bind beyond loopback without CURVE (`bus_allow_insecure`), for a network the
    /// operator secures by other means; off, such a bridge refuses to start.
    var busAllowInsecure = false
    /// Where Prometheus `/metrics` is served; nil serves none.
    var metricsListen: HostPort? = HostPort(host: "127.0.0.1", port: 9091)
    /// Where the bridge may send SIP: the rules the gateway checks with (SIP domains, trunks, home numbers).
    var destinationRules = DestinationRules()
    /// Commands are always checked; worker targets unless this is `off`.
    var policyWorkerTargets = DestinationGuard.WorkerTargets.enforce
    /// rtpengine's ng address; nil: no media features (`MediaService`).
    var mediaRTPEngine: SocketAddress?
    var mediaTimeout: Duration = .milliseconds(1_000)
    var mediaDTMFListen: HostPort?
    var mediaPrompts: String?
    var mediaTones: String?
    var mediaRecordings: String?
    var mediaMaxRecordings = 100
    var mediaMinFreeMB = 500
    var logLevel: Logger.Level = .info

    struct HostPort: Equatable {
        var host: String
        var port: Int
    }

    /// The software version announced in `bridge.started`.
    static let version = "0.3.0-dev"

    var resolvedJournalPath: String { journalPath ?? "./bridge-\(bridgeId).journal.sqlite" }
    var resolvedDialogStorePath: String { dialogStorePath ?? "./bridge-\(bridgeId).dialogs.sqlite" }
    var resolvedTonesPath: String { mediaTones ?? "./bridge-\(bridgeId).tones" }
    /// The configured sources, else the outbound proxy; with neither, nobody (`validate()` refuses that).
    var resolvedTrustedSources: TrustedSources {
        trustedSources ?? TrustedSources.defaultSources(outboundProxy: outboundProxy) ?? TrustedSources(networks: [])
    }

    /// The rules that tie settings together; each setting's own range is checked where it is read.
    func validate() throws(BridgeSettingsError) {
        if callLimits.maxRingTimeout < callLimits.defaultRingTimeout {
            throw BridgeSettingsError(key: "ring_timeout", "must be at most max_ring_timeout (\(callLimits.maxRingTimeout.components.seconds) s)")
        }
        if sessionTimer.interval < sessionTimer.minimum {
            throw BridgeSettingsError(key: "session_expires", "must be at least session_min_se (\(sessionTimer.minimum) s)")
        }
        let hasClients = curveClientsDirectory != nil || !curveRoleDirectories.isEmpty
        if curveKeyFile == nil, hasClients {
            throw BridgeSettingsError(key: "curve_key", "curve_clients, curve_workers, curve_subscribers and curve_commanders need curve_key")
        }
        if curveKeyFile != nil, !hasClients {
            throw BridgeSettingsError(key: "curve_clients", "curve_key needs the keys to admit: curve_clients, or curve_workers, curve_subscribers, curve_commanders")
        }
        if advertisedAddress == nil, ["0.0.0.0", "::"].contains(sipHost) {
            throw BridgeSettingsError(key: "sip_advertised_address", "sip_listen \(sipHost) is every address, so the Via and Contact need one the proxy can reach: set sip_advertised_address")
        }
        if trustedSources == nil, outboundProxy == nil {
            throw BridgeSettingsError(key: "sip_trusted_sources", "without an outbound_proxy there is no proxy to trust by default: name the proxies' addresses, or any")
        }
        let endpoints = [eventsEndpoint, decisionsEndpoint, replayEndpoint, commandsEndpoint]
        if curveKeyFile == nil, !busAllowInsecure, let exposed = endpoints.first(where: { !BusEndpoints.isLocal($0) }) {
            throw BridgeSettingsError(key: "curve_key", "\(exposed) is reachable beyond this host, and without CURVE anyone who reaches it can route, follow and place calls: set curve_key and curve_clients, bind to loopback, or set bus_allow_insecure")
        }
        if let repeated = endpoints.first(where: { endpoint in endpoints.filter { $0 == endpoint }.count > 1 && !endpoint.hasSuffix(":0") && !endpoint.hasSuffix(":*") }) {
            throw BridgeSettingsError("bus_events, bus_decisions, bus_replay and bus_commands must differ: \(repeated) is given twice")
        }
    }

    /// Reads the CURVE files named by `curveKeyFile`, `curveClientsDirectory` and `curveRoleDirectories`, if any.
    mutating func loadCurveKeys() throws {
        guard let keyFile = curveKeyFile else { return }
        let directories = BusKeys.Directories(everySocket: curveClientsDirectory, byRole: curveRoleDirectories)
        let keys = try directories.read()
        guard !keys.isEmpty else {
            throw BridgeSettingsError(key: "curve_clients", "no *.pub key in \(directories.description): no client could connect")
        }
        curve = .init(keyPair: try CurveKeyFile.loadKeyPair(from: keyFile), keys: keys, directories: directories,
                      reloadInterval: curveReloadInterval)
    }
}
