import Foundation

/// A party of a call as the bridge saw it in SIP: the full URI plus its user and host, for routing.
public struct Address: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey { case uri, user, host, displayName = "display_name" }

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
public struct Source: Codable, Equatable, Sendable {
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
public struct SDPSummary: Codable, Equatable, Sendable {
    public struct Media: Codable, Equatable, Sendable {
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
public struct CallOffer: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey {
        case sipCallId = "sip_call_id", requestUri = "request_uri", from, to, source, authUser = "auth_user", headers, sdp
    }

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

    public init(sipCallId: String, requestUri: Address, from: Address, to: Address, source: Source,
                authUser: String?, headers: [String: String], sdp: SDPSummary?) {
        self.sipCallId = sipCallId
        self.requestUri = requestUri
        self.from = from
        self.to = to
        self.source = source
        self.authUser = authUser
        self.headers = headers
        self.sdp = sdp
    }
}

/// One redirect target: a URI and its preference (q-value, 0.0–1.0, higher first).
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
public struct Routed: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey { case action, targets, workerId = "worker_id", fallback, cause, decisionMs = "decision_ms" }

    /// What the bridge did with the targets. `action` is left out of the JSON for a redirect, as
    /// before bridging existed, so a reader that does not know it still reads redirects right.
    public enum Action: String, Codable, Equatable, Sendable, CaseIterable {
        case redirect, bridge
    }

    public var action: Action
    /// The redirect's Contacts, or the bridge's targets (without `q`).
    public var targets: [Target]
    /// The worker that decided; nil when the fallback decided.
    public var workerId: String?
    /// True when no worker answered in time and the configured fallback was applied.
    public var fallback: Bool
    /// Why the fallback decided (see ``Rejected/cause``), nil for a worker's decision.
    public var cause: String?
    /// Time from offer to decision, milliseconds.
    public var decisionMs: Double

    public init(action: Action = .redirect, targets: [Target], workerId: String?, fallback: Bool, cause: String? = nil,
                decisionMs: Double) {
        self.action = action
        self.targets = targets
        self.workerId = workerId
        self.fallback = fallback
        self.cause = cause
        self.decisionMs = decisionMs
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        action = try container.decodeIfPresent(Action.self, forKey: .action) ?? .redirect
        targets = try container.decode([Target].self, forKey: .targets)
        workerId = try container.decodeIfPresent(String.self, forKey: .workerId)
        fallback = try container.decode(Bool.self, forKey: .fallback)
        cause = try container.decodeIfPresent(String.self, forKey: .cause)
        decisionMs = try container.decode(Double.self, forKey: .decisionMs)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if action != .redirect { try container.encode(action, forKey: .action) }
        try container.encode(targets, forKey: .targets)
        try container.encodeIfPresent(workerId, forKey: .workerId)
        try container.encode(fallback, forKey: .fallback)
        try container.encodeIfPresent(cause, forKey: .cause)
        try container.encode(decisionMs, forKey: .decisionMs)
    }
}

/// A call the bridge refused, as published in `call.rejected`.
public struct Rejected: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey {
        case status, reason, workerId = "worker_id", fallback, cause, decisionMs = "decision_ms"
    }

    public var status: Int
    public var reason: String
    public var workerId: String?
    public var fallback: Bool
    /// Why the bridge answered rather than a worker: `no_worker`, `overload`, `timeout`,
    /// `invalid_decision`, `shutdown` (fallback), or `caller_cancelled` (the caller sent CANCEL first).
    /// Nil for a worker's decision.
    public var cause: String?
    public var decisionMs: Double

