#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import BusSchema
import ZeroMQ

/// Why no bridge's decision came: the fallback is printed instead, and this goes to stderr.
struct NoDecision: Error {
    let message: String
}

/// One `decide` on a DEALER connected to every `--bridge`: sent to the first that is connected, answered or
/// given up at the deadline.
enum BridgeAsker {
    static func ask(_ request: ExecRequest, until deadline: ContinuousClock.Instant) -> Result<HandoffDecision, NoDecision> {
        let context: ZMQContext
        do {
            context = try ZMQContext(ioThreads: 1)
        } catch {
            return .failure(NoDecision(message: "\(error)"))
        }
        defer { context.close() }
        let socket: ZMQSocket
        do {
            socket = try ZMQSocket(context: context, type: .dealer)
        } catch {
            return .failure(NoDecision(message: "\(error)"))
        }
        defer { socket.close() }
        do {
            return try exchange(request, on: socket, until: deadline)
        } catch {
            return .failure(NoDecision(message: "\(error)"))
        }
    }

    private static func exchange(_ request: ExecRequest, on socket: ZMQSocket, until deadline: ContinuousClock.Instant) throws
        -> Result<HandoffDecision, NoDecision> {
        try socket.setLinger(.zero)
        try socket.setMaxMessageSize(Int64(BusSchema.maxFrameSize))
        // Queue only to a bridge that is connected: with several --bridge, a dead one gets nothing.
        try socket.setImmediate(true)
        if let keyFile = request.curveKeyFile, let bridgeKeyFile = request.bridgeKeyFile {
            try socket.setCurveClient(keyPair: CurveKeyFile.loadKeyPair(from: keyFile), serverKey: CurveKeyFile.loadPublicKey(from: bridgeKeyFile))
        }
        for bridge in request.bridges { try socket.connect(bridge) }
        let requestId = "exec-\(getpid())"
        let frame = CommandRequest(requestId: requestId, command: .decide(request.offer)).frame()
        // The TCP and ZMTP handshakes take a moment after connect: retry until one bridge takes it.
        while try !sent(frame, on: socket) {
            guard ContinuousClock.now < deadline else { return .failure(NoDecision(message: "no bridge connected in time")) }
            usleep(200)
        }
        var poller = ZMQPoller()
        _ = poller.add(socket)
        while ContinuousClock.now < deadline {
            guard try !poller.poll(timeout: deadline - .now).isEmpty else { continue }
            while let frames = try socket.receive(dontWait: true) {
                guard let payload = frames.last, let reply = try? CommandReply.decode(payload), reply.requestId == requestId else { continue }
                switch reply.outcome {
                case .decided(let decided): return .success(decided)
                case .failed(let error): return .failure(NoDecision(message: "bridge refused: \(error.code): \(error.message)"))
                default: return .failure(NoDecision(message: "unexpected reply to decide"))
                }
            }
        }
        return .failure(NoDecision(message: "no decision within \(request.timeoutMs) ms"))
    }

    /// False while no bridge is connected yet.
    private static func sent(_ frame: [UInt8], on socket: ZMQSocket) throws -> Bool {
        do {
            try socket.send([frame], dontWait: true)
            return true
        } catch where error.wouldBlock {
            return false
        }
    }
}
