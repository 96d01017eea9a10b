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

    public var type: String {
        switch self {
        case .ready: "worker.ready"
        case .heartbeat: "worker.heartbeat"
        case .decision: "decision"
        case .bye: "worker.bye"
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

    public var type: String {
        switch self {
        case .welcome: "bridge.welcome"
        case .heartbeat: "bridge.heartbeat"
        case .decisionRequest: "decision.request"
        case .error: "error"
        }
    }
}

/// A refusal naming the problem, sent back on the socket the bad message came from.
public struct ErrorReply: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey { case code, message, requestId = "request_id" }

    /// Stable code: `bad_json`, `unsupported_version`, `bad_message`, `unknown_request`, `bad_decision`, `too_large`, `not_ready`;
    /// in a ``CommandReply`` also the codes ``CommandOutcome/failed(_:)`` lists.
    public var code: String
    public var message: String
    public var requestId: String?

    public init(code: String, message: String, requestId: String? = nil) {
        self.code = code
        self.message = message
        self.requestId = requestId
    }
}

/// Every field any decisions-socket message may carry: one parse reads the envelope and the
/// body together, and the type then says which fields must be there.
private struct AnyMessage {
    var type: String
    var workerId: String?
    var capacity: Int?
    var requestId: String?
    var decision: Decision?
    var bridgeId: String?
    var heartbeatMs: Int?
    var callId: String?
    var deadlineMs: Int?
    var offer: CallOffer?
    var code: String?
    var message: String?

    static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> AnyMessage {
        let (envelope, type) = try JSONObject.message(frame)
        do {
            return AnyMessage(
                type: type,
                workerId: try envelope.optionalString("worker_id"),
                capacity: try envelope.optionalInt("capacity"),
                requestId: try envelope.optionalString("request_id"),
                decision: try envelope.optionalObject("decision").map { object throws(BusDecodingError) in try Decision(json: object) },
                bridgeId: try envelope.optionalString("bridge_id"),
                heartbeatMs: try envelope.optionalInt("heartbeat_ms"),
                callId: try envelope.optionalString("call_id"),
                deadlineMs: try envelope.optionalInt("deadline_ms"),
                offer: try envelope.optionalObject("offer").map { object throws(BusDecodingError) in try CallOffer(json: object) },
                code: try envelope.optionalString("code"),
                message: try envelope.optionalString("message"))
        } catch {
            throw BusDecodingError(code: "bad_message", message: "invalid \(type): \(error.message)")
        }
    }

    func require<T>(_ value: T?, _ field: String) throws(BusDecodingError) -> T {
        guard let value else { throw BusDecodingError(code: "bad_message", message: "invalid \(type): missing field \(field)") }
        return value
    }
}

extension WorkerMessage {
    /// The JSON frame for this message.
    public func encoded() -> [UInt8] {
        var writer = JSONWriter(capacity: 128)
        writer.openObject()
        writer.member("v", BusSchema.version)
        writer.member("type", type)
        switch self {
        case .ready(let workerId, let capacity):
            writer.member("worker_id", workerId)
            writer.member("capacity", capacity)
        case .heartbeat, .bye:
            break
        case .decision(let requestId, let decision):
            writer.member("request_id", requestId)
            writer.key("decision")
            decision.write(to: &writer)
        }
        writer.closeObject()
        return writer.bytes
    }

    /// Decodes a frame a worker sent, naming the problem when it is not a valid worker message.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> WorkerMessage {
        let message = try AnyMessage.decode(frame)
        switch message.type {
        case "worker.ready":
            let capacity = try message.require(message.capacity, "capacity")
            guard capacity > 0 else { throw BusDecodingError(code: "bad_message", message: "worker.ready capacity must be positive") }
            return .ready(workerId: try message.require(message.workerId, "worker_id"), capacity: capacity)
        case "worker.heartbeat": return .heartbeat
        case "worker.bye": return .bye
        case "decision":
            return .decision(requestId: try message.require(message.requestId, "request_id"),
                             decision: try message.require(message.decision, "decision"))
        default:
            throw BusDecodingError(code: "bad_message", message: "unknown message type \(message.type.debugDescription) on the decisions socket")
        }
    }
}

extension BridgeMessage {
    /// The JSON frame for this message.
    public func encoded() -> [UInt8] {
        var writer = JSONWriter()
        writer.openObject()
        writer.member("v", BusSchema.version)
        writer.member("type", type)
        switch self {
        case .welcome(let bridgeId, let heartbeatMs):
            writer.member("bridge_id", bridgeId)
            writer.member("heartbeat_ms", heartbeatMs)
        case .heartbeat:
            break
        case .decisionRequest(let requestId, let callId, let deadlineMs, let offer):
            writer.member("request_id", requestId)
            writer.member("call_id", callId)
            writer.member("deadline_ms", deadlineMs)
            writer.key("offer")
            offer.write(to: &writer)
        case .error(let reply):
            writer.member("code", reply.code)
            writer.member("message", reply.message)
            writer.member("request_id", reply.requestId)
        }
        writer.closeObject()
        return writer.bytes
    }

    /// Decodes a frame a bridge sent.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> BridgeMessage {
        let message = try AnyMessage.decode(frame)
        switch message.type {
        case "bridge.welcome":
            return .welcome(bridgeId: try message.require(message.bridgeId, "bridge_id"),
                            heartbeatMs: try message.require(message.heartbeatMs, "heartbeat_ms"))
        case "bridge.heartbeat": return .heartbeat
        case "decision.request":
            return .decisionRequest(requestId: try message.require(message.requestId, "request_id"),
                                    callId: try message.require(message.callId, "call_id"),
                                    deadlineMs: try message.require(message.deadlineMs, "deadline_ms"),
                                    offer: try message.require(message.offer, "offer"))
        case "error":
            return .error(ErrorReply(code: try message.require(message.code, "code"),
                                     message: try message.require(message.message, "message"),
                                     requestId: message.requestId))
        default:
            throw BusDecodingError(code: "bad_message", message: "unknown message type \(message.type.debugDescription) from a bridge")
        }
    }
}
