import Logging
import ServiceLifecycle
import Synchronization

/// Keeps the dial plan in memory and reloads it when the database changes, so that the CLI can edit
/// routes while the router runs and a routing decision never waits for the disk.
///
/// Every `interval` it reads SQLite's `data_version` (one cheap read, no table scan) and reloads
/// routes and blocks only when another connection has committed since the last load. A failed reload
/// keeps the previous table: stale routes are better than no routes.
///
/// ```swift
/// let cache = try await RouteCache(store: store, interval: .seconds(2), logger: logger)
/// let decision = cache.table.route(offer).decision
/// // run `cache` in the ServiceGroup to keep it fresh
/// ```
actor RouteCache: Service {
    /// The current snapshot, readable from any thread without waiting for the actor: offers are decided
    /// inline on the worker's bus thread (``Worker/onOffer(inline:)``).
    nonisolated var table: RoutingTable { snapshot.withLock { $0 } }
    private let snapshot: Mutex<RoutingTable>
    private var version: Int
    private let store: RouteStore
    private let interval: Duration
    private let logger: Logger

    /// Loads the dial plan once, so the router never starts with an empty table.
    init(store: RouteStore, interval: Duration, logger: Logger) async throws {
        let (table, version) = try await store.snapshot()
        snapshot = Mutex(table)
        self.version = version
        self.store = store
        self.interval = interval
        self.logger = logger
        Self.report(table, logger: logger)
    }

    /// Polls for changes until graceful shutdown.
    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    try await Task.sleep(for: self.interval)
                    await self.refreshLoggingFailures()
                }
            }
        } catch is CancellationError {
            // Shutdown interrupts the sleep; that is the normal way out of the loop.
        }
    }

    /// Reloads if the database changed since the last load; returns whether it did.
    @discardableResult
    func refresh() async throws -> Bool {
        guard try await store.dataVersion() != version else { return false }
        let (table, version) = try await store.snapshot()
        snapshot.withLock { $0 = table }
        self.version = version
        Self.report(table, logger: logger)
        return true
    }

    private func refreshLoggingFailures() async {
        do {
            try await refresh()
        } catch {
            logger.error("dial plan reload failed; keeping the previous routes", metadata: [
                "db.path": "\(store.path)", "error": "\(error)",
            ])
        }
    }

    private static func report(_ table: RoutingTable, logger: Logger) {
        logger.info("dial plan loaded", metadata: [
            "router.prefixes": "\(table.prefixCount)", "router.blocks": "\(table.blockCount)",
        ])
        for route in table.unusableRoutes {
            logger.warning("route skipped: its target is not a sip:/sips: URI", metadata: [
                "router.route_id": "\(route.id.map(String.init) ?? "?")", "router.target": "\(route.target)",
            ])
        }
    }
}
