import Foundation

/// A client's request on the replay socket (DEALER → the bridge's ROUTER): the journaled events from
/// `fromSeq` on, at most `max` of them.
///
/// ```json
/// {"v":1,"type":"replay.request","request_id":"r1","from_seq":42,"max":1000}
/// ```
///
/// The bridge answers with zero or more `replay.events` frames, then one `replay.end` (see ``ReplayReply``).
/// To catch up, a subscriber asks again from `next_seq` until `next_seq > last_seq`.
public struct ReplayRequest: Equatable, Sendable {
    public static let type = "replay.request"
    /// Events per request when the client names no `max`.
    public static let defaultMax = 1000
    /// The most events one request returns, whatever `max` asks: bounds the time the bridge spends on it.
    public static let maxLimit = 10_000

    public var requestId: String
    /// The first sequence number wanted; events before the journal's oldest are gone, and the reply
    /// starts from the oldest.
    public var fromSeq: UInt64
    /// How many events at most (1...``maxLimit``; larger values are capped).
    public var max: Int

    public init(requestId: String, fromSeq: UInt64, max: Int = ReplayRequest.defaultMax) {
        self.requestId = requestId
        self.fromSeq = fromSeq
        self.max = Swift.min(max, Self.maxLimit)
    }

    /// The JSON frame for this request.
    public func encoded() -> [UInt8] {
        var writer = JSONWriter(capacity: 128)
        writer.openObject()
        writer.member("v", BusSchema.version)
        writer.member("type", Self.type)
        writer.member("request_id", requestId)
        writer.key("from_seq")
        writer.int(fromSeq)
        writer.member("max", max)
        writer.closeObject()
        return writer.bytes
    }

    /// Decodes a frame a replay client sent. A refusal carries the request id when the frame had a
    /// readable one, so the client can match the `error` reply to its request.
    public static func decode(_ frame: [UInt8]) throws(Refusal) -> ReplayRequest {
        let json: JSONObject
        let type: String
        do throws(BusDecodingError) {
            (json, type) = try JSONObject.message(frame)
        } catch {
            throw Refusal(error, requestId: JSONObject.requestId(in: frame))
        }
        let requestId = try? json.optionalString("request_id")
        do throws(BusDecodingError) {
            guard type == Self.type else {
                throw BusDecodingError(code: "bad_message", message: "unknown message type \(type.debugDescription) on the replay socket (send \(Self.type))")
            }
            let id = try json.string("request_id")
            let from = try json.int("from_seq")
            guard from >= 0 else { throw BusDecodingError(code: "bad_message", message: "invalid replay.request: from_seq must be 0 or more, got \(from)") }
            let max = try json.optionalInt("max") ?? defaultMax
            guard max > 0 else { throw BusDecodingError(code: "bad_message", message: "invalid replay.request: max must be positive, got \(max)") }
            return ReplayRequest(requestId: id, fromSeq: UInt64(from), max: max)
        } catch {
            let message = error.message.hasPrefix("invalid ") || error.message.hasPrefix("unknown ") ? error.message : "invalid replay.request: \(error.message)"
            throw Refusal(BusDecodingError(code: error.code, message: message), requestId: requestId)
        }
    }

    /// Why a replay request was refused, and the request it named if any.
    public struct Refusal: Error, Equatable {
        public var error: BusDecodingError
        public var requestId: String?

        public init(_ error: BusDecodingError, requestId: String? = nil) {
            self.error = error
            self.requestId = requestId
        }

        /// The `error` message sent back (the same format as on the decisions socket).
        public var reply: ErrorReply { ErrorReply(code: error.code, message: error.message, requestId: requestId) }
    }
}

