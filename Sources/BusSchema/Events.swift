import Foundation

/// A party of a call as the bridge saw it in SIP: the full URI plus its user and host, for routing.
public struct Address: Equatable, Sendable {
    /// The URI as written, e.g. `sip:+12025550100@example.com;user=phone`.
    public var uri: String
    /// The user part (the number for phone calls), if the URI has one.
    public var user: String?
    /// The host part, if the URI has one.
    public var host: String?
    /// The display name, when the header carried one.
    public var displayName: String?

    public init(uri: String, user: String? = nil, host: String? = nil, displayName: String? = nil) {
        self.uri = uri
        self.user = user
        self.host = host
        self.displayName = displayName
    }
}

/// Where a request came from. `address`/`port` are what Kamailio reported (the phone), when it did;
/// `peer` is the host that sent the packet to the bridge (normally Kamailio itself).
public struct Source: Equatable, Sendable {
    public var address: String
    public var port: Int
    public var transport: String
    public var peer: String

    public init(address: String, port: Int, transport: String, peer: String) {
        self.address = address
        self.port = port
        self.transport = transport
        self.peer = peer
    }
}

/// A short summary of an SDP offer: enough to route on (audio/video, codecs) without parsing SDP.
public struct SDPSummary: Equatable, Sendable {
    public struct Media: Equatable, Sendable {
        /// `audio`, `video`, ...
        public var kind: String
        public var port: Int
        /// `RTP/AVP`, `RTP/SAVP`, ...
        public var proto: String
        /// Payload types or format names as listed on the m= line.
        public var formats: [String]

        public init(kind: String, port: Int, proto: String, formats: [String]) {
            self.kind = kind
            self.port = port
            self.proto = proto
            self.formats = formats
        }
    }

    /// The session-level `c=` address, when present.
    public var connection: String?
    public var media: [Media]

    public init(connection: String?, media: [Media]) {
        self.connection = connection
        self.media = media
    }
}

/// A new call that needs a decision: published as `call.offered` and sent to a worker with the request.
public struct CallOffer: Equatable, Sendable {
    /// The SIP Call-ID of leg A.
    public var sipCallId: String
    public var requestUri: Address
    public var from: Address
    public var to: Address
    public var source: Source
    /// The user Kamailio authenticated (`X-Switchboard-Auth-User`), nil for trusted or anonymous sources.
    public var authUser: String?
    /// Other headers Kamailio added for the business logic (every `X-` header), by name.
    public var headers: [String: String]
    /// The SDP offer's summary, when the INVITE had one.
    public var sdp: SDPSummary?
    /// Set when a phone's REFER asks for this leg: the request URI is the Refer-To target, `from` the party
    /// who will be joined to it. A worker routes or rejects it as any call; one that ignores it routes it.
    public var transfer: TransferOffer?
    /// Set when the bridge asks for a bridged call's next step: the route a `bridge` decision with
    /// `"on_failure":"ask"` chose has failed, and the caller still waits. A worker that ignores it decides the
    /// call afresh.
    public var failure: RouteFailure?

    public init(sipCallId: String, requestUri: Address, from: Address, to: Address, source: Source,
                authUser: String?, headers: [String: String], sdp: SDPSummary?, transfer: TransferOffer? = nil,
                failure: RouteFailure? = nil) {
        self.sipCallId = sipCallId
        self.requestUri = requestUri
        self.from = from
        self.to = to
        self.source = source
        self.authUser = authUser
        self.headers = headers
        self.sdp = sdp
        self.transfer = transfer
        self.failure = failure
    }
}

/// The call a phone's REFER transfers (RFC 3515), in a `decision.request` for the transfer's new leg.
///
/// ```json
/// {"call_id":"bridge-1-7","referrer":"b","referred_by":"<sip:bob@switchboard.local>"}
/// ```
public struct TransferOffer: Equatable, Sendable {
    /// The bridge's id of the call being transferred.
    public var callId: String
    /// The leg whose phone sent the REFER and leaves the call.
    public var referrer: Leg
    /// The REFER's Referred-By header, when it had one.
    public var referredBy: String?

    public init(callId: String, referrer: Leg, referredBy: String? = nil) {
        self.callId = callId
        self.referrer = referrer
        self.referredBy = referredBy
    }
}

/// One redirect target: a URI and its preference (q-value, 0.0–1.0, higher first).
///
/// Also `Codable`: the accounting worker keeps a CDR's route as this JSON in an SQLite column.
public struct Target: Codable, Equatable, Sendable {
    public var uri: String
    public var q: Double?

