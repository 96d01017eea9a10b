import BusSchema
import CallPolicy
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
    var eventsEndpoint = "tcp://127.0.0.1:5570"
    var decisionsEndpoint = "tcp://127.0.0.1:5571"
    var replayEndpoint = "tcp://127.0.0.1:5572"
    var commandsEndpoint = "tcp://127.0.0.1:5573"
    /// Where new calls the bridge places go first (Kamailio finds registered users); nil: to each target.
    var outboundProxy: SocketAddress? = try? SocketAddress(ipAddress: "127.0.0.1", port: 5060)
    /// The live calls' dialogs; nil means `./bridge-<bridge id>.dialogs.sqlite`.
    var dialogStorePath: String?
    var callLimits = B2BUA.Limits()
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
    /// The directory of admitted client public keys (`curve_clients`).
    var curveClientsDirectory: String?
    /// Where Prometheus `/metrics` is served; nil serves none.
    var metricsListen: HostPort? = HostPort(host: "127.0.0.1", port: 9091)
    /// Where the bridge may send SIP: the rules the gateway checks with (SIP domains, trunks, home numbers).
    var destinationRules = DestinationRules()
    /// Commands are always checked; worker targets unless this is `off`.
    var policyWorkerTargets = DestinationGuard.WorkerTargets.enforce
    var logLevel: Logger.Level = .info

    struct HostPort: Equatable {
        var host: String
        var port: Int
    }

    /// The software version announced in `bridge.started`.
    static let version = "0.3.0-dev"

    var resolvedJournalPath: String { journalPath ?? "./bridge-\(bridgeId).journal.sqlite" }
    var resolvedDialogStorePath: String { dialogStorePath ?? "./bridge-\(bridgeId).dialogs.sqlite" }

    /// The rules that tie settings together; each setting's own range is checked where it is read.
    func validate() throws(BridgeSettingsError) {
        if callLimits.maxRingTimeout < callLimits.defaultRingTimeout {
            throw BridgeSettingsError(key: "ring_timeout", "must be at most max_ring_timeout (\(callLimits.maxRingTimeout.components.seconds) s)")
        }
        if (curveKeyFile == nil) != (curveClientsDirectory == nil) {
            throw BridgeSettingsError(key: curveKeyFile == nil ? "curve_key" : "curve_clients", "curve_key and curve_clients go together")
        }
        let endpoints = [eventsEndpoint, decisionsEndpoint, replayEndpoint, commandsEndpoint]
        if let repeated = endpoints.first(where: { endpoint in endpoints.filter { $0 == endpoint }.count > 1 && !endpoint.hasSuffix(":0") && !endpoint.hasSuffix(":*") }) {
            throw BridgeSettingsError("bus_events, bus_decisions, bus_replay and bus_commands must differ: \(repeated) is given twice")
        }
    }

    /// Reads the CURVE files named by `curveKeyFile` and `curveClientsDirectory`, if any.
    mutating func loadCurveKeys() throws {
        guard let keyFile = curveKeyFile, let clientsDirectory = curveClientsDirectory else { return }
        let clients = try CurveKeyFile.loadPublicKeys(directory: clientsDirectory)
        guard !clients.isEmpty else {
            throw BridgeSettingsError(key: "curve_clients", "\(clientsDirectory) holds no *.pub key: no worker could connect")
        }
        curve = .init(keyPair: try CurveKeyFile.loadKeyPair(from: keyFile), allowedClients: clients)
    }
}
