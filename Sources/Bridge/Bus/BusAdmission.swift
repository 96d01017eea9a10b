import Logging
import Metrics
import Synchronization
import ZeroMQ

/// Who may use a CURVE bus while the bridge runs: the admitted keys, read again from their directories
/// every `reloadInterval`, and the connection each key was last heard on, so that removing a key ends its
/// sessions without a restart.
///
/// libzmq asks the ZAP handler about a connection only once, at its handshake. So a removed key is shut
/// out in three places:
/// - the ZAP allow-lists (`onChange`): no new connection with it;
/// - every message on a ROUTER socket (decisions, replay, commands) and every subscription on the events
///   socket, by the User-Id ZAP gave its connection: refused, and the connection shut down;
/// - the connections heard from so far, at the reload that drops the key: shut down at once (a worker's
///   leaves the pool then), without waiting for the peer's next message.
///
/// A shut-down peer reconnects by itself (libzmq does) and its new handshake is refused by ZAP, logged as
/// `bus client refused`.
///
/// Used on the bus loop (the state is behind a lock only so that the socket factory can carry it there).
final class BusAdmission: Sendable {
    /// A connection a key was last heard on.
    struct Peer: Sendable {
        let key: CurvePublicKey
        let role: BusEndpoints.Role
        let connection: ZMQPeerConnection
        /// The sender's routing id on a ROUTER socket: a worker's identity in the pool.
        let identity: [UInt8]?
    }

    private struct State {
        var keys: BusKeys
        /// By descriptor: one live connection each, replaced when libzmq reuses the number.
        var peers: [Int32: Peer] = [:]
        var nextReload: ContinuousClock.Instant
        var lastFailure: String?
    }

    private let state: Mutex<State>
    private let directories: BusKeys.Directories?
    private let interval: Duration
    private let onChange: @Sendable (BusKeys) -> Void
    private let logger: Logger
    private let refusedMessages = Counter(label: "switchboard_bus_revoked_messages_total")
    private let closedConnections = Counter(label: "switchboard_bus_revoked_connections_total")
    private let reloadFailures = Counter(label: "switchboard_bus_key_reload_failures_total")

    /// Admits `keys` until `directories` (nil: never) read differently; `onChange` gets each new set.
    init(keys: BusKeys, directories: BusKeys.Directories?, reloadInterval: Duration, logger: Logger,
         onChange: @escaping @Sendable (BusKeys) -> Void) {
        state = Mutex(State(keys: keys, nextReload: .now + reloadInterval))
        self.directories = directories
        interval = reloadInterval
        self.onChange = onChange
        self.logger = logger
    }

    /// The keys admitted now.
    var keys: BusKeys { state.withLock { $0.keys } }

    /// Whether a message from `userId` (the Z85 key ZAP named its sender by) on one of `role`'s sockets is
    /// served. Served: its connection is remembered for the key. Refused: counted, logged, and its
    /// connection shut down.
    func admits(userId: String?, on role: BusEndpoints.Role, connection: ZMQPeerConnection?, identity: [UInt8]?) -> Bool {
        let key = userId.flatMap { try? CurvePublicKey(z85: $0) }
        let admitted = state.withLock { state in
            guard let key, state.keys.admits(key, on: role) else { return false }
            if let connection { state.peers[connection.descriptor] = Peer(key: key, role: role, connection: connection, identity: identity) }
            return true
        }
        if !admitted {
            refusedMessages.increment()
            let closed = connection?.shutDown() ?? false
            logger.warning("bus message from a key no longer admitted refused",
                           metadata: ["bus.peer_key": "\(userId ?? "-")", "bus.role": "\(role.rawValue)", "bus.connection_closed": "\(closed)"])
        }
        return admitted
    }

    /// The accounts the sender named by `userId` may act for (every account without CURVE).
    func scope(of userId: String?) -> CommandScope {
        guard let key = userId.flatMap({ try? CurvePublicKey(z85: $0) }) else { return .everyAccount }
        return keys.scope(of: key)
    }

    /// Makes a reload due now (SIGHUP): the next pass of the bus loop reads the directories.
    func requestReload() {
        state.withLock { $0.nextReload = .now }
    }

    /// Reads the directories again when a reload is due at `now`, and applies what they hold; a read that
    /// fails keeps the keys admitted so far (logged once per distinct failure, counted each time). Returns the
    /// peers shut down, and when the next reload is due (nil without directories).
    func reloadIfDue(now: ContinuousClock.Instant) -> (revoked: [Peer], next: ContinuousClock.Instant?) {
        guard let directories else { return ([], nil) }
        let next = state.withLock { state -> ContinuousClock.Instant? in
            guard state.nextReload <= now else { return nil }
            state.nextReload = now + interval
            return state.nextReload
        }
        guard let next else { return ([], state.withLock { $0.nextReload }) }
        let keys: BusKeys
        do {
            keys = try directories.read()
        } catch {
            reloadFailures.increment()
            let failure = "\(error)"
            if state.withLock({ state in defer { state.lastFailure = failure }; return state.lastFailure != failure }) {
                logger.error("bus keys not reloaded; the keys read before stay admitted", metadata: ["bus.error": "\(failure)"])
            }
            return ([], next)
        }
        state.withLock { $0.lastFailure = nil }
        return (apply(keys), next)
    }

    /// Admits `keys` from now on: hands them to ZAP first (`onChange`), so that no shut-down peer gets back
    /// in, then shuts down every remembered connection whose key they no longer admit on its socket, and
    /// returns those. Connections libzmq has closed meanwhile are forgotten.
    @discardableResult
    func apply(_ keys: BusKeys) -> [Peer] {
        let (changed, revoked) = state.withLock { state -> (Bool, [Peer]) in
            let changed = state.keys != keys
            state.keys = keys
            var revoked: [Peer] = []
            for (descriptor, peer) in state.peers {
                guard peer.connection.isCurrent else {
                    state.peers[descriptor] = nil
                    continue
                }
                if !keys.admits(peer.key, on: peer.role) {
                    state.peers[descriptor] = nil
                    revoked.append(peer)
                }
            }
            return (changed, revoked)
        }
        if changed {
            onChange(keys)
            logger.info("bus keys reloaded", metadata: ["bus.keys_every_socket": "\(keys.everySocket.count)",
                                                        "bus.keys_by_role": "\(keys.byRole.mapValues(\.count).map { "\($0.key.rawValue)=\($0.value)" }.sorted().joined(separator: ","))"])
        }
        for peer in revoked {
            let closed = peer.connection.shutDown()
            closedConnections.increment()
            logger.warning("bus connection of a key no longer admitted closed",
                           metadata: ["bus.peer_key": "\(peer.key.z85)", "bus.role": "\(peer.role.rawValue)", "bus.connection_closed": "\(closed)"])
        }
        return revoked
    }
}
