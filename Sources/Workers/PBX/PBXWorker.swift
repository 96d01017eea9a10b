import BusSchema
import Foundation
import Logging
import PBX
import ServiceLifecycle
import WorkerSDK

/// What the PBX worker needs to run; `switchboard-worker pbx` fills it from the command line.
struct PBXWorkerConfiguration: Sendable {
    var databasePath: String
    var bridges: [String]
    var workerId = "pbx-\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
    var capacity = 64
    /// The host of the URIs made from bare names (`bob` → `sip:bob@<domain>`); nil: the called URI's host (the To header's).
    var domain: String?
    var reloadInterval: Duration = .seconds(1)
    var curve: WorkerConfiguration.Curve?
    /// Bridges whose `registration.` events tell who is registered; empty: only a failure tells.
    var registrations: [RegistrationTable.Bridge] = []
    /// The router's dial plan for the calls no PBX rule names (numbers, gateways); nil: those users are rung plainly.
    var routesPath: String?
}

/// Builds the PBX worker: the rule cache, the optional registration table and the bus worker answering offers and
/// failure steps from the rules, as one service group (SIGTERM/SIGINT shut it down, the worker first).
///
/// ```swift
/// try await buildPBXWorker(configuration: PBXWorkerConfiguration(databasePath: "pbx.sqlite", bridges: ["tcp://127.0.0.1:5571"]),
///                          logger: logger).run()
/// ```
func buildPBXWorker(configuration: PBXWorkerConfiguration, logger: Logger) async throws -> ServiceGroup {
    var logger = logger
    logger[metadataKey: "worker.id"] = "\(configuration.workerId)"
    let (decider, services) = try await PBXDecider.make(configuration: configuration, logger: logger)
    let worker = Worker(configuration: WorkerConfiguration(bridges: configuration.bridges, workerId: configuration.workerId,
                                                           capacity: configuration.capacity, curve: configuration.curve),
                        logger: logger)
    worker.onOffer { offer in await decider.decide(offer) }
    return ServiceGroup(configuration: ServiceGroupConfiguration(services: services + [.init(service: worker)],
                                                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
}

/// The PBX worker's decisions, apart from its bus worker, so another worker (the IVR) can decide the numbers it does
/// not answer itself exactly as the PBX worker would: from the rules, the registrations, and the dial plan.
struct PBXDecider: Sendable {
    let rules: PBXRuleCache
    let store: PBXStore
    let routes: RouteCache?
    let online: RegistrationTable?
    let domain: String?
    let logger: Logger

    /// The decider and the services it needs running (rule reloads, the dial plan's, the registration table).
    static func make(configuration: PBXWorkerConfiguration, logger: Logger) async throws
        -> (PBXDecider, [ServiceGroupConfiguration.ServiceConfiguration]) {
        let store = try PBXStore(path: configuration.databasePath)
        let rules = try PBXRuleCache(store: store, interval: configuration.reloadInterval, logger: logger)
        let routes: RouteCache?
        if let path = configuration.routesPath {
            routes = try await RouteCache(store: try RouteStore(path: path), interval: configuration.reloadInterval, logger: logger)
        } else {
            routes = nil
        }
        let online = configuration.registrations.isEmpty ? nil
            : RegistrationTable(bridges: configuration.registrations, curve: configuration.curve, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: rules)]
        if let routes { services.append(.init(service: routes)) }
        if let online { services.append(.init(service: online)) }
        return (PBXDecider(rules: rules, store: store, routes: routes, online: online, domain: configuration.domain, logger: logger), services)
    }

    func decide(_ offer: CallOffer) async -> Decision {
        let router = await rules.router
        do {
            let result = try router.decide(offer, at: Date(), domain: domain ?? offer.to.host ?? offer.requestUri.host ?? "localhost",
                                           registered: { user in online?.isRegistered(user: user) },
                                           takeTurn: { group in try store.takeTurn(group) })
            if result.rule == .plain, let routes {
                return routes.table.route(offer).decision
            }
            logger.info("pbx decided", metadata: ["sip.call_id": "\(offer.sipCallId)", "pbx.user": "\(offer.requestUri.user ?? "-")",
                                                  "pbx.rule": "\(result.rule.rawValue)", "pbx.step": "\(offer.failure?.step ?? 0)"])
            return result.decision
        } catch {
            // The rotation could not be written (a locked or broken file): the caller hears a failure it can retry.
            logger.error("pbx decision failed", metadata: ["sip.call_id": "\(offer.sipCallId)", "error": "\(error)"])
            return .reject(status: 480, reason: "Temporarily Unavailable")
        }
    }
}

/// The PBX rules in memory, reloaded when the file changes (SQLite's `data_version`), so `pbx-rules` and the
/// gateway's `/api/pbx` edits apply within the interval and a decision never reads the disk for its rules.
/// A failed reload keeps the rules it had.
actor PBXRuleCache: Service {
    private(set) var router: PBXRouter
    private var version: Int
    private let store: PBXStore
    private let interval: Duration
    private let logger: Logger

    init(store: PBXStore, interval: Duration, logger: Logger) throws {
        let (loaded, version) = try store.snapshot()
        (router, self.version) = (loaded, version)
        self.store = store
        self.interval = interval
        self.logger = logger
        logger.info("pbx rules loaded", metadata: ["pbx.extensions": "\(loaded.extensions.count)", "pbx.groups": "\(loaded.groups.count)"])
    }

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    try await Task.sleep(for: self.interval)
                    await self.refresh()
                }
            }
        } catch is CancellationError {
            // Shutdown interrupts the sleep; that is the normal way out.
        }
    }

    private func refresh() {
        do {
            guard try store.dataVersion() != version else { return }
            (router, version) = try store.snapshot()
            logger.info("pbx rules reloaded", metadata: ["pbx.extensions": "\(router.extensions.count)", "pbx.groups": "\(router.groups.count)"])
        } catch {
            logger.error("pbx rules reload failed; keeping the previous rules", metadata: ["db.path": "\(store.path)", "error": "\(error)"])
        }
    }
}
