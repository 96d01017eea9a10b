import Foundation

/// A leg of a bridged call: `a` is the caller's (or, for an originated call, the first party dialed),
/// `b` the one the bridge dialed to join it.
///
/// Also `Codable`: the bridge's dialog store keeps it in its SQLite records.
public enum Leg: String, Codable, Equatable, Sendable, CaseIterable {
    case a, b
}

/// Who made something happen to a call: one of its parties, a command on the commands socket, or
/// the bridge itself (a limit, a restart, a shutdown).
public enum Initiator: String, Equatable, Sendable, CaseIterable {
    case a, b, command, bridge
}

/// Why a call, or one attempt to reach a party, ended.
public enum EndCause: String, Equatable, Sendable, CaseIterable {
    /// A party hung up after the call was connected.
    case normalClearing = "normal_clearing"
    /// The caller gave up (CANCEL) before the call was connected.
    case callerCancelled = "caller_cancelled"
    /// 486 or 600.
    case busy
    /// The ring timeout passed, or 408/480.
    case noAnswer = "no_answer"
    /// 403, 603 and the other 4xx/6xx not named elsewhere.
    case rejected
    /// 5xx, 404, 410, 484.
    case unavailable
    /// Anything else, such as a transport error.
    case failed
    /// A `hangup` command ended it.
    case hangupCommand = "hangup_command"
    /// The bridge restarted and lost the call.
    case bridgeRestart = "bridge_restart"
    /// The bridge shut down.
    case shutdown
    /// A concurrency limit refused it.
    case limit
    /// A leg's session timer ran out (RFC 4028 §10): the party that was to refresh the session stopped.
    case sessionExpired = "session_expired"

    /// The cause a final failure response means. The causes that are not a status (a ring timeout,
    /// a cancel, a command) are the bridge's to name.
    ///
    /// ```swift
    /// EndCause(status: 486)   // .busy
    /// EndCause(status: 503)   // .unavailable
    /// ```
    public init(status: Int) {
        switch status {
        case 486, 600: self = .busy
        case 408, 480: self = .noAnswer
        case 404, 410, 484, 500...599: self = .unavailable
        case 400...499, 600...699: self = .rejected
        default: self = .failed
        }
    }
}

/// The bridge sent an INVITE to a party, as published in `call.dialing`.
///
/// ```json
/// {"leg":"b","uri":"sip:bob@switchboard.local","sip_call_id":"b1-7-b1@bridge","attempt":1}
/// ```
public struct Dialing: Equatable, Sendable {
    public var leg: Leg
    public var uri: String
    /// The SIP Call-ID of the new leg.
    public var sipCallId: String
    /// Which target of the route this is, from 1.
    public var attempt: Int

    public init(leg: Leg, uri: String, sipCallId: String, attempt: Int) {
        self.leg = leg
        self.uri = uri
        self.sipCallId = sipCallId
        self.attempt = attempt
    }
}

/// A dialed party is ringing, as published in `call.ringing`.
///
/// ```json
/// {"leg":"b","status":183,"early_media":true}
/// ```
public struct Ringing: Equatable, Sendable {
    public var leg: Leg
    /// 180 or 183.
    public var status: Int
    /// The provisional response carried SDP, so the caller may already hear the far end.
    public var earlyMedia: Bool

    public init(leg: Leg, status: Int, earlyMedia: Bool) {
        self.leg = leg
        self.status = status
        self.earlyMedia = earlyMedia
    }
}

/// A dialed party answered (200 OK), as published in `call.answered`.
///
/// ```json
/// {"leg":"b","uri":"sip:bob@switchboard.local","setup_ms":4210.5}
/// ```
public struct Answered: Equatable, Sendable {
    public var leg: Leg
    public var uri: String
    /// From that leg's INVITE to its 200, milliseconds.
    public var setupMs: Double

    public init(leg: Leg, uri: String, setupMs: Double) {
        self.leg = leg
        self.uri = uri
        self.setupMs = setupMs
    }
}

/// Both legs are up and joined, as published in `call.connected`; talk time starts here.
///
/// ```json
/// {"a":"sip:alice@switchboard.local","b":"sip:bob@switchboard.local"}
/// ```
public struct Connected: Equatable, Sendable {
    /// Leg A's party URI.
    public var a: String
    /// Leg B's party URI.
    public var b: String

    public init(a: String, b: String) {
        self.a = a
        self.b = b
    }
}

/// One attempt to reach a party failed, as published in `call.leg_failed`; another target may follow.
///
/// ```json
/// {"leg":"b","uri":"sip:bob@switchboard.local","status":486,"reason":"Busy Here","cause":"busy"}
/// ```
public struct LegFailed: Equatable, Sendable {
    public var leg: Leg
    public var uri: String
    /// The final response's status; nil when there was none (a transport error, a ring timeout).
    public var status: Int?
    /// The reason phrase, or what went wrong when there was no response.
    public var reason: String
    public var cause: EndCause