    public init(uri: String, q: Double? = nil) {
        self.uri = uri
        self.q = q
    }
}

/// What happened to an offer, as published in `call.routed`: redirected (302) or bridged to targets.
///
/// ```json
/// {"targets":[{"uri":"sip:1202@gw","q":1}],"worker_id":"router-1","fallback":false,"decision_ms":0.8}
/// {"action":"bridge","targets":[{"uri":"sip:bob@switchboard.local"}],"worker_id":"pbx","fallback":false,"decision_ms":1.2}
/// ```
public struct Routed: Equatable, Sendable {
    /// What the bridge did with the targets. `action` is left out of the JSON for a redirect, as
    /// before bridging existed, so a reader that does not know it still reads redirects right.
    public enum Action: String, Equatable, Sendable, CaseIterable {
        case redirect, bridge
        /// The bridge answered the caller itself (an `answer` decision); no targets.
        case answer
    }

    public var action: Action
    /// The redirect's Contacts, or the bridge's targets (without `q`).
    public var targets: [Target]
    /// The worker that decided; nil when the fallback decided.
    public var workerId: String?
    /// True when no worker answered in time and the configured fallback was applied.
    public var fallback: Bool
    /// Why the fallback decided, nil for a worker's decision.
    public var cause: DecisionCause?
    /// Time from offer to decision, milliseconds.
    public var decisionMs: Double
    /// The failure step this route answers (`offer.failure.step`); nil for the call's first decision.
    public var step: Int?

    public init(action: Action = .redirect, targets: [Target], workerId: String?, fallback: Bool, cause: DecisionCause? = nil,
                decisionMs: Double, step: Int? = nil) {
        self.action = action
        self.targets = targets
        self.workerId = workerId
        self.fallback = fallback
        self.cause = cause
        self.decisionMs = decisionMs
        self.step = step
    }
}

/// A call the bridge refused, as published in `call.rejected`.
public struct Rejected: Equatable, Sendable {
    public var status: Int
    public var reason: String
    public var workerId: String?
    public var fallback: Bool
    /// Why the bridge answered rather than a worker; nil for a worker's decision.
    public var cause: DecisionCause?
    public var decisionMs: Double

    public init(status: Int, reason: String, workerId: String?, fallback: Bool, cause: DecisionCause?, decisionMs: Double) {
        self.status = status
        self.reason = reason
        self.workerId = workerId
        self.fallback = fallback
        self.cause = cause
        self.decisionMs = decisionMs
    }
}

/// The bridge itself, as announced in `bridge.started` and `bridge.stopping`: what an operator needs to
/// know which bridge this is, which build it runs and where it listens.
public struct BridgeInfo: Equatable, Sendable {
    /// The bridge's software version.
    public var version: String
    /// The SIP address, `host:port` (UDP and TCP).
    public var sipListen: String
    /// The bus endpoints as bound (ports resolved).
    public var events: String
    public var decisions: String
    public var replay: String
    /// The journal file's path.
    public var journal: String
    public var decisionTimeoutMs: Int
    /// The configured fallback, as text (`reject 503 Retry-After 30`).
    public var fallback: String

    public init(version: String, sipListen: String, events: String, decisions: String, replay: String, journal: String,
                decisionTimeoutMs: Int, fallback: String) {
        self.version = version
        self.sipListen = sipListen
        self.events = events
        self.decisions = decisions
        self.replay = replay
        self.journal = journal
        self.decisionTimeoutMs = decisionTimeoutMs
        self.fallback = fallback
    }
}

/// A worker of the decisions pool, as named in `worker.joined`, `worker.left` and `worker.lost`.
public struct WorkerInfo: Equatable, Sendable {
    public var workerId: String

    public init(workerId: String) {
        self.workerId = workerId
    }
}

