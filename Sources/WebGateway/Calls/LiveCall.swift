/// One call as the gateway shows it (REST, WebSocket): built from the bridge's events.
struct LiveCall: Codable, Equatable, Sendable {
    /// One leg of the call: `a` is the party called first (Click2Call's "from"), `b` the other.
    struct Leg: Codable, Equatable, Sendable {
        var leg: String
        var uri: String?
        /// `calling`, `ringing`, `answered`, `ended`.
        var state: String
        var held: Bool = false
    }

    var callId: String
    /// The configured bridge that owns the call (hang-ups go there).
    var bridge: String
    /// `originate` or `inbound`.
    var kind: String
    /// `routing`, `dialing`, `ringing`, `connected`, `ending`, `ended`.
    var state: String
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

    var isLive: Bool { state != "ended" }

    mutating func updateLeg(_ name: String, uri: String? = nil, _ change: (inout Leg) -> Void) {
        if let index = legs.firstIndex(where: { $0.leg == name }) {
            if let uri { legs[index].uri = uri }
            change(&legs[index])
        } else {
            var leg = Leg(leg: name, uri: uri, state: "calling")
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
