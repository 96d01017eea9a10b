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
    /// Stable code: `bad_json`, `unsupported_version`, `bad_message`, `unknown_request`, `bad_decision`, `too_large`, `not_ready`.
    public var code: String
    public var message: String
    public var requestId: String?

    public init(code: String, message: String, requestId: String? = nil) {
        self.code = code
        self.message = message
        self.requestId = requestId
    }
}

extension WorkerMessage {
    private struct Ready: Codable { var v = BusSchema.version; var type = "worker.ready"; var workerId: String; var capacity: Int }
    private struct Bare: Codable { var v = BusSchema.version; var type: String }
    private struct DecisionMessage: Codable { var v = BusSchema.version; var type = "decision"; var requestId: String; var decision: Decision }

    /// The JSON frame for this message.
    public func encoded() -> [UInt8] {
        let encoder = BusSchema.makeEncoder()
        // These types hold only strings, numbers and dictionaries of strings: encoding cannot fail.
        switch self {
        case .ready(let workerId, let capacity): return Array(try! encoder.encode(Ready(workerId: workerId, capacity: capacity)))
        case .heartbeat, .bye: return Array(try! encoder.encode(Bare(type: type)))
        case .decision(let requestId, let decision): return Array(try! encoder.encode(DecisionMessage(requestId: requestId, decision: decision)))
        }
    }

    /// Decodes a frame a worker sent, naming the problem when it is not a valid worker message.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> WorkerMessage {
        let envelope = try BusSchema.envelope(of: frame)
        switch envelope.type {
        case "worker.ready":
            let ready = try BusSchema.decode(Ready.self, from: frame, messageType: envelope.type)
            guard ready.capacity > 0 else { throw BusDecodingError(code: "bad_message", message: "worker.ready capacity must be positive") }
            return .ready(workerId: ready.workerId, capacity: ready.capacity)
        case "worker.heartbeat": return .heartbeat
        case "worker.bye": return .bye
        case "decision":
            let message = try BusSchema.decode(DecisionMessage.self, from: frame, messageType: envelope.type)
            return .decision(requestId: message.requestId, decision: message.decision)
        default:
            throw BusDecodingError(code: "bad_message", message: "unknown message type \(envelope.type.debugDescription) on the decisions socket")
        }
    }
}

extension BridgeMessage {
    private struct Welcome: Codable { var v = BusSchema.version; var type = "bridge.welcome"; var bridgeId: String; var heartbeatMs: Int }
    private struct Bare: Codable { var v = BusSchema.version; var type: String }
    private struct Request: Codable {
        var v = BusSchema.version; var type = "decision.request"
        var requestId: String; var callId: String; var deadlineMs: Int; var offer: CallOffer
    }
    private struct Failure: Codable {
        var v = BusSchema.version; var type = "error"
        var code: String; var message: String; var requestId: String?
    }

    /// The JSON frame for this message.
    public func encoded() -> [UInt8] {
        let encoder = BusSchema.makeEncoder()
        // Only strings, numbers and nested Codable structs of them: encoding cannot fail.
        switch self {
        case .welcome(let bridgeId, let heartbeatMs): return Array(try! encoder.encode(Welcome(bridgeId: bridgeId, heartbeatMs: heartbeatMs)))
        case .heartbeat: return Array(try! encoder.encode(Bare(type: type)))
        case .decisionRequest(let requestId, let callId, let deadlineMs, let offer):
            return Array(try! encoder.encode(Request(requestId: requestId, callId: callId, deadlineMs: deadlineMs, offer: offer)))
        case .error(let reply):
            return Array(try! encoder.encode(Failure(code: reply.code, message: reply.message, requestId: reply.requestId)))
        }
    }

    /// Decodes a frame a bridge sent.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> BridgeMessage {
        let envelope = try BusSchema.envelope(of: frame)
        switch envelope.type {
        case "bridge.welcome":
            let welcome = try BusSchema.decode(Welcome.self, from: frame, messageType: envelope.type)
            return .welcome(bridgeId: welcome.bridgeId, heartbeatMs: welcome.heartbeatMs)
        case "bridge.heartbeat": return .heartbeat
        case "decision.request":
            let request = try BusSchema.decode(Request.self, from: frame, messageType: envelope.type)
            return .decisionRequest(requestId: request.requestId, callId: request.callId, deadlineMs: request.deadlineMs, offer: request.offer)
        case "error":
            let failure = try BusSchema.decode(Failure.self, from: frame, messageType: envelope.type)
            return .error(ErrorReply(code: failure.code, message: failure.message, requestId: failure.requestId))
        default:
            throw BusDecodingError(code: "bad_message", message: "unknown message type \(envelope.type.debugDescription) from a bridge")
        }
    }
}
