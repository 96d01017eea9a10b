import BusSchema
import Foundation
import Logging
import ServiceLifecycle
import WorkerSDK

extension CallUpdate {
    /// What a bus event changes in the live call table; nil for events that change no call
    /// (worker events, `bridge.stopping`, transfers, which the next events describe).
    init?(_ event: Event) {
        let id = event.callId ?? ""
        switch event.body {
        case .bridgeStarted:
            self = .bridgeStarted
        case .callOffered(let offer):
            self = .offered(callId: id, from: offer.from.uri, to: offer.requestUri.uri)
        case .callRouted(let routed):
            // A redirect ends the bridge's part (302); a bridged call goes on with dialing events.
            guard routed.action == .redirect else { return nil }
            self = .ended(callId: id, cause: "redirected")
        case .callRejected(let rejected):
            self = .ended(callId: id, cause: rejected.cause?.rawValue ?? "rejected")
        case .callOriginated(let originate):
            self = .originated(callId: id, account: originate.account, a: originate.a.uri, b: originate.b.uri,
                               idempotencyKey: originate.idempotencyKey)
        case .callDialing(let dialing):
            self = .dialing(callId: id, leg: dialing.leg.rawValue, uri: dialing.uri)
        case .callRinging(let ringing):
            self = .ringing(callId: id, leg: ringing.leg.rawValue)
        case .callAnswered(let answered):
            self = .answered(callId: id, leg: answered.leg.rawValue, uri: answered.uri)
        case .callConnected:
            self = .connected(callId: id)
        case .callLegFailed(let failed):
            self = .legFailed(callId: id, leg: failed.leg.rawValue, cause: failed.cause.rawValue)
        case .callHeld(let hold):
            self = .held(callId: id, leg: hold.leg.rawValue, held: true)
        case .callResumed(let hold):
            self = .held(callId: id, leg: hold.leg.rawValue, held: false)
        case .callEnded(let ended):
            self = .ended(callId: id, cause: ended.cause.rawValue)
        case .bridgeStopping, .workerJoined, .workerLeft, .workerLost, .callTransferred:
            return nil
        case .callDTMF, .callMediaPlayed, .callMediaRecorded:
            // Media on a live call changes none of its state; a recording reaches the CDR, and `/recordings` reads it there.
            return nil
        case .registrationCreated, .registrationRefreshed, .registrationRemoved, .registrationExpired:
            // Not a call: the RegistrationFeed keeps who is online.
            return nil
        }
    }
}

/// Keeps the ``CallTable`` in step with every configured bridge: one `EventSubscriber` per bridge,
/// resuming after the cursor saved with the table, so a restarted gateway replays what it missed
/// from the bridge's journal and shows the calls as they are.
///
/// ```swift
/// let feed = try EventFeed(bridges: configuration.bridges, table: table, store: store, logger: logger)
/// try await ServiceGroup(services: [feed], ...).run()
/// ```
final class EventFeed: Service {
    private let subscribers: [(id: String, subscriber: EventSubscriber)]
    private let logger: Logger

    init(bridges: [GatewayConfiguration.Bridge], curve: WorkerConfiguration.Curve? = nil, table: CallTable, store: GatewayStore,
         metrics: GatewayMetrics, logger: Logger) throws {
        let (saved, cursors) = try store.liveCalls()
        table.restore(saved)
        metrics.liveCalls.set(Int64(table.liveCalls().count))
        self.logger = logger
        subscribers = bridges.map { bridge in
            let subscriber = EventSubscriber(
                configuration: SubscriberConfiguration(events: bridge.events, replay: bridge.replay,
                                                       topics: ["call.", EventType.bridgeStarted.rawValue], resumeAfter: cursors[bridge.id],
                                                       curve: curve),
                logger: logger)
            subscriber.onEvent { event in
                guard let update = CallUpdate(event) else { return }
                let changes = table.apply(update, bridge: bridge.id, seq: event.seq, at: Event.wireTimestamp(event.timestamp))
                metrics.liveCalls.set(Int64(table.liveCalls().count))
                try await store.saveLiveCalls(bridge: bridge.id, seq: event.seq,
                                              upserts: changes.filter { !$0.removed }.map(\.call),
                                              removals: changes.filter(\.removed).map(\.call.callId))
            }
            subscriber.onLoss { loss in
                logger.error("call events lost; the bridge monitor reconciles the table", metadata: [
                    "gateway.bridge": "\(bridge.id)", "bus.loss.count": "\(loss.count)",
                ])
            }
            return (bridge.id, subscriber)
        }
    }

    func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for (id, subscriber) in subscribers {
                group.addTask {
                    self.logger.info("following bridge events", metadata: ["gateway.bridge": "\(id)"])
                    try await subscriber.run()
                }
            }
        }
    }
}

/// Asks each bridge for its live calls every interval: the health `GET /api/v1/health` reports, and a
/// check that ends table entries the bridge no longer has (their `call.ended` was lost).
final class BridgeMonitor: Service {
    private let bridges: BridgeDirectory
    private let table: CallTable
    private let interval: Duration
    private let logger: Logger

    init(bridges: BridgeDirectory, table: CallTable, interval: Duration, logger: Logger) {
        self.bridges = bridges
        self.table = table
        self.interval = interval
        self.logger = logger
    }

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await checkAll()
            try? await Task.sleep(for: interval)
        }
    }

    func checkAll() async {
        for client in bridges.clients {
            let checkedAt = Timestamp.now()
            do {
                let live = try await client.liveCallIds()
                bridges.record(client.id, .init(reachable: true, checkedAt: checkedAt, liveCalls: live.count))
                reconcile(bridge: client.id, live: live)
            } catch let error as BridgeError where ![.timeout, .unreachable].contains(error.code) {
                // The bridge answered (a refusal, e.g. a list too large for one frame): it is up, only the
                // reconciliation waits for the next check.
                logger.debug("bridge refused the live-call check", metadata: ["gateway.bridge": "\(client.id)", "bus.error": "\(error)"])
                bridges.record(client.id, .init(reachable: true, checkedAt: checkedAt))
            } catch {
                if bridges.status().first(where: { $0.id == client.id })?.health.reachable != false {
                    logger.warning("bridge unreachable", metadata: ["gateway.bridge": "\(client.id)", "bus.error": "\(error)"])
                }
                bridges.record(client.id, .init(reachable: false, checkedAt: checkedAt, error: "\(error)"))
            }
        }
    }

    /// Calls older than 30 s that the bridge does not list are over; their end event was lost.
    private func reconcile(bridge: String, live: Set<String>) {
        let cutoff = Timestamp.format(Date().addingTimeInterval(-30))
        for call in table.liveCalls() where call.bridge == bridge && !live.contains(call.callId) && call.createdAt < cutoff {
            logger.notice("call no longer on its bridge; ending it in the table", metadata: ["gateway.call_id": "\(call.callId)"])
            table.apply(.ended(callId: call.callId, cause: "lost"), bridge: bridge, seq: nil, at: Timestamp.now())
        }
    }
}