/// The end of a replay answer: where the journal stands, and where to ask next.
///
/// ```json
/// {"v":1,"type":"replay.end","request_id":"r1","bridge_id":"b1","first_seq":1,"last_seq":4200,"next_seq":1043}
/// ```
public struct ReplayEnd: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey {
        case requestId = "request_id", bridgeId = "bridge_id", firstSeq = "first_seq", lastSeq = "last_seq", nextSeq = "next_seq"
    }

    public var requestId: String
    public var bridgeId: String
    /// The oldest sequence number still journaled (0 when the journal is empty); anything older was pruned.
    public var firstSeq: UInt64
    /// The newest sequence number journaled (0 when empty).
    public var lastSeq: UInt64
    /// The sequence number to ask for next; `nextSeq > lastSeq` means the client has caught up.
    public var nextSeq: UInt64

    public init(requestId: String, bridgeId: String, firstSeq: UInt64, lastSeq: UInt64, nextSeq: UInt64) {
        self.requestId = requestId
        self.bridgeId = bridgeId
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
        self.nextSeq = nextSeq
    }

    public var caughtUp: Bool { nextSeq > lastSeq }
}

/// What the bridge sends on the replay socket (ROUTER → DEALER), one JSON frame each.
public enum ReplayReply: Equatable, Sendable {
    /// Up to ``batchSize`` events, in sequence order, exactly as they were published.
    case events(requestId: String, events: [Event])
    /// The last frame of every answered request.
    case end(ReplayEnd)
    /// A refused request (`bad_json`, `unsupported_version`, `bad_message`, `too_large`).
    case error(ErrorReply)

    /// Most events in one `replay.events` frame (fewer when they would pass ``BusSchema/maxFrameSize``).
    public static let batchSize = 100

    public var type: String {
        switch self {
        case .events: "replay.events"
        case .end: "replay.end"
        case .error: "error"
        }
    }

    /// A `replay.events` frame around events' JSON as journaled, copied byte for byte so that a replayed
    /// event is exactly the published one.
    public static func eventsFrame(requestId: String, journaled: [[UInt8]]) -> [UInt8] {
        var writer = JSONWriter(capacity: 128 + journaled.reduce(0) { $0 + $1.count + 1 })
        writer.openObject()
        writer.member("v", BusSchema.version)
        writer.member("type", "replay.events")
        writer.member("request_id", requestId)
        writer.closeObject()
        var frame = writer.bytes
        frame.removeLast()  // reopen the object to append the array of raw events
        frame.append(contentsOf: Array(#","events":["#.utf8))
        for (position, event) in journaled.enumerated() {
            if position > 0 { frame.append(UInt8(ascii: ",")) }
            frame.append(contentsOf: event)
        }
        frame.append(contentsOf: Array("]}".utf8))
        return frame
    }

    /// The JSON frame of a `replay.end` or `error` (events go through ``eventsFrame(requestId:journaled:)``).
    public func encoded() -> [UInt8] {
        switch self {
        case .events(let requestId, let events):
            return Self.eventsFrame(requestId: requestId, journaled: events.map { $0.jsonBytes() })
        case .end(let end):
            var writer = JSONWriter(capacity: 160)
            writer.openObject()
            writer.member("v", BusSchema.version)
            writer.member("type", type)
            writer.member("request_id", end.requestId)
            writer.member("bridge_id", end.bridgeId)
            writer.key("first_seq")
            writer.int(end.firstSeq)
            writer.key("last_seq")
            writer.int(end.lastSeq)
            writer.key("next_seq")
            writer.int(end.nextSeq)
            writer.closeObject()
            return writer.bytes
        case .error(let reply):
            return BridgeMessage.error(reply).encoded()
        }
    }

    private struct Events: Decodable {
        enum CodingKeys: String, CodingKey { case requestId = "request_id", events }
        var requestId: String
        var events: [Event]
    }

    /// Decodes a frame from a bridge's replay socket.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> ReplayReply {
        let envelope = try BusSchema.envelope(of: frame)
        switch envelope.type {
        case "replay.events":
            let events = try BusSchema.decode(Events.self, from: frame, messageType: envelope.type)
            return .events(requestId: events.requestId, events: events.events)
        case "replay.end":
            return .end(try BusSchema.decode(ReplayEnd.self, from: frame, messageType: envelope.type))
        case "error":
            return .error(try BusSchema.decode(ErrorReply.self, from: frame, messageType: envelope.type))
        default:
            throw BusDecodingError(code: "bad_message", message: "unknown message type \(envelope.type.debugDescription) from a replay socket")
        }
    }
}
