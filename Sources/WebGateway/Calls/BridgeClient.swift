import BusSchema
import NIOConcurrencyHelpers

/// A refused or failed command: the bus error `code` (`unknown_call`, `limit_exceeded`, ...), or
/// one of the gateway's own codes below when no usable reply came.
struct BridgeError: Error, Equatable, CustomStringConvertible {
    var code: ErrorCode
    var message: String

    var description: String { "\(code): \(message)" }
}

extension ErrorCode {
    /// The command was sent but no reply came in time: it may have been carried out.
    static let timeout = ErrorCode(rawValue: "timeout")
    /// No connection to the bridge: nothing was sent.
    static let unreachable = ErrorCode(rawValue: "unreachable")
    /// The bridge answered with a result of another command.
    static let badReply = ErrorCode(rawValue: "bad_reply")
}

/// How the gateway talks to one bridge's command endpoint. Production: ``BusBridgeClient`` over the
/// WorkerSDK's `CommandClient`; tests may record commands to prove none was sent.
protocol BridgeClient: Sendable {
    /// The configured bridge name (`bridge-1`).
    var id: String { get }
    /// Sends `originate`; its `idempotency_key` is `OWNER:Idempotency-Key`, so two API keys never share
    /// an idempotency scope, and its `account` is the key id or `user:NAME`, which the bridge also limits.
    /// - Returns: the bridge's call id, and whether the idempotency key matched an earlier originate.
    func originate(_ originate: Originate) async throws -> (callId: String, existing: Bool)
    func hangup(callId: String) async throws
    /// Sends a media command on a live call (`play`, `stop_play`, `record`, `dtmf`), whose reply is `done`.
    func media(_ command: Command) async throws
    /// The ids of the bridge's live calls (`list`); used by health checks and to reconcile the table.
    func liveCallIds() async throws -> Set<String>
}

/// The configured bridges, the health of each, and which one gets the next originate.
///
/// ```swift
/// let bridges = BridgeDirectory(clients: [client])
/// let bridge = bridges.next()          // round-robin over the reachable ones
/// ```
final class BridgeDirectory: Sendable {
    struct Health: Equatable, Sendable {
        var reachable: Bool?
        var checkedAt: String?
        var error: String?
        var liveCalls: Int?
    }

    private struct State {
        var health: [String: Health] = [:]
        var cursor = 0
    }

    let clients: [any BridgeClient]
    private let state = NIOLockedValueBox(State())

    init(clients: [any BridgeClient]) {
        self.clients = clients
    }

    func client(id: String) -> (any BridgeClient)? {
        clients.first { $0.id == id }
    }

    /// The next bridge for an originate: round-robin, skipping bridges the last check found unreachable
    /// (all of them when none is known good).
    func next() -> (any BridgeClient)? {
        state.withLockedValue { state in
            guard !clients.isEmpty else { return nil }
            for step in 0..<clients.count {
                let client = clients[(state.cursor + step) % clients.count]
                if state.health[client.id]?.reachable != false {
                    state.cursor = (state.cursor + step + 1) % clients.count
                    return client
                }
            }
            state.cursor = (state.cursor + 1) % clients.count
            return clients[state.cursor]
        }
    }

    func record(_ id: String, _ value: Health) {
        state.withLockedValue { $0.health[id] = value }
    }

    func status() -> [(id: String, health: Health)] {
        state.withLockedValue { state in clients.map { ($0.id, state.health[$0.id] ?? Health()) } }
    }
}
