import Foundation

/// One party of an originate as the gateway asks for it.
struct OriginateParty: Equatable, Sendable {
    var uri: String
    var callerIdUri: String?
    var callerIdName: String?
    var ringTimeoutMs: Int?
}

/// The originate command the gateway sends (bus `originate`): call `a`, then `b`, join them.
struct OriginateCommand: Equatable, Sendable {
    var a: OriginateParty
    var b: OriginateParty
    /// `OWNER:Idempotency-Key`, so two keys never share an idempotency scope.
    var idempotencyKey: String?
    /// The key id or `user:NAME`: the bus `account`, which the bridge also limits.
    var account: String
}

/// A refused or failed command: the bus error `code` (`unknown_call`, `limit_exceeded`, ...), or
/// `timeout` / `unreachable` when no reply came.
struct BridgeError: Error, Equatable, CustomStringConvertible {
    var code: String
    var message: String

    var description: String { "\(code): \(message)" }
}

/// How the gateway talks to one bridge's command endpoint. Production: ``BusBridgeClient`` over the
/// WorkerSDK's `CommandClient`; tests may record commands to prove none was sent.
protocol BridgeClient: Sendable {
    /// The configured bridge name (`bridge-1`).
    var id: String { get }
    /// - Returns: the bridge's call id, and whether the idempotency key matched an earlier originate.
    func originate(_ command: OriginateCommand) async throws -> (callId: String, existing: Bool)
    func hangup(callId: String) async throws
    /// The ids of the bridge's live calls (`list`); used by health checks and to reconcile the table.
    func liveCallIds() async throws -> Set<String>
}

/// The configured bridges, the health of each, and which one gets the next originate.
///
/// ```swift
/// let bridges = BridgeDirectory(clients: [client])
/// let bridge = bridges.next()          // round-robin over the reachable ones
/// ```
final class BridgeDirectory: @unchecked Sendable {
    struct Health: Equatable, Sendable {
        var reachable: Bool?
        var checkedAt: String?
        var error: String?
        var liveCalls: Int?
    }

    let clients: [any BridgeClient]
    private let lock = NSLock()
    private var health: [String: Health] = [:]
    private var cursor = 0

    init(clients: [any BridgeClient]) {
        self.clients = clients
    }

    func client(id: String) -> (any BridgeClient)? {
        clients.first { $0.id == id }
    }

    /// The next bridge for an originate: round-robin, skipping bridges the last check found unreachable
    /// (all of them when none is known good).
    func next() -> (any BridgeClient)? {
        lock.withLock {
            guard !clients.isEmpty else { return nil }
            for step in 0..<clients.count {
                let client = clients[(cursor + step) % clients.count]
                if health[client.id]?.reachable != false {
                    cursor = (cursor + step + 1) % clients.count
                    return client
                }
            }
            cursor = (cursor + 1) % clients.count
            return clients[cursor]
        }
    }

    func record(_ id: String, _ value: Health) {
        lock.withLock { health[id] = value }
    }

    func status() -> [(id: String, health: Health)] {
        lock.withLock { clients.map { ($0.id, health[$0.id] ?? Health()) } }
    }
}