/// Why the bridge answered an offer itself rather than with a worker's decision, as `cause` in
/// `call.routed` and `call.rejected`.
///
/// ```swift
/// Rejected(status: 503, reason: "Service Unavailable", workerId: nil, fallback: true, cause: .noWorker, decisionMs: 0.1)
/// ```
public enum DecisionCause: String, Equatable, Sendable, CaseIterable {
    /// No worker was connected (fallback).
    case noWorker = "no_worker"
    /// Every worker was at capacity (fallback).
    case overload
    /// No decision came before the deadline (fallback).
    case timeout
    /// The worker's decision could not be carried out (fallback).
    case invalidDecision = "invalid_decision"
    /// The bridge was stopping (fallback).
    case shutdown
    /// The caller sent CANCEL before any decision (not a fallback).
    case callerCancelled = "caller_cancelled"
    /// A bridge decision the bridge could not take on: its call limit, or a ring timeout over its maximum.
    case limit
    /// The destination policy refused every target of a worker's decision (the caller got 403).
    case policyDenied = "policy_denied"
}

/// The type of an event, which is also its topic on the events socket.
///
/// ```swift
/// SubscriberConfiguration(events: endpoint, replay: replay, topics: [EventType.callEnded.rawValue])
/// if event.body.eventType == .callEnded { ... }
/// ```
public enum EventType: String, Equatable, Sendable, CaseIterable {
    case callOffered = "call.offered"
    case callRouted = "call.routed"
    case callRejected = "call.rejected"
    case bridgeStarted = "bridge.started"
    case bridgeStopping = "bridge.stopping"
    case workerJoined = "worker.joined"
    case workerLeft = "worker.left"
    case workerLost = "worker.lost"
    case callOriginated = "call.originated"
    case callDialing = "call.dialing"
    case callRinging = "call.ringing"
    case callAnswered = "call.answered"
    case callConnected = "call.connected"
    case callLegFailed = "call.leg_failed"
    case callHeld = "call.held"
    case callResumed = "call.resumed"
    case callTransferred = "call.transferred"
    case callEnded = "call.ended"
    case callDTMF = "call.dtmf"
    case callMediaPlayed = "call.media.played"
    case callMediaRecorded = "call.media.recorded"
    case registrationCreated = "registration.created"
    case registrationRefreshed = "registration.refreshed"
    case registrationRemoved = "registration.removed"
    case registrationExpired = "registration.expired"

    /// The member that holds the event's payload.
    var payloadKey: String {
        switch self {
        case .callOffered: "offer"
        case .callRouted: "routed"
        case .callRejected: "rejected"
        case .bridgeStarted, .bridgeStopping: "bridge"
        case .workerJoined, .workerLeft, .workerLost: "worker"
        case .callOriginated: "originate"
        case .callDialing: "dialing"
        case .callRinging: "ringing"
        case .callAnswered: "answered"
        case .callConnected: "connected"
        case .callLegFailed: "leg_failed"
        case .callHeld, .callResumed: "hold"
        case .callTransferred: "transferred"
        case .callEnded: "ended"
        case .callDTMF: "dtmf"
        case .callMediaPlayed: "played"
        case .callMediaRecorded: "recorded"
        case .registrationCreated, .registrationRefreshed, .registrationRemoved, .registrationExpired: "registration"
        }
    }
}

/// The payload of an event, one case per topic.
public enum EventBody: Equatable, Sendable {
    case callOffered(CallOffer)
    case callRouted(Routed)
    case callRejected(Rejected)
    /// The bridge is up: the first event of each run.
    case bridgeStarted(BridgeInfo)
    /// The bridge is shutting down; the `call.rejected` of calls it answers with the fallback follow.
    case bridgeStopping(BridgeInfo)
    case workerJoined(WorkerInfo)
    /// The worker said `worker.bye`.
    case workerLeft(WorkerInfo)
    /// The worker stopped heartbeating and was dropped.
    case workerLost(WorkerInfo)
    /// An `originate` command was accepted: the bridge starts dialing party A.
    case callOriginated(Originate)
    case callDialing(Dialing)
    case callRinging(Ringing)
    case callAnswered(Answered)
    case callConnected(Connected)
    case callLegFailed(LegFailed)
    case callHeld(HoldChange)
    case callResumed(HoldChange)
    case callTransferred(Transferred)
    /// The call's last event.
    case callEnded(Ended)
    /// A party of an anchored call pressed a key.
    case callDTMF(DTMFPressed)
    /// A `play` on an anchored call is over.
    case callMediaPlayed(MediaPlayed)
    /// A recording of an anchored call is complete.
    case callMediaRecorded(MediaRecorded)
    /// Kamailio's registrar bound a new contact (no `call_id`, as for every `registration.*` event).
    case registrationCreated(Registration)
    case registrationRefreshed(Registration)
    case registrationRemoved(Registration)
    case registrationExpired(Registration)

