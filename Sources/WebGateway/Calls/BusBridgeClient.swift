import BusSchema
import Logging
import WorkerSDK

/// The production ``BridgeClient``: the WorkerSDK's `CommandClient` (one DEALER on the bridge's
/// command endpoint), with the gateway's types mapped to the bus's.
///
/// ```swift
/// let client = try BusBridgeClient(bridge: configuration.bridges[0], timeout: .seconds(5), logger: logger)
/// let (callId, _) = try await client.originate(command)
/// ```
final class BusBridgeClient: BridgeClient {
    let id: String
    private let client: CommandClient
    private let timeout: Duration

    init(bridge: GatewayConfiguration.Bridge, timeout: Duration, curve: WorkerConfiguration.Curve? = nil, logger: Logger) throws {
        id = bridge.id
        client = try CommandClient(endpoint: bridge.commands, curve: curve, logger: logger)
        self.timeout = timeout
    }

    deinit {
        client.close()
    }

    func originate(_ originate: Originate) async throws -> (callId: String, existing: Bool) {
        switch try await send(.originate(originate)) {
        case .originated(let callId, let existing): return (callId, existing)
        case let other: throw BridgeError(code: .badReply, message: "unexpected reply to originate: \(other)")
        }
    }

    func hangup(callId: String) async throws {
        _ = try await send(.hangup(callId: callId, leg: nil))
    }

    func media(_ command: Command) async throws {
        switch try await send(command) {
        case .done: return
        case let other: throw BridgeError(code: .badReply, message: "unexpected reply to \(command.name.rawValue): \(other)")
        }
    }

    func liveCallIds() async throws -> Set<String> {
        switch try await send(.list) {
        case .calls(let calls): return Set(calls.map(\.callId))
        case let other: throw BridgeError(code: .badReply, message: "unexpected reply to list: \(other)")
        }
    }

    /// Sends and maps failures: a refusal keeps the bus code; no reply in time is `timeout` when the
    /// command was sent (it may have been carried out: retry an originate with the same
    /// Idempotency-Key) and `unreachable` when it never left (no connection to the bridge).
    private func send(_ command: Command) async throws -> CommandOutcome {
        let outcome: CommandOutcome
        do {
            outcome = try await client.send(command, timeout: timeout)
        } catch CommandClientError.timeout(_, let sent) {
            throw sent ? BridgeError(code: .timeout, message: "no reply within \(timeout); the command may have been carried out")
                : BridgeError(code: .unreachable, message: "no connection to the bridge; nothing was sent")
        } catch let error as CommandClientError {
            throw BridgeError(code: .unreachable, message: "\(error)")
        }
        if case .failed(let reply) = outcome { throw BridgeError(code: reply.code, message: reply.message) }
        return outcome
    }
}