    public init(leg: Leg, uri: String, status: Int?, reason: String, cause: EndCause) {
        self.leg = leg
        self.uri = uri
        self.status = status
        self.reason = reason
        self.cause = cause
    }
}

/// A leg was put on hold or taken off it, as published in `call.held` and `call.resumed`.
///
/// ```json
/// {"leg":"b","by":"command"}
/// ```
public struct HoldChange: Equatable, Sendable {
    /// The leg put on hold (or resumed).
    public var leg: Leg
    /// `a` or `b` when a party's re-INVITE did it, `command` for a hold/unhold command.
    public var by: Initiator

    public init(leg: Leg, by: Initiator) {
        self.leg = leg
        self.by = by
    }
}

/// A transfer, as published in `call.transferred`: the party on `leg` stays and is joined to `target`,
/// which replaces the other leg. `by` says who asked: `command` (the `transfer` command), or the phone on
/// leg `a` or `b` that sent a REFER; absent from bridges that predate it.
///
/// ```json
/// {"leg":"a","target":"sip:carol@switchboard.local","by":"b"}
/// ```
public struct Transferred: Equatable, Sendable {
    public var leg: Leg
    public var target: String
    public var by: Initiator?

    public init(leg: Leg, target: String, by: Initiator? = nil) {
        self.leg = leg
        self.target = target
        self.by = by
    }
}

/// The call is over, as published in `call.ended`: its last event.
///
/// ```json
/// {"cause":"normal_clearing","by":"b","duration_ms":65012.3,"talk_ms":60801.9}
/// {"cause":"busy","status":486,"duration_ms":3120,"talk_ms":0}
/// ```
public struct Ended: Equatable, Sendable {
    public var cause: EndCause
    /// The final SIP status, when the call failed before it was connected.
    public var status: Int?
    /// Who ended it, when that is known.
    public var by: Initiator?
    /// From the offer (or the originate command) to the end, milliseconds.
    public var durationMs: Double
    /// From `call.connected` to the end, milliseconds; 0 when the call was never connected.
    public var talkMs: Double

    public init(cause: EndCause, status: Int? = nil, by: Initiator? = nil, durationMs: Double, talkMs: Double) {
        self.cause = cause
        self.status = status
        self.by = by
        self.durationMs = durationMs
        self.talkMs = talkMs
    }
}

extension Dialing: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(leg: try json.enumValue("leg"), uri: try json.string("uri"), sipCallId: try json.string("sip_call_id"),
                  attempt: try json.int("attempt"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("leg", leg)
        writer.member("uri", uri)
        writer.member("sip_call_id", sipCallId)
        writer.member("attempt", attempt)
        writer.closeObject()
    }
}

extension Ringing: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(leg: try json.enumValue("leg"), status: try json.int("status"), earlyMedia: try json.bool("early_media"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("leg", leg)
        writer.member("status", status)
        writer.member("early_media", earlyMedia)
        writer.closeObject()
    }
}

extension Answered: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(leg: try json.enumValue("leg"), uri: try json.string("uri"), setupMs: try json.double("setup_ms"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("leg", leg)
        writer.member("uri", uri)
        writer.member("setup_ms", setupMs)
        writer.closeObject()
    }
}

extension Connected: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(a: try json.string("a"), b: try json.string("b"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("a", a)
        writer.member("b", b)
        writer.closeObject()
    }
}

extension LegFailed: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(leg: try json.enumValue("leg"), uri: try json.string("uri"), status: try json.optionalInt("status"),
                  reason: try json.string("reason"), cause: try json.enumValue("cause"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("leg", leg)
        writer.member("uri", uri)
        writer.member("status", status)
        writer.member("reason", reason)
        writer.member("cause", cause)
        writer.closeObject()
    }
}

extension HoldChange: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(leg: try json.enumValue("leg"), by: try json.enumValue("by"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("leg", leg)
        writer.member("by", by)
        writer.closeObject()
    }
}

extension Transferred: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(leg: try json.enumValue("leg"), target: try json.string("target"), by: try json.optionalEnum("by"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("leg", leg)
        writer.member("target", target)
        writer.member("by", by)
        writer.closeObject()
    }
}

extension Ended: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(cause: try json.enumValue("cause"), status: try json.optionalInt("status"), by: try json.optionalEnum("by"),
                  durationMs: try json.double("duration_ms"), talkMs: try json.double("talk_ms"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("cause", cause)
        writer.member("status", status)
        writer.member("by", by)
        writer.member("duration_ms", durationMs)
        writer.member("talk_ms", talkMs)
        writer.closeObject()
    }
}
