import BusSchema
import Foundation
import Logging
import MetricsEndpoint
import Prometheus
import ServiceLifecycle
import WorkerSDK

/// What the accounting worker needs to run; `switchboard-worker accounting` fills it from the command line.
///
/// ```swift
/// let configuration = AccountingConfiguration(databasePath: "cdr.sqlite", events: "tcp://127.0.0.1:5570",
///                                             replay: "tcp://127.0.0.1:5572")
/// ```
struct AccountingConfiguration: Sendable {
    var databasePath: String
    /// The bridge's events endpoint (PUB).
    var events: String
    /// The bridge's replay endpoint (ROUTER).
    var replay: String
    /// The bridge whose cursor to resume from; nil: the only one on file.
    var bridgeId: String?
    /// How long without traffic before the journal is asked for anything missed at the tail.
    var idleCheckInterval: Duration = .seconds(3)
    /// CURVE client settings when the bridge requires CURVE.
    var curve: WorkerConfiguration.Curve?
    /// Where Prometheus `/metrics` is served; nil serves none.
    var metricsListen: (host: String, port: Int)?
}

/// Builds the accounting worker: an ``EventSubscriber`` resuming from the cursor in the CDR database,
/// applying each event and the cursor in one transaction (exactly once across restarts).
///
/// ```swift
/// let group = try buildAccountingWorker(configuration: configuration, logger: logger)
/// try await group.run()
/// ```
func buildAccountingWorker(configuration: AccountingConfiguration, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
                           logger: Logger) throws -> ServiceGroup {
    let store = try CDRStore(path: configuration.databasePath)
    let cursor = try store.cursor(bridgeId: configuration.bridgeId)
    logger.info("accounting starting", metadata: [
        "db.path": "\(configuration.databasePath)", "bridge.id": "\(cursor?.bridgeId ?? configuration.bridgeId ?? "-")",
        "bus.resume_after": "\(cursor.map { String($0.lastSeq) } ?? "-")",
    ])
    let subscriber = EventSubscriber(
        configuration: SubscriberConfiguration(events: configuration.events, replay: configuration.replay,
                                               resumeAfter: cursor?.lastSeq,
                                               idleCheckInterval: configuration.idleCheckInterval, curve: configuration.curve),
        logger: logger
    )
    let metrics = AccountingMetrics(registry: registry)
    subscriber.onEvent { [logger] event in
        let (result, finished) = try await store.apply(event)
        if let finished { metrics.record(finished) }
        if result == .recorded {
            logger.debug("cdr written", metadata: ["call.id": "\(event.callId ?? "-")", "bus.seq": "\(event.seq)"])
        }
    }
    subscriber.onLoss { [logger] loss in
        logger.critical("events lost: CDRs of these calls may be missing", metadata: [
            "bridge.id": "\(loss.bridgeId ?? "-")", "bus.loss.from": "\(loss.range.lowerBound)",
            "bus.loss.to": "\(loss.range.upperBound)", "bus.loss.reason": "\(loss.reason.rawValue)",
        ])
    }
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: subscriber)]
    if let listen = configuration.metricsListen {
        services.append(.init(service: makeMetricsServer(registry: registry, host: listen.host, port: listen.port,
                                                         serverName: "switchboard-accounting", logger: logger)))
    }
    return ServiceGroup(
        configuration: ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
    )
}
