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
    public static let type = MessageType.replayRequest.rawValue
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
        serialized(capacity: 128)
    }

    /// Decodes a frame a replay client sent. A refusal carries the request id when the frame had a
    /// readable one, so the client can match the `error` reply to its request.
    public static func decode(_ frame: [UInt8]) throws(Refusal) -> ReplayRequest {
        do throws(BusDecodingError) {
            return try decode(frame: frame, as: .replayRequest, place: "on the replay socket (send \(Self.type))")
        } catch {
            throw Refusal(error, requestId: JSONObject.requestId(in: frame))
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
public struct ReplayEnd: Equatable, Sendable {
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
    /// Up to ``batchSize`` events, in sequence order, exactly as they were published; an event of a
    /// type this build does not know keeps its place (see ``ReceivedEvent``).
    case events(requestId: String, events: [ReceivedEvent])
    /// The last frame of every answered request.
    case end(ReplayEnd)
    /// A refused request (`bad_json`, `unsupported_version`, `bad_message`, `too_large`, `journal_unavailable`).
    case error(ErrorReply)

    /// Most events in one `replay.events` frame (fewer when they would pass ``BusSchema/maxFrameSize``).
    public static let batchSize = 100

    public var type: String {
        switch self {
        case .events: MessageType.replayEvents.rawValue
        case .end: MessageType.replayEnd.rawValue
        case .error: MessageType.error.rawValue
        }
    }

    /// A `replay.events` frame around events' JSON as journaled, copied byte for byte so that a replayed
    /// event is exactly the published one.
    public static func eventsFrame(requestId: String, journaled: [[UInt8]]) -> [UInt8] {
        var writer = JSONWriter(capacity: 128 + journaled.reduce(0) { $0 + $1.count + 1 })
        writer.openMessage(type: MessageType.replayEvents.rawValue)
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

    /// The JSON frame (the bridge writes `replay.events` with ``eventsFrame(requestId:journaled:)``).
    public func encoded() -> [UInt8] {
        switch self {
        case .events(let requestId, let events):
            return Self.eventsFrame(requestId: requestId, journaled: events.compactMap { $0.event?.jsonBytes() })
        case .end(let end):
            return end.serialized(capacity: 160)
        case .error(let reply):
            return reply.serialized(capacity: 160)
        }
    }

    /// Decodes a frame from a bridge's replay socket.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> ReplayReply {
        let json = try JSONObject.message(frame).json
        let type = try json.messageType([.replayEvents, .replayEnd, .error], unknown: "from a replay socket")
        do throws(BusDecodingError) {
            switch type {
            case .replayEvents: return .events(requestId: try json.string("request_id"), events: try json.members("events"))
            case .replayEnd: return .end(try ReplayEnd(json: json))
            case .error: return .error(try ErrorReply(json: json))
            default: preconditionFailure("messageType accepts only the types above")
            }
        } catch {
            throw error.invalid(type)
        }
    }
}

extension ReplayRequest: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        let requestId = try json.string("request_id")
        let from = try json.int("from_seq")
        guard from >= 0 else { throw BusDecodingError(code: .badMessage, message: "from_seq must be 0 or more, got \(from)") }
        let max = try json.optionalInt("max") ?? Self.defaultMax
        guard max > 0 else { throw BusDecodingError(code: .badMessage, message: "max must be positive, got \(max)") }
        self.init(requestId: requestId, fromSeq: UInt64(from), max: max)
    }

    func write(to writer: inout JSONWriter) {
        writer.openMessage(type: Self.type)
        writer.member("request_id", requestId)
        writer.member("from_seq", fromSeq)
        writer.member("max", max)
        writer.closeObject()
    }
}

extension ReplayEnd: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(requestId: try json.string("request_id"), bridgeId: try json.string("bridge_id"), firstSeq: try json.uint64("first_seq"),
                  lastSeq: try json.uint64("last_seq"), nextSeq: try json.uint64("next_seq"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openMessage(type: MessageType.replayEnd.rawValue)
        writer.member("request_id", requestId)
        writer.member("bridge_id", bridgeId)
        writer.member("first_seq", firstSeq)
        writer.member("last_seq", lastSeq)
        writer.member("next_seq", nextSeq)
        writer.closeObject()
    }
}
