import BusSchema
import Foundation
import Logging
import Synchronization
import ZeroMQ

/// Why ``CommandClient/send(_:timeout:)`` got no outcome.
public enum CommandClientError: Error, Equatable, CustomStringConvertible {
    /// No reply within the timeout. With `sent` false the command never left this process (no
    /// connection to the bridge), so the bridge did not carry it out; with `sent` true it may have.
    case timeout(requestId: String, sent: Bool)
    /// The client was closed before the reply came, or before the command was sent.
    case closed

    public var description: String {
        switch self {
        case .timeout(let requestId, let sent):
            "no reply to command \(requestId) in time (\(sent ? "sent; it may have been carried out" : "never sent: no connection to the bridge"))"
        case .closed:
            "the command client is closed"
        }
    }
}

/// Sends commands to a bridge's commands socket (`tcp://127.0.0.1:5573` by default) and waits for
/// their replies: click-to-call, hangup, transfer, hold, and the list of live calls.
///
/// ```swift
/// let client = try CommandClient(endpoint: "tcp://127.0.0.1:5573", logger: logger)
/// defer { client.close() }
/// let outcome = try await client.send(.originate(Originate(a: Party(uri: "sip:alice@switchboard.local"),
///                                                          b: Party(uri: "sip:bob@switchboard.local"))))
/// if case .originated(let callId, _) = outcome { print("calling", callId) }
/// ```
///
/// A refusal by the bridge is an outcome, ``CommandOutcome/failed(_:)``; only a missing reply throws.
/// One DEALER socket lives on a ``ZMQServiceLoop`` of its own (ZeroMQ sockets are not thread-safe); replies
/// are matched to requests by `request_id`, so any number of `send`s may wait at once. Reconnecting is
/// ZeroMQ's. A command is only queued to a live connection, so one that times out unsent is never
/// sent later.
public final class CommandClient: Sendable {
    fileprivate struct Pending {
        let continuation: CheckedContinuation<CommandOutcome, any Error>
        let frame: [UInt8]
        let deadline: ContinuousClock.Instant
    }

    /// What callers and the loop share.
    fileprivate struct State {
        var pending: [String: Pending] = [:]
        var nextId: UInt64 = 0
        /// False once ``close()`` was called or the loop stopped: `send` refuses at once.
        var accepting = true
        /// Set by the first ``close()``, which stops the loop and closes the context.
        var closeRequested = false
    }

    /// The shared ``State``, one instance for the client and its connection.
    fileprivate final class Shared: Sendable {
        let state = Mutex(State())
    }

    private let context: ZMQContext
    private let loop: ZMQServiceLoop
    private let connection: ZMQLoopBound<CommandConnection>
    private let idPrefix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    private let shared = Shared()

    /// Connects a DEALER to the bridge's commands endpoint.
    ///
    /// ```swift
    /// let client = try CommandClient(endpoint: "tcp://127.0.0.1:5573", logger: logger)
    /// ```
    /// - Parameter curve: CURVE client settings when the bridge requires CURVE (the same as a worker's);
    ///   the server key is ``WorkerConfiguration/Curve/serverKey(for:)`` of `endpoint`.
    /// - Throws: ``ZMQError`` when the socket cannot be made or the endpoint is malformed.
    public init(endpoint: String, curve: WorkerConfiguration.Curve? = nil, logger: Logger) throws {
        let context = try ZMQContext()
        let loop: ZMQServiceLoop
        do {
            loop = try ZMQServiceLoop(name: "switchboard-command-client")
        } catch {
            context.close()
            throw error
        }
        let shared = shared
        do {
            connection = try loop.submit {
                ZMQLoopBound(try CommandConnection(endpoint: endpoint, curve: curve, context: context, loop: loop,
                                                   shared: shared, logger: logger), loop: loop)
            }
        } catch {
            try? loop.stop()
            context.close()
            throw error
        }
        self.context = context
        self.loop = loop
    }