    public var eventType: EventType {
        switch self {
        case .callOffered: .callOffered
        case .callRouted: .callRouted
        case .callRejected: .callRejected
        case .bridgeStarted: .bridgeStarted
        case .bridgeStopping: .bridgeStopping
        case .workerJoined: .workerJoined
        case .workerLeft: .workerLeft
        case .workerLost: .workerLost
        case .callOriginated: .callOriginated
        case .callDialing: .callDialing
        case .callRinging: .callRinging
        case .callAnswered: .callAnswered
        case .callConnected: .callConnected
        case .callLegFailed: .callLegFailed
        case .callHeld: .callHeld
        case .callResumed: .callResumed
        case .callTransferred: .callTransferred
        case .callEnded: .callEnded
        case .callDTMF: .callDTMF
        case .callMediaPlayed: .callMediaPlayed
        case .callMediaRecorded: .callMediaRecorded
        case .registrationCreated: .registrationCreated
        case .registrationRefreshed: .registrationRefreshed
        case .registrationRemoved: .registrationRemoved
        case .registrationExpired: .registrationExpired
        }
    }

    /// The event type's wire name, which is also its topic on the events socket.
    public var type: String { eventType.rawValue }

    /// Reads the payload an event of `type` carries in `json`.
    init(_ type: EventType, json: JSONObject) throws(BusDecodingError) {
        let key = type.payloadKey
        switch type {
        case .callOffered: self = .callOffered(try json.member(key))
        case .callRouted: self = .callRouted(try json.member(key))
        case .callRejected: self = .callRejected(try json.member(key))
        case .bridgeStarted: self = .bridgeStarted(try json.member(key))
        case .bridgeStopping: self = .bridgeStopping(try json.member(key))
        case .workerJoined: self = .workerJoined(try json.member(key))
        case .workerLeft: self = .workerLeft(try json.member(key))
        case .workerLost: self = .workerLost(try json.member(key))
        case .callOriginated: self = .callOriginated(try json.member(key))
        case .callDialing: self = .callDialing(try json.member(key))
        case .callRinging: self = .callRinging(try json.member(key))
        case .callAnswered: self = .callAnswered(try json.member(key))
        case .callConnected: self = .callConnected(try json.member(key))
        case .callLegFailed: self = .callLegFailed(try json.member(key))
        case .callHeld: self = .callHeld(try json.member(key))
        case .callResumed: self = .callResumed(try json.member(key))
        case .callTransferred: self = .callTransferred(try json.member(key))
        case .callEnded: self = .callEnded(try json.member(key))
        case .callDTMF: self = .callDTMF(try json.member(key))
        case .callMediaPlayed: self = .callMediaPlayed(try json.member(key))
        case .callMediaRecorded: self = .callMediaRecorded(try json.member(key))
        case .registrationCreated: self = .registrationCreated(try json.member(key))
        case .registrationRefreshed: self = .registrationRefreshed(try json.member(key))
        case .registrationRemoved: self = .registrationRemoved(try json.member(key))
        case .registrationExpired: self = .registrationExpired(try json.member(key))
        }
    }

    /// Writes the payload as the member its type names.
    func write(to writer: inout JSONWriter) {
        let key = eventType.payloadKey
        switch self {
        case .callOffered(let offer): writer.member(key, offer)
        case .callRouted(let routed): writer.member(key, routed)
        case .callRejected(let rejected): writer.member(key, rejected)
        case .bridgeStarted(let info), .bridgeStopping(let info): writer.member(key, info)
        case .workerJoined(let info), .workerLeft(let info), .workerLost(let info): writer.member(key, info)
        case .callOriginated(let originate): writer.member(key, originate)
        case .callDialing(let dialing): writer.member(key, dialing)
        case .callRinging(let ringing): writer.member(key, ringing)
        case .callAnswered(let answered): writer.member(key, answered)
        case .callConnected(let connected): writer.member(key, connected)
        case .callLegFailed(let failed): writer.member(key, failed)
        case .callHeld(let change), .callResumed(let change): writer.member(key, change)
        case .callTransferred(let transferred): writer.member(key, transferred)
        case .callEnded(let ended): writer.member(key, ended)
        case .callDTMF(let pressed): writer.member(key, pressed)
        case .callMediaPlayed(let played): writer.member(key, played)
        case .callMediaRecorded(let recorded): writer.member(key, recorded)
        case .registrationCreated(let registration), .registrationRefreshed(let registration),
             .registrationRemoved(let registration), .registrationExpired(let registration):
            writer.member(key, registration)
        }
    }
}

