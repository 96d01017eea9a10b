import BusSchema

/// A call's state as the gateway shows it: the bridge's (`routing` ... `ending`), or `ended`, which only
/// the gateway keeps (the bridge forgets an ended call).
enum LiveCallState: Equatable, Sendable, Codable {
    case live(CallSnapshot.State)
    case ended

    private static let endedName = "ended"

    init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        if name == Self.endedName {
            self = .ended
        } else if let state = CallSnapshot.State(rawValue: name) {
            self = .live(state)
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown call state \(name)"))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .live(let state): try container.encode(state.rawValue)
        case .ended: try container.encode(Self.endedName)
        }
    }
}

/// One call as the gateway shows it (REST, WebSocket): built from the bridge's events.
struct LiveCall: Codable, Equatable, Sendable {
    /// One leg of the call: `a` is the party called first (Click2Call's "from"), `b` the other.
    struct Leg: Codable, Equatable, Sendable {
        var leg: String
        var uri: String?
        var state: LegSnapshot.State
        var held: Bool = false
    }

    var callId: String
    /// The configured bridge that owns the call (hang-ups go there).
    var bridge: String
    var kind: CallSnapshot.Kind
    var state: LiveCallState
    /// The key id (`sbk_...`) or `user:NAME` that originated it: the bus `account`.
    var owner: String?
    var from: String?
    var to: String?
    var legs: [Leg]
    var createdAt: String
    var connectedAt: String?
    var endedAt: String?
    /// `call.ended`'s cause (`normal_clearing`, `busy`, `no_answer`, ...).
    var endCause: String?
    /// The bridge sequence number of the event that last changed the call.
    var seq: UInt64?
    /// The bus idempotency key of an originated call (`OWNER:KEY`): a repeat of it is the same call.
    var idempotencyKey: String?

    enum CodingKeys: String, CodingKey {
        case callId = "call_id", bridge, kind, state, owner, from, to, legs, createdAt = "created_at"
        case connectedAt = "connected_at", endedAt = "ended_at", endCause = "end_cause", seq
        case idempotencyKey = "idempotency_key"
    }

    var isLive: Bool { state != .ended }

    mutating func updateLeg(_ name: String, uri: String? = nil, _ change: (inout Leg) -> Void) {
        if let index = legs.firstIndex(where: { $0.leg == name }) {
            if let uri { legs[index].uri = uri }
            change(&legs[index])
        } else {
            var leg = Leg(leg: name, uri: uri, state: .calling)
            change(&leg)
            legs.append(leg)
            legs.sort { $0.leg < $1.leg }
        }
    }
}

/// A change to the live call table, as the bridge's events describe it. The event feed translates
/// bus events into these; tests feed them directly.
enum CallUpdate: Equatable, Sendable {
    case originated(callId: String, account: String?, a: String, b: String, idempotencyKey: String? = nil)
    case offered(callId: String, from: String?, to: String?)
    case dialing(callId: String, leg: String, uri: String)
    case ringing(callId: String, leg: String)
    case answered(callId: String, leg: String, uri: String?)
    case connected(callId: String)
    case held(callId: String, leg: String, held: Bool)
    case legFailed(callId: String, leg: String, cause: String)
    case ended(callId: String, cause: String)
    /// A bridge (re)started: the calls it had are gone.
    case bridgeStarted
}