    public init(status: Int, reason: String, workerId: String?, fallback: Bool, cause: String?, decisionMs: Double) {
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
public struct BridgeInfo: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey {
        case version, sipListen = "sip_listen", events, decisions, replay, journal,
             decisionTimeoutMs = "decision_timeout_ms", fallback
    }

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
public struct WorkerInfo: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey { case workerId = "worker_id" }

    public var workerId: String

    public init(workerId: String) {
        self.workerId = workerId
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

    /// The event type, which is also its topic on the events socket.
    public var type: String {
        switch self {
        case .callOffered: "call.offered"
        case .callRouted: "call.routed"
        case .callRejected: "call.rejected"
        case .bridgeStarted: "bridge.started"
        case .bridgeStopping: "bridge.stopping"
        case .workerJoined: "worker.joined"
        case .workerLeft: "worker.left"
        case .workerLost: "worker.lost"
        case .callOriginated: "call.originated"
        case .callDialing: "call.dialing"
        case .callRinging: "call.ringing"
        case .callAnswered: "call.answered"
        case .callConnected: "call.connected"
        case .callLegFailed: "call.leg_failed"
        case .callHeld: "call.held"
        case .callResumed: "call.resumed"
        case .callTransferred: "call.transferred"
        case .callEnded: "call.ended"
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
}

extension Event: Codable {
    private enum CodingKeys: String, CodingKey {
        case v, type, bridgeId = "bridge_id", seq, ts, callId = "call_id", offer, routed, rejected, bridge, worker
        case originate, dialing, ringing, answered, connected, legFailed = "leg_failed", hold, transferred, ended
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        bridgeId = try container.decode(String.self, forKey: .bridgeId)
        seq = try container.decode(UInt64.self, forKey: .seq)
        let ts = try container.decode(String.self, forKey: .ts)
        guard let timestamp = BusTimestamp.parse(ts) else {
            throw DecodingError.dataCorruptedError(forKey: .ts, in: container, debugDescription: "not an ISO 8601 timestamp: \(ts)")
        }
        self.timestamp = timestamp
        callId = try container.decodeIfPresent(String.self, forKey: .callId)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "call.offered": body = .callOffered(try container.decode(CallOffer.self, forKey: .offer))
        case "call.routed": body = .callRouted(try container.decode(Routed.self, forKey: .routed))
        case "call.rejected": body = .callRejected(try container.decode(Rejected.self, forKey: .rejected))
        case "bridge.started": body = .bridgeStarted(try container.decode(BridgeInfo.self, forKey: .bridge))
        case "bridge.stopping": body = .bridgeStopping(try container.decode(BridgeInfo.self, forKey: .bridge))
        case "worker.joined": body = .workerJoined(try container.decode(WorkerInfo.self, forKey: .worker))
        case "worker.left": body = .workerLeft(try container.decode(WorkerInfo.self, forKey: .worker))
        case "worker.lost": body = .workerLost(try container.decode(WorkerInfo.self, forKey: .worker))
        case "call.originated": body = .callOriginated(try container.decode(Originate.self, forKey: .originate))
        case "call.dialing": body = .callDialing(try container.decode(Dialing.self, forKey: .dialing))
        case "call.ringing": body = .callRinging(try container.decode(Ringing.self, forKey: .ringing))
        case "call.answered": body = .callAnswered(try container.decode(Answered.self, forKey: .answered))
        case "call.connected": body = .callConnected(try container.decode(Connected.self, forKey: .connected))
        case "call.leg_failed": body = .callLegFailed(try container.decode(LegFailed.self, forKey: .legFailed))
        case "call.held": body = .callHeld(try container.decode(HoldChange.self, forKey: .hold))
        case "call.resumed": body = .callResumed(try container.decode(HoldChange.self, forKey: .hold))
        case "call.transferred": body = .callTransferred(try container.decode(Transferred.self, forKey: .transferred))
        case "call.ended": body = .callEnded(try container.decode(Ended.self, forKey: .ended))
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: container, debugDescription: "unknown event type \(type)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(BusSchema.version, forKey: .v)
        try container.encode(type, forKey: .type)
        try container.encode(bridgeId, forKey: .bridgeId)
        try container.encode(seq, forKey: .seq)
        try container.encode(BusTimestamp.format(timestamp), forKey: .ts)
        try container.encodeIfPresent(callId, forKey: .callId)
        switch body {
        case .callOffered(let offer): try container.encode(offer, forKey: .offer)
        case .callRouted(let routed): try container.encode(routed, forKey: .routed)
        case .callRejected(let rejected): try container.encode(rejected, forKey: .rejected)
        case .bridgeStarted(let info), .bridgeStopping(let info): try container.encode(info, forKey: .bridge)
        case .workerJoined(let info), .workerLeft(let info), .workerLost(let info): try container.encode(info, forKey: .worker)
        case .callOriginated(let originate): try container.encode(originate, forKey: .originate)
        case .callDialing(let dialing): try container.encode(dialing, forKey: .dialing)
        case .callRinging(let ringing): try container.encode(ringing, forKey: .ringing)
        case .callAnswered(let answered): try container.encode(answered, forKey: .answered)
        case .callConnected(let connected): try container.encode(connected, forKey: .connected)
        case .callLegFailed(let failed): try container.encode(failed, forKey: .legFailed)
        case .callHeld(let change), .callResumed(let change): try container.encode(change, forKey: .hold)
        case .callTransferred(let transferred): try container.encode(transferred, forKey: .transferred)
        case .callEnded(let ended): try container.encode(ended, forKey: .ended)
        }
    }

    /// The event's JSON, written directly (the bridge publishes one per call step).
    public func jsonBytes() -> [UInt8] {
        var writer = JSONWriter()
        writer.openObject()
        writer.member("v", BusSchema.version)
        writer.member("type", type)
        writer.member("bridge_id", bridgeId)
        writer.key("seq")
        writer.int(seq)
        writer.member("ts", BusTimestamp.format(timestamp))
        writer.member("call_id", callId)
        switch body {
        case .callOffered(let offer):
            writer.key("offer")
            offer.write(to: &writer)
        case .callRouted(let routed):
            writer.key("routed")
            routed.write(to: &writer)
        case .callRejected(let rejected):
            writer.key("rejected")
            rejected.write(to: &writer)
        case .bridgeStarted(let info), .bridgeStopping(let info):
            writer.key("bridge")
            info.write(to: &writer)
        case .workerJoined(let info), .workerLeft(let info), .workerLost(let info):
            writer.key("worker")
            writer.openObject()
            writer.member("worker_id", info.workerId)
            writer.closeObject()
        case .callOriginated(let originate):
            writer.key("originate")
            originate.write(to: &writer)
        case .callDialing(let dialing):
            writer.key("dialing")
            dialing.write(to: &writer)
        case .callRinging(let ringing):
            writer.key("ringing")
            ringing.write(to: &writer)
        case .callAnswered(let answered):
            writer.key("answered")
            answered.write(to: &writer)
        case .callConnected(let connected):
            writer.key("connected")
            connected.write(to: &writer)
        case .callLegFailed(let failed):
            writer.key("leg_failed")
            failed.write(to: &writer)
        case .callHeld(let change), .callResumed(let change):
            writer.key("hold")
            change.write(to: &writer)
        case .callTransferred(let transferred):
            writer.key("transferred")
            transferred.write(to: &writer)
        case .callEnded(let ended):
            writer.key("ended")
            ended.write(to: &writer)
        }
        writer.closeObject()
        return writer.bytes
    }

    /// Encodes the event as its two bus frames: `[topic, json]`.
    public func frames() -> [[UInt8]] {
        [Array(type.utf8), jsonBytes()]
    }

    /// A timestamp as `ts` writes it (ISO 8601 UTC, milliseconds); such strings sort in time order.
    public static func wireTimestamp(_ date: Date) -> String {
        BusTimestamp.format(date)
    }

    /// Decodes an event from its JSON frame.
    public static func decode(_ frame: [UInt8]) throws(BusDecodingError) -> Event {
        let envelope = try BusSchema.envelope(of: frame)
        return try BusSchema.decode(Event.self, from: frame, messageType: envelope.type)
    }
}

extension BridgeInfo {
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

extension Address {
    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("uri", uri)
        writer.member("user", user)
        writer.member("host", host)
        writer.member("display_name", displayName)
        writer.closeObject()
    }
}

extension Source {
    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("address", address)
        writer.member("port", port)
        writer.member("transport", transport)
        writer.member("peer", peer)
        writer.closeObject()
    }
}

extension SDPSummary {
    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("connection", connection)
        writer.key("media")
        writer.openArray()
        for item in media {
            writer.element()
            writer.openObject()
            writer.member("kind", item.kind)
            writer.member("port", item.port)
            writer.member("proto", item.proto)
            writer.key("formats")
            writer.openArray()
            for format in item.formats {
                writer.element()
                writer.string(format)
            }
            writer.closeArray()
            writer.closeObject()
        }
        writer.closeArray()
        writer.closeObject()
    }
}

extension CallOffer {
    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("sip_call_id", sipCallId)
        writer.key("request_uri")
        requestUri.write(to: &writer)
        writer.key("from")
        from.write(to: &writer)
        writer.key("to")
        to.write(to: &writer)
        writer.key("source")
        source.write(to: &writer)
        writer.member("auth_user", authUser)
        writer.member("headers", headers)
        if let sdp {
            writer.key("sdp")
            sdp.write(to: &writer)
        }
        writer.closeObject()
    }
}

extension Target {
    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("uri", uri)
        writer.member("q", q)
        writer.closeObject()
    }
}