/// One event on the bus. Topic = `type`; subscribers filter by prefix (`call.`).
///
/// ```json
/// {"v":1,"type":"call.routed","bridge_id":"b1","seq":42,"ts":"2026-11-26T20:00:00.123Z",
///  "call_id":"b1-42","routed":{"targets":[{"uri":"sip:1202@gw","q":1}],"fallback":false,"decision_ms":0.8}}
/// ```
public struct Event: Equatable, Sendable {
    public var bridgeId: String
    /// Per-bridge sequence number, strictly increasing.
    public var seq: UInt64
    public var timestamp: Date
    /// The bridge's call id (not the SIP Call-ID); nil for the bridge's and workers' events, which
    /// belong to no call (`call_id` is then left out of the JSON).
    public var callId: String?
    public var body: EventBody

    public init(bridgeId: String, seq: UInt64, timestamp: Date, callId: String?, body: EventBody) {
        self.bridgeId = bridgeId
        self.seq = seq
        self.timestamp = timestamp
        self.callId = callId
        self.body = body
    }

    public var type: String { body.type }

    /// The event's JSON frame (the bridge publishes one per call step).
    public func jsonBytes() -> [UInt8] {
        serialized()
    }

    /// A timestamp as `ts` writes it (ISO 8601 UTC, milliseconds); such strings sort in time order.
    public static func wireTimestamp(_ date: Date) -> String {
        BusTimestamp.format(date)
    }

    /// Decodes an event from its JSON frame; a type this build does not know is refused (`bad_message`).
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> Event {
        let (json, type) = try JSONObject.message(frame)
        guard let eventType = EventType(rawValue: type) else { throw Self.unknownType(type) }
        do {
            return try Event(json: json, type: eventType)
        } catch {
            throw BusDecodingError(code: error.code, message: "invalid \(type): \(error.message)")
        }
    }

    static func unknownType(_ type: String) -> BusDecodingError {
        BusDecodingError(code: .badMessage, message: "unknown event type \(type.debugDescription)")
    }

    init(json: JSONObject, type: EventType) throws(BusDecodingError) {
        self.init(bridgeId: try json.string("bridge_id"), seq: try json.uint64("seq"), timestamp: try json.timestamp("ts"),
                  callId: try json.optionalString("call_id"), body: try EventBody(type, json: json))
    }
}

extension Event: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        let type = try json.string("type")
        guard let eventType = EventType(rawValue: type) else { throw Self.unknownType(type) }
        try self.init(json: json, type: eventType)
    }

    func write(to writer: inout JSONWriter) {
        writer.openMessage(type: type)
        writer.member("bridge_id", bridgeId)
        writer.member("seq", seq)
        writer.member("ts", BusTimestamp.format(timestamp))
        writer.member("call_id", callId)
        body.write(to: &writer)
        writer.closeObject()
    }
}

/// An event as a subscriber reads it off the bus: the fields every event has, and the event itself
/// when this build knows its type and version. An event of a newer bridge still consumes its
/// sequence number, so it never looks like a gap, though no handler can see it.
///
/// ```swift
/// let received = try ReceivedEvent.decode(frame)
/// if let event = received.event { handle(event) } else { skipped(received.seq, received.type) }
/// ```
public struct ReceivedEvent: Equatable, Sendable {
    public var bridgeId: String
    public var seq: UInt64
    public var type: String
    /// Nil when the type or schema version is unknown to this build, or the payload does not read.
    public var event: Event?

    public init(bridgeId: String, seq: UInt64, type: String, event: Event?) {
        self.bridgeId = bridgeId
        self.seq = seq
        self.type = type
        self.event = event
    }

    /// Reads one published event frame; refused only when `type`, `bridge_id` or `seq` do not read.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> ReceivedEvent {
        try ReceivedEvent(json: JSONObject.message(frame, anyVersion: true).json)
    }
}

extension ReceivedEvent: BusReadable {
    init(json: JSONObject) throws(BusDecodingError) {
        let type = try json.string("type")
        let known = (try? json.optionalInt("v")) == BusSchema.version ? EventType(rawValue: type) : nil
        self.init(bridgeId: try json.string("bridge_id"), seq: try json.uint64("seq"), type: type,
                  event: known.flatMap { try? Event(json: json, type: $0) })
    }
}

