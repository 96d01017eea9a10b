import BusSchema
import Foundation
import Logging
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
/// One DEALER socket lives on a thread of its own (ZeroMQ sockets are not thread-safe); replies are
/// matched to requests by `request_id`, so any number of `send`s may wait at once. Reconnecting is
/// ZeroMQ's. A command is only queued to a live connection, so one that times out unsent is never
/// sent later.
public final class CommandClient: @unchecked Sendable {
    private struct Pending {
        let continuation: CheckedContinuation<CommandOutcome, Error>
        let frame: [UInt8]
        let deadline: ContinuousClock.Instant
    }

    /// How often a command that found no connection is tried again until its deadline.
    private static let retryInterval = Duration.milliseconds(20)

    private let endpoint: String
    private let logger: Logger
    private let context: ZMQContext
    private let wakeup: Wakeup
    /// Signalled by the bus thread once after setting up, and once after closing its socket.
    private let threadSignal = DispatchSemaphore(value: 0)
    private let idPrefix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    // Guards everything below, shared by callers and the bus thread.
    private let lock = NSLock()
    private var pending: [String: Pending] = [:]
    private var outbox: [String] = []
    private var nextId: UInt64 = 0
    /// Set by ``close()``; the bus thread then stops.
    private var closeRequested = false
    /// False once ``close()`` was called or the bus thread stopped: `send` refuses at once.
    private var accepting = true
    private var setupError: Error?

    /// Connects a DEALER to the bridge's commands endpoint.
    ///
    /// ```swift
    /// let client = try CommandClient(endpoint: "tcp://127.0.0.1:5573", logger: logger)
    /// ```
    /// - Parameter curve: CURVE client settings when the bridge requires CURVE (the same as a worker's);
    ///   the server key is ``WorkerConfiguration/Curve/serverKey(for:)`` of `endpoint`.
    /// - Throws: ``ZMQError`` when the socket cannot be made or the endpoint is malformed.
    public init(endpoint: String, curve: WorkerConfiguration.Curve? = nil, logger: Logger) throws {
        self.endpoint = endpoint
        self.logger = logger
        context = try ZMQContext()
        do {
            wakeup = try Wakeup()
        } catch {
            context.close()
            throw error
        }
        let thread = Thread { [self] in serve(curve: curve) }
        thread.name = "switchboard-command-client"
        thread.start()
        threadSignal.wait()
        if let setupError = lock.withLock({ setupError }) {
            context.close()
            throw setupError
        }
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
        let requestId = lock.withLock { () -> String in
            nextId += 1
            return "\(idPrefix)-\(nextId)"
        }
        let frame = CommandRequest(requestId: requestId, command: command).frame()
        let deadline = ContinuousClock.now + timeout
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let refusal = lock.withLock { () -> Error? in
                    if !accepting { return CommandClientError.closed }
                    // Checked under the lock, so a cancellation is seen either here or by onCancel.
                    if Task.isCancelled { return CancellationError() }
                    pending[requestId] = Pending(continuation: continuation, frame: frame, deadline: deadline)
                    outbox.append(requestId)
                    return nil
                }
                if let refusal {
                    continuation.resume(throwing: refusal)
                } else {
                    wakeup.signal()
                }
            }
        } onCancel: {
            lock.withLock { pending.removeValue(forKey: requestId) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Stops the bus thread and closes the socket; commands still waiting throw ``CommandClientError/closed``.
    /// Idempotent.
    public func close() {
        let first = lock.withLock { () -> Bool in
            defer { (closeRequested, accepting) = (true, false) }
            return !closeRequested
        }
        guard first else { return }
        wakeup.signal()
        threadSignal.wait()
        context.close()
    }

    // MARK: The bus thread

    private func serve(curve: WorkerConfiguration.Curve?) {
        let socket: ZMQSocket
        do {
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
        } catch {
            lock.withLock { setupError = error }
            threadSignal.signal()
            return
        }
        threadSignal.signal()
        logger.debug("command client connecting", metadata: ["bus.endpoint": "\(endpoint)"])

        var unsent: [String] = []
        do {
            while true {
                let (newIds, stop, nextDeadline) = lock.withLock { () -> ([String], Bool, ContinuousClock.Instant?) in
                    defer { outbox.removeAll(keepingCapacity: true) }
                    return (outbox, closeRequested, pending.values.map(\.deadline).min())
                }
                if stop { break }
                unsent += newIds
                unsent = sendWaiting(unsent, on: socket)
                expire(unsent: unsent)

                var poller = ZMQPoller()
                let wakeIndex = poller.add(fileDescriptor: wakeup.fileDescriptor)
                let socketIndex = poller.add(socket)
                var timeout = nextDeadline.map { $0 - .now }
                if !unsent.isEmpty { timeout = min(timeout ?? Self.retryInterval, Self.retryInterval) }
                let ready = try poller.poll(timeout: timeout)
                if ready.contains(wakeIndex) { wakeup.drain() }
                if ready.contains(socketIndex) {
                    while let frames = try socket.receive(dontWait: true) { deliver(frames) }
                }
            }
        } catch {
            logger.error("command client stopped", metadata: ["bus.endpoint": "\(endpoint)", "bus.error": "\(error)"])
        }
        socket.close()
        let waiting = lock.withLock { () -> [Pending] in
            accepting = false
            defer { pending.removeAll() }
            return Array(pending.values)
        }
        for request in waiting { request.continuation.resume(throwing: CommandClientError.closed) }
        threadSignal.signal()
    }

    /// Sends what can go now; returns the ids still waiting for a connection. A send that fails
    /// otherwise fails its command with the ``ZMQError``.
    private func sendWaiting(_ ids: [String], on socket: ZMQSocket) -> [String] {
        var stillWaiting: [String] = []
        for id in ids {
            // Gone: answered by a timeout or a cancellation meanwhile.
            guard let frame = lock.withLock({ pending[id]?.frame }) else { continue }
            do throws(ZMQError) {
                try socket.send([frame], dontWait: true)
            } catch {
                if error.wouldBlock {
                    stillWaiting.append(id)
                } else {
                    lock.withLock { pending.removeValue(forKey: id) }?.continuation.resume(throwing: error)
                }
            }
        }
        return stillWaiting
    }

    private func expire(unsent: [String]) {
        let now = ContinuousClock.now
        let expired = lock.withLock { () -> [(String, Pending)] in
            let due = pending.filter { $0.value.deadline <= now }
            for id in due.keys { pending[id] = nil }
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
        guard let request = lock.withLock({ pending.removeValue(forKey: reply.requestId) }) else {
            // A reply after its timeout, or to a request this client never sent.
            logger.debug("reply to no waiting command", metadata: ["bus.request_id": "\(reply.requestId)"])
            return
        }
        request.continuation.resume(returning: reply.outcome)
    }
}
