import Foundation

/// Messages a worker sends to a bridge's decisions socket (DEALER → ROUTER, one JSON frame each).
public enum WorkerMessage: Equatable, Sendable {
    /// The worker joins: it can take `capacity` requests at once.
    case ready(workerId: String, capacity: Int)
    /// Sent every heartbeat interval so the bridge knows the worker is alive.
    case heartbeat
    /// The answer to a `decision.request`.
    case decision(requestId: String, decision: Decision)
    /// The worker leaves on purpose; the bridge stops sending to it at once.
    case bye

    public var type: String { messageType.rawValue }

    var messageType: MessageType {
        switch self {
        case .ready: .workerReady
        case .heartbeat: .workerHeartbeat
        case .decision: .decision
        case .bye: .workerBye
        }
    }
}

/// Messages a bridge sends to a worker (ROUTER → DEALER).
public enum BridgeMessage: Equatable, Sendable {
    /// Acknowledges `worker.ready`: the worker is in the pool of `bridgeId`.
    case welcome(bridgeId: String, heartbeatMs: Int)
    /// Sent every heartbeat interval; a worker that hears nothing reconnects.
    case heartbeat
    /// Decide on this call before `deadlineMs` elapses (the bridge applies its fallback after it).
    case decisionRequest(requestId: String, callId: String, deadlineMs: Int, offer: CallOffer)
    /// The bridge refused a message; `requestId` names the request when the message had one.
    case error(ErrorReply)

    public var type: String { messageType.rawValue }

    var messageType: MessageType {
        switch self {
        case .welcome: .bridgeWelcome
        case .heartbeat: .bridgeHeartbeat
        case .decisionRequest: .decisionRequest
        case .error: .error
        }
    }
}

/// A refusal naming the problem, sent back on the socket the bad message came from.
public struct ErrorReply: Equatable, Sendable {
    /// Why; in a ``CommandReply`` also the codes ``CommandOutcome/failed(_:)`` lists.
    public var code: ErrorCode
    public var message: String
    public var requestId: String?

    public init(code: ErrorCode, message: String, requestId: String? = nil) {
        self.code = code
        self.message = message
        self.requestId = requestId
    }
}

extension ErrorReply: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(code: ErrorCode(rawValue: try json.string("code")), message: try json.string("message"),
                  requestId: try json.optionalString("request_id"))
    }

    /// The whole `error` frame.
    func write(to writer: inout JSONWriter) {
        writer.openMessage(type: MessageType.error.rawValue)
        writer.member("code", code.rawValue)
        writer.member("message", message)
        writer.member("request_id", requestId)
        writer.closeObject()
    }
}

/// Every frame `type` outside the events socket, each spelled once.
enum MessageType: String, CaseIterable {
    case workerReady = "worker.ready", workerHeartbeat = "worker.heartbeat", decision, workerBye = "worker.bye"
    case bridgeWelcome = "bridge.welcome", bridgeHeartbeat = "bridge.heartbeat", decisionRequest = "decision.request", error
    case command, commandReply = "command.reply"
    case replayRequest = "replay.request", replayEvents = "replay.events", replayEnd = "replay.end"
}

extension JSONObject {
    /// A frame's type when it is one of `accepted`; `unknown` names the socket in the refusal.
    func messageType(_ accepted: [MessageType], unknown place: String) throws(BusDecodingError) -> MessageType {
        let type = try string("type")
        guard let known = MessageType(rawValue: type), accepted.contains(known) else {
            throw BusDecodingError(code: .badMessage, message: "unknown message type \(type.debugDescription) \(place)")
        }
        return known
    }
}

extension BusDecodingError {
    /// The error of a message body, prefixed with the message's type.
    func invalid(_ type: MessageType) -> BusDecodingError {
        BusDecodingError(code: code, message: "invalid \(type.rawValue): \(message)")
    }
}

extension WorkerMessage: BusMessage {
    /// The JSON frame for this message.
    public func encoded() -> [UInt8] {
        serialized(capacity: 128)
    }

    /// Decodes a frame a worker sent, naming the problem when it is not a valid worker message.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> WorkerMessage {
        try WorkerMessage(json: JSONObject.message(frame).json)
    }

    init(json: JSONObject) throws(BusDecodingError) {
        let type = try json.messageType([.workerReady, .workerHeartbeat, .decision, .workerBye], unknown: "on the decisions socket")
        do throws(BusDecodingError) {
            switch type {
            case .workerReady:
                let capacity = try json.int("capacity")
                self = .ready(workerId: try json.string("worker_id"), capacity: capacity)
            case .decision: self = .decision(requestId: try json.string("request_id"), decision: try json.member("decision"))
            case .workerBye: self = .bye
            case .workerHeartbeat: self = .heartbeat
            default: preconditionFailure("messageType accepts only the types above")
            }
        } catch {
            throw error.invalid(type)
        }
        if case .ready(_, let capacity) = self, capacity <= 0 {
            throw BusDecodingError(code: .badMessage, message: "worker.ready capacity must be positive")
        }
    }

    func write(to writer: inout JSONWriter) {
        writer.openMessage(type: type)
        switch self {
        case .ready(let workerId, let capacity):
            writer.member("worker_id", workerId)
            writer.member("capacity", capacity)
        case .heartbeat, .bye:
            break
        case .decision(let requestId, let decision):
            writer.member("request_id", requestId)
            writer.member("decision", decision)
        }
        writer.closeObject()
    }
}

extension BridgeMessage: BusMessage {
    /// The JSON frame for this message.
    public func encoded() -> [UInt8] {
        serialized()
    }

    /// Decodes a frame a bridge sent.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> BridgeMessage {
        try BridgeMessage(json: JSONObject.message(frame).json)
    }

    init(json: JSONObject) throws(BusDecodingError) {
        let type = try json.messageType([.bridgeWelcome, .bridgeHeartbeat, .decisionRequest, .error], unknown: "from a bridge")
        do throws(BusDecodingError) {
            switch type {
            case .bridgeWelcome: self = .welcome(bridgeId: try json.string("bridge_id"), heartbeatMs: try json.int("heartbeat_ms"))
            case .decisionRequest:
                self = .decisionRequest(requestId: try json.string("request_id"), callId: try json.string("call_id"),
                                        deadlineMs: try json.int("deadline_ms"), offer: try json.member("offer"))
            case .error: self = .error(try ErrorReply(json: json))
            case .bridgeHeartbeat: self = .heartbeat
            default: preconditionFailure("messageType accepts only the types above")
            }
        } catch {
            throw error.invalid(type)
        }
    }

    func write(to writer: inout JSONWriter) {
        if case .error(let reply) = self { return reply.write(to: &writer) }
        writer.openMessage(type: type)
        switch self {
        case .welcome(let bridgeId, let heartbeatMs):
            writer.member("bridge_id", bridgeId)
            writer.member("heartbeat_ms", heartbeatMs)
        case .heartbeat, .error:
            break
        case .decisionRequest(let requestId, let callId, let deadlineMs, let offer):
            writer.member("request_id", requestId)
            writer.member("call_id", callId)
            writer.member("deadline_ms", deadlineMs)
            writer.member("offer", offer)
        }
        writer.closeObject()
    }
}