extension Routed {
    func write(to writer: inout JSONWriter) {
        writer.openObject()
        if action != .redirect { writer.member("action", action.rawValue) }
        writer.key("targets")
        writer.openArray()
        for target in targets {
            writer.element()
            target.write(to: &writer)
        }
        writer.closeArray()
        writer.member("worker_id", workerId)
        writer.member("fallback", fallback)
        writer.member("cause", cause)
        writer.member("decision_ms", decisionMs)
        writer.closeObject()
    }
}

extension Rejected {
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

extension Address {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(uri: try json.string("uri"), user: try json.optionalString("user"), host: try json.optionalString("host"),
                  displayName: try json.optionalString("display_name"))
    }
}

extension Source {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(address: try json.string("address"), port: try json.int("port"), transport: try json.string("transport"),
                  peer: try json.string("peer"))
    }
}

extension SDPSummary {
    init(json: JSONObject) throws(BusDecodingError) {
        var media: [Media] = []
        for (position, element) in try json.array("media").enumerated() {
            let item = try JSONObject(element, path: json.name("media[\(position)]"))
            media.append(Media(kind: try item.string("kind"), port: try item.int("port"), proto: try item.string("proto"),
                               formats: try item.strings("formats")))
        }
        self.init(connection: try json.optionalString("connection"), media: media)
    }
}

extension CallOffer {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(sipCallId: try json.string("sip_call_id"), requestUri: try Address(json: json.object("request_uri")),
                  from: try Address(json: json.object("from")), to: try Address(json: json.object("to")),
                  source: try Source(json: json.object("source")), authUser: try json.optionalString("auth_user"),
                  headers: try json.stringMap("headers"),
                  sdp: try json.optionalObject("sdp").map { object throws(BusDecodingError) in try SDPSummary(json: object) })
    }
}

extension Target {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(uri: try json.string("uri"), q: try json.optionalDouble("q"))
    }
}
