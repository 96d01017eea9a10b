import BusSchema
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// A worker's view of who is reachable: follows the `registration.` events of one or more bridges (with
/// replay of their journals from the start, so a worker that starts late knows who registered before)
/// and answers "is alice registered?" at any time, from any task.
///
/// ```swift
/// let online = RegistrationTable(bridges: [.init(events: "tcp://127.0.0.1:5570", replay: "tcp://127.0.0.1:5572")],
///                                logger: logger)
/// worker.onOffer { offer in
///     online.isRegistered(user: offer.requestUri.user ?? "") ? .redirect([Target(uri: offer.requestUri.uri)])
///                                                            : .redirect([Target(uri: "sip:voicemail@switchboard.local")])
/// }
/// try await ServiceGroup(services: [online, worker], gracefulShutdownSignals: [.sigterm], logger: logger).run()
/// ```
///
/// Run it as a service: until it ``isCaughtUp`` with the journals it may not know every binding yet.
public final class RegistrationTable: Service, Sendable {
    public typealias ChangeHandler = @Sendable (Event) async -> Void

    /// The bus endpoints of one bridge.
    public struct Bridge: Sendable {
        public var events: String
        public var replay: String

        public init(events: String, replay: String) {
            self.events = events
            self.replay = replay
        }
    }

    /// A class around the locks, so the subscribers' handlers can hold them (a `Mutex` cannot be captured).
    private final class SharedState: Sendable {
        let value = Mutex(RegistrationState())
        /// The indexes in `bridges` of those whose journal has been read to its end.
        let caughtUp = Mutex(Set<Int>())
        let onChange = Mutex<ChangeHandler?>(nil)
    }

    private let shared = SharedState()
    private let bridges: [Bridge]
    private let subscribers: [EventSubscriber]
    private let now: @Sendable () -> Date

    /// Follows each bridge's `registration.` events from the first one its journal holds. `curve`: the
    /// bridges' CURVE settings, as a worker's; `now`: the clock bindings lapse by.
    public init(bridges: [Bridge], curve: WorkerConfiguration.Curve? = nil, logger: Logger,
                now: @escaping @Sendable () -> Date = Date.init) {
        self.now = now
        self.bridges = bridges
        subscribers = bridges.map { bridge in
            EventSubscriber(configuration: SubscriberConfiguration(events: bridge.events, replay: bridge.replay,
                                                                   topics: ["registration."], resumeAfter: 0, curve: curve),
                            logger: logger)
        }
        for (index, subscriber) in subscribers.enumerated() {
            subscriber.onEvent { [shared] event in
                guard shared.value.withLock({ $0.apply(event) }), let handler = shared.onChange.withLock({ $0 }) else { return }
                await handler(event)
            }
            subscriber.onCaughtUp { [shared] in shared.caughtUp.withLock { _ = $0.insert(index) } }
            subscriber.onLoss { loss in
                logger.warning("registration events lost", metadata: ["bus.loss": "\(loss)"])
            }
        }
    }

    /// Whether `user` (the AOR's user part, `alice`) has a contact that has not lapsed.
    ///
    /// ```swift
    /// if !online.isRegistered(user: "bob") { return .redirect([Target(uri: "sip:bob-mobile@gw.example.com")]) }
    /// ```
    public func isRegistered(user: String) -> Bool {
        shared.value.withLock { $0.isRegistered(user: user, now: now()) }
    }

    /// The live contacts of an address of record, most recently registered first.
    ///
    /// ```swift
    /// let phones = online.contacts(aor: "sip:alice@switchboard.local").map(\.contact)
    /// ```
    public func contacts(aor: String) -> [Registration] {
        shared.value.withLock { $0.contacts(aor: aor, now: now()) }
    }

    /// Every live binding, most recently updated first.
    public func online() -> [RegistrationState.Binding] {
        shared.value.withLock { $0.online(now: now()) }
    }

    /// Whether every bridge's journal has been read to its end: from then on the table knows every
    /// binding the bridges announced, and what changes is live.
    public var isCaughtUp: Bool { lagging.isEmpty }

    /// The bridges whose journal has not been read to its end yet: still replaying, or unreachable.
    public var lagging: [Bridge] {
        let caughtUp = shared.caughtUp.withLock { $0 }
        return bridges.indices.filter { !caughtUp.contains($0) }.map { bridges[$0] }
    }

    /// Waits until the table ``isCaughtUp`` (while it runs); false when `timeout` passes first or the task
    /// is cancelled.
    ///
    /// ```swift
    /// guard await online.waitUntilCaughtUp(timeout: .seconds(3)) else { throw Unreachable(online.lagging) }
    /// ```
    public func waitUntilCaughtUp(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        // Polled: catching up happens once, at start, and a short sleep is cancelled with the task.
        while !isCaughtUp {
            guard ContinuousClock.now < deadline, (try? await Task.sleep(for: .milliseconds(10))) != nil else { return isCaughtUp }
        }
        return true
    }

    /// Sets the function given each `registration.*` event that changed the table, after it was applied
    /// (also those replayed while catching up; ``isCaughtUp`` tells them apart).
    ///
    /// ```swift
    /// online.onChange { event in if online.isCaughtUp { print(event.type, event.seq) } }
    /// ```
    public func onChange(_ handler: @escaping ChangeHandler) {
        shared.onChange.withLock { $0 = handler }
    }

    /// Follows the bridges until graceful shutdown.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for subscriber in subscribers {
                group.addTask { try await subscriber.run() }
            }
        }
    }
}