    /// Sends one command and waits for its reply; the request id is generated.
    ///
    /// ```swift
    /// switch try await client.send(.hangup(callId: callId), timeout: .seconds(2)) {
    /// case .failed(let error): print("refused:", error.code, error.message)
    /// default: print("hung up")
    /// }
    /// ```
    /// - Throws: ``CommandClientError/timeout(requestId:sent:)`` when no reply came within `timeout`,
    ///   ``CommandClientError/closed`` after ``close()``, `CancellationError` when the task is cancelled.
    public func send(_ command: Command, timeout: Duration = .seconds(5)) async throws -> CommandOutcome {
        let requestId = shared.state.withLock { state -> String in
            state.nextId += 1
            return "\(idPrefix)-\(state.nextId)"
        }
        let frame = CommandRequest(requestId: requestId, command: command).frame()
        let deadline = ContinuousClock.now + timeout
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let refusal = shared.state.withLock { state -> (any Error)? in
                    if !state.accepting { return CommandClientError.closed }
                    // Checked under the lock, so a cancellation is seen either here or by onCancel.
                    if Task.isCancelled { return CancellationError() }
                    state.pending[requestId] = Pending(continuation: continuation, frame: frame, deadline: deadline)
                    return nil
                }
                if let refusal {
                    continuation.resume(throwing: refusal)
                } else {
                    let connection = connection
                    loop.execute { connection.value.send(requestId) }
                }
            }
        } onCancel: {
            shared.state.withLock { $0.pending.removeValue(forKey: requestId) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Stops the loop and closes the socket; commands still waiting throw ``CommandClientError/closed``.
    /// Idempotent.
    public func close() {
        let first = shared.state.withLock { state -> Bool in
            defer { (state.closeRequested, state.accepting) = (true, false) }
            return !state.closeRequested
        }
        guard first else { return }
        // A failure of the loop was logged when it happened; the socket is closed either way.
        try? loop.stop()
        context.close()
    }
}

/// The client's DEALER on its loop: sends what callers queue, retries what found no connection, and
/// matches replies to the waiting callers.
private final class CommandConnection {
    /// How often a command that found no connection is tried again until its deadline.
    private static let retryInterval = Duration.milliseconds(20)

    private let endpoint: String
    private let socket: ZMQSocket
    private let shared: CommandClient.Shared
    private let logger: Logger
    /// Commands that found no connection yet.
    private var unsent: [String] = []

    init(endpoint: String, curve: WorkerConfiguration.Curve?, context: ZMQContext, loop: ZMQServiceLoop,
         shared: CommandClient.Shared, logger: Logger) throws {
        self.endpoint = endpoint
        self.shared = shared
        self.logger = logger
        socket = try ZMQSocket(context: context, type: .dealer)
        do {
            try socket.setMaxMessageSize(Int64(BusSchema.maxFrameSize))
            // Queue only to a live connection: a command that cannot go now fails over to our own
            // retry below, and one that times out is then never delivered late.
            try socket.setImmediate(true)
            if let curve { try socket.setCurveClient(keyPair: curve.keyPair, serverKey: curve.serverKey(for: endpoint)) }
            try socket.connect(endpoint)
        } catch {
            socket.close()
            throw error
        }
        logger.debug("command client connecting", metadata: ["bus.endpoint": "\(endpoint)"])
        loop.watch(socket) { [unowned self] in
            while let frames = try socket.receive(dontWait: true) { deliver(frames) }
        }
        loop.afterEachPass { [self] now in
            unsent = sendWaiting(unsent)
            expire()
            let nextDeadline = shared.state.withLock { $0.pending.values.map(\.deadline).min() }
            return unsent.isEmpty ? nextDeadline : min(nextDeadline ?? .now + Self.retryInterval, .now + Self.retryInterval)
        }
        loop.onStop { [self] failure in
            if let failure { logger.error("command client stopped", metadata: ["bus.endpoint": "\(endpoint)", "bus.error": "\(failure)"]) }
            socket.close()
            let waiting = shared.state.withLock { state -> [CommandClient.Pending] in
                state.accepting = false
                defer { state.pending.removeAll() }
                return Array(state.pending.values)
            }
            for request in waiting { request.continuation.resume(throwing: CommandClientError.closed) }
        }
    }

    /// A caller queued this command; it goes out at the end of the pass.
    func send(_ id: String) {
        unsent.append(id)
    }

    /// Sends what can go now; returns the ids still waiting for a connection. A send that fails
    /// otherwise fails its command with the ``ZMQError``.
    private func sendWaiting(_ ids: [String]) -> [String] {
        var stillWaiting: [String] = []
        for id in ids {
            // Gone: answered by a timeout or a cancellation meanwhile.
            guard let frame = shared.state.withLock({ $0.pending[id]?.frame }) else { continue }
            do throws(ZMQError) {
                try socket.send([frame], dontWait: true)
            } catch {
                if error.wouldBlock {
                    stillWaiting.append(id)
                } else {
                    shared.state.withLock { $0.pending.removeValue(forKey: id) }?.continuation.resume(throwing: error)
                }
            }
        }
        return stillWaiting
    }

    private func expire() {
        let now = ContinuousClock.now
        let expired = shared.state.withLock { state -> [(String, CommandClient.Pending)] in
            let due = state.pending.filter { $0.value.deadline <= now }
            for id in due.keys { state.pending[id] = nil }
            return Array(due)
        }
        for (id, request) in expired {
            logger.notice("command timed out", metadata: ["bus.endpoint": "\(endpoint)", "bus.request_id": "\(id)"])
            request.continuation.resume(throwing: CommandClientError.timeout(requestId: id, sent: !unsent.contains(id)))
        }
    }

    private func deliver(_ frames: [[UInt8]]) {
        guard let frame = frames.last else { return }
        let reply: CommandReply
        do {
            reply = try CommandReply.decode(frame)
        } catch {
            logger.warning("refused reply from bridge", metadata: ["bus.endpoint": "\(endpoint)", "bus.error": "\(error)"])
            return
        }
        guard let request = shared.state.withLock({ $0.pending.removeValue(forKey: reply.requestId) }) else {
            // A reply after its timeout, or to a request this client never sent.
            logger.debug("reply to no waiting command", metadata: ["bus.request_id": "\(reply.requestId)"])
            return
        }
        request.continuation.resume(returning: reply.outcome)
    }
}