extension BridgeInfo: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(version: try json.string("version"), sipListen: try json.string("sip_listen"), events: try json.string("events"),
                  decisions: try json.string("decisions"), replay: try json.string("replay"), journal: try json.string("journal"),
                  decisionTimeoutMs: try json.int("decision_timeout_ms"), fallback: try json.string("fallback"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("version", version)
        writer.member("sip_listen", sipListen)
        writer.member("events", events)
        writer.member("decisions", decisions)
        writer.member("replay", replay)
        writer.member("journal", journal)
        writer.member("decision_timeout_ms", decisionTimeoutMs)
        writer.member("fallback", fallback)
        writer.closeObject()
    }
}

extension WorkerInfo: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(workerId: try json.string("worker_id"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("worker_id", workerId)
        writer.closeObject()
    }
}

extension Address: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(uri: try json.string("uri"), user: try json.optionalString("user"), host: try json.optionalString("host"),
                  displayName: try json.optionalString("display_name"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("uri", uri)
        writer.member("user", user)
        writer.member("host", host)
        writer.member("display_name", displayName)
        writer.closeObject()
    }
}

extension Source: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(address: try json.string("address"), port: try json.int("port"), transport: try json.string("transport"),
                  peer: try json.string("peer"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("address", address)
        writer.member("port", port)
        writer.member("transport", transport)
        writer.member("peer", peer)
        writer.closeObject()
    }
}

extension SDPSummary.Media: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(kind: try json.string("kind"), port: try json.int("port"), proto: try json.string("proto"),
                  formats: try json.strings("formats"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("kind", kind)
        writer.member("port", port)
        writer.member("proto", proto)
        writer.key("formats")
        writer.openArray()
        for format in formats {
            writer.element()
            writer.string(format)
        }
        writer.closeArray()
        writer.closeObject()
    }
}

extension SDPSummary: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(connection: try json.optionalString("connection"), media: try json.members("media"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("connection", connection)
        writer.member("media", media)
        writer.closeObject()
    }
}

extension CallOffer: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(sipCallId: try json.string("sip_call_id"), requestUri: try json.member("request_uri"), from: try json.member("from"),
                  to: try json.member("to"), source: try json.member("source"), authUser: try json.optionalString("auth_user"),
                  headers: try json.stringMap("headers"), sdp: try json.optionalMember("sdp"), transfer: try json.optionalMember("transfer"),
                  failure: try json.optionalMember("failure"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("sip_call_id", sipCallId)
        writer.member("request_uri", requestUri)
        writer.member("from", from)
        writer.member("to", to)
        writer.member("source", source)
        writer.member("auth_user", authUser)
        writer.member("headers", headers)
        writer.member("sdp", sdp)
        writer.member("transfer", transfer)
        writer.member("failure", failure)
        writer.closeObject()
    }
}

extension TransferOffer: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(callId: try json.string("call_id"), referrer: try json.enumValue("referrer"), referredBy: try json.optionalString("referred_by"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("call_id", callId)
        writer.member("referrer", referrer)
        writer.member("referred_by", referredBy)
        writer.closeObject()
    }
}

extension Target: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(uri: try json.string("uri"), q: try json.optionalDouble("q"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("uri", uri)
        writer.member("q", q)
        writer.closeObject()
    }
}

extension Routed: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(action: try json.optionalEnum("action") ?? .redirect, targets: try json.members("targets"),
                  workerId: try json.optionalString("worker_id"), fallback: try json.bool("fallback"),
                  cause: try json.optionalEnum("cause"), decisionMs: try json.double("decision_ms"), step: try json.optionalInt("step"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        if action != .redirect { writer.member("action", action.rawValue) }
        writer.member("targets", targets)
        writer.member("worker_id", workerId)
        writer.member("fallback", fallback)
        writer.member("cause", cause)
        writer.member("decision_ms", decisionMs)
        writer.member("step", step)
        writer.closeObject()
    }
}

extension Rejected: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(status: try json.int("status"), reason: try json.string("reason"), workerId: try json.optionalString("worker_id"),
                  fallback: try json.bool("fallback"), cause: try json.optionalEnum("cause"), decisionMs: try json.double("decision_ms"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("status", status)
        writer.member("reason", reason)
        writer.member("worker_id", workerId)
        writer.member("fallback", fallback)
        writer.member("cause", cause)
        writer.member("decision_ms", decisionMs)
        writer.closeObject()
    }
}
