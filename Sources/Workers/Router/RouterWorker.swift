import BusSchema
import Foundation
import Logging
import ServiceLifecycle
import WorkerSDK

/// What the router worker needs to run; `switchboard-worker router` fills it from the command line.
///
/// ```swift
/// let configuration = RouterConfiguration(databasePath: "routes.sqlite", bridges: ["tcp://127.0.0.1:5571"])
/// ```
struct RouterConfiguration: Sendable {
    var databasePath: String
    /// Decision endpoints of the bridges to serve (the worker connects to all of them).
    var bridges: [String]
    var workerId: String = RouterConfiguration.defaultWorkerId
    /// Decisions in flight at once, announced to the bridges.
    var capacity: Int = 64
    /// How often to check the database for edits.
    var reloadInterval: Duration = .seconds(2)
    /// CURVE client settings when the bridges require CURVE.
    var curve: WorkerConfiguration.Curve?
    var mode: Mode = .redirect
    /// With `.bridge`: how long each target rings; nil leaves it to the bridge.
    var ringTimeout: Duration?

    /// How a routed call reaches its targets.
    enum Mode: String, Sendable, CaseIterable {
        /// 302 with the targets as Contacts; Kamailio follows them.
        case redirect
        /// The bridge calls the targets in order as a B2BUA and stays in the call.
        case bridge
    }

    /// `router-<host>-<pid>`: unique per process, and readable in the bridge's logs.
    static var defaultWorkerId: String {
        "router-\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
    }
}

/// Builds the router worker: the dial-plan cache and the bus worker answering offers from it, as one
/// service group that shuts down gracefully on SIGTERM/SIGINT (the worker first, then the cache).
///
/// ```swift
/// let group = try await buildRouterWorker(configuration: configuration, logger: logger)
/// try await group.run()
/// ```
func buildRouterWorker(configuration: RouterConfiguration, logger: Logger) async throws -> ServiceGroup {
    var logger = logger
    logger[metadataKey: "worker.id"] = "\(configuration.workerId)"
    let store = try RouteStore(path: configuration.databasePath)
    let cache = try await RouteCache(store: store, interval: configuration.reloadInterval, logger: logger)
    let worker = Worker(
        configuration: WorkerConfiguration(
            bridges: configuration.bridges, workerId: configuration.workerId, capacity: configuration.capacity,
            curve: configuration.curve
        ),
        logger: logger
    )
    let (mode, ringTimeout) = (configuration.mode, configuration.ringTimeout)
    // The dial plan is in memory: each offer is decided on the bus thread as it arrives.
    worker.onOffer(inline: { [logger] offer in
        let result = cache.table.route(offer)
        log(result, for: offer, logger: logger)
        guard mode == .bridge, case .redirect(let targets) = result.decision else { return result.decision }
        let ringMs = ringTimeout.map { Int($0.components.seconds * 1000) }
        return .bridge(BridgeRoute(targets: targets.map { BridgeTarget(uri: $0.uri, ringTimeoutMs: ringMs) }, mode: .serial))
    })
    return ServiceGroup(
        configuration: ServiceGroupConfiguration(
            services: [.init(service: cache), .init(service: worker)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
    )
}

private func log(_ result: RoutingResult, for offer: CallOffer, logger: Logger) {
    var metadata: Logger.Metadata = ["sip.call_id": "\(offer.sipCallId)"]
    switch result {
    case .routed(let number, let prefix, let targets):
        metadata["router.number"] = "\(number)"
        metadata["router.prefix"] = "\(prefix)"
        metadata["router.targets"] = .array(targets.map { "\($0.uri)" })
        logger.info("call routed", metadata: metadata)
    case .blocked(let block):
        metadata["router.block_id"] = "\(block.id.map(String.init) ?? "?")"
        metadata["router.block_kind"] = "\(block.kind.rawValue)"
        metadata["router.block_pattern"] = "\(block.pattern)"
        logger.notice("call blocked", metadata: metadata)
    case .notANumber(let user):
        metadata["sip.request_uri"] = "\(offer.requestUri.uri)"
        metadata["router.user"] = "\(user ?? "")"
        logger.info("call refused: the request URI has no number", metadata: metadata)
    case .noRoute(let number):
        metadata["router.number"] = "\(number)"
        logger.info("call refused: no route", metadata: metadata)
    }
}
