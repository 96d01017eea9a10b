/// What a proxy that cannot speak the bus knows of a new INVITE, for the `decide` command: OpenSER 1.x runs
/// `switchboard-exec` per call (the exec module's `exec_dset`), which sends this. Plain header text, as the
/// proxy hands it over: the bridge reads it with its own SIP grammar into the ``CallOffer`` workers see.
///
/// ```json
/// {"request_uri":"sip:12025550100@switchboard.local","from":"\"Alice\" <sip:alice@switchboard.local>;tag=a1",
///  "to":"<sip:12025550100@switchboard.local>","sip_call_id":"c-1@10.0.0.5","source":"10.0.0.5:5060;transport=udp",
///  "auth_user":"alice"}
/// ```
public struct HandoffOffer: Equatable, Sendable {
    /// The Request-URI the proxy would relay (`$ru`).
    public var requestUri: String
    /// The From and To header values, as received.
    public var from: String
    public var to: String
    public var sipCallId: String
    /// Where the INVITE came from, `ip:port;transport=udp` (as `X-Switchboard-Source`); nil: the bridge knows only
    /// that the proxy asked.
    public var source: String?
    /// The user the proxy authenticated; nil for a trusted or anonymous source.
    public var authUser: String?

    public init(requestUri: String, from: String, to: String, sipCallId: String, source: String? = nil, authUser: String? = nil) {
        self.requestUri = requestUri
        self.from = from
        self.to = to
        self.sipCallId = sipCallId
        self.source = source
        self.authUser = authUser
    }

    /// What the bridge could not read as an INVITE's offer; nil when it can.
    var problem: String? {
        if let problem = SIPText.uriProblem(requestUri, what: "request_uri") { return problem }
        if sipCallId.isEmpty { return "sip_call_id is empty" }
        for (name, value) in [("from", from), ("to", to), ("sip_call_id", sipCallId), ("source", source ?? ""), ("auth_user", authUser ?? "")]
        where value.hasControlCharacter {
            return "\(name) contains a control character"
        }
        return nil
    }
}

/// The bridge's answer to `decide`: the decision the proxy carries out itself, with what the bridge published
/// about it (`call.routed` / `call.rejected` of `call_id`). Only `redirect` and `reject`: the proxy holds the
/// INVITE, so a worker's `bridge` comes back as a redirect to its targets.
///
/// ```json
/// {"call_id":"b1-x-7","decision":{"action":"redirect","targets":[{"uri":"sip:1202@gw","q":1}]},"worker_id":"router-1","fallback":false}
/// {"call_id":"b1-x-8","decision":{"action":"reject","status":503,"reason":"Service Unavailable","headers":{"Retry-After":"30"}},"fallback":true,"cause":"no_worker"}
/// ```
public struct HandoffDecision: Equatable, Sendable {
    /// The bridge's id of the call, as in its events.
    public var callId: String
    public var decision: Decision
    /// The worker that decided; nil when the fallback did.
    public var workerId: String?
    public var fallback: Bool
    /// Why the bridge answered rather than a worker (as in `call.rejected`); nil for a worker's decision.
    public var cause: DecisionCause?

    public init(callId: String, decision: Decision, workerId: String?, fallback: Bool, cause: DecisionCause? = nil) {
        self.callId = callId
        self.decision = decision
        self.workerId = workerId
        self.fallback = fallback
        self.cause = cause
    }
}

extension HandoffOffer: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(requestUri: try json.string("request_uri"), from: try json.string("from"), to: try json.string("to"),
                  sipCallId: try json.string("sip_call_id"), source: try json.optionalString("source"),
                  authUser: try json.optionalString("auth_user"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writeMembers(to: &writer)
        writer.closeObject()
    }

    /// The members alone, for the `decide` command whose object also holds `name`.
    func writeMembers(to writer: inout JSONWriter) {
        writer.member("request_uri", requestUri)
        writer.member("from", from)
        writer.member("to", to)
        writer.member("sip_call_id", sipCallId)
        writer.member("source", source)
        writer.member("auth_user", authUser)
    }
}

extension HandoffDecision {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(callId: try json.string("call_id"), decision: try json.member("decision"), workerId: try json.optionalString("worker_id"),
                  fallback: try json.bool("fallback"), cause: try json.optionalEnum("cause"))
    }

    /// The members, written into the reply's `result` object.
    func writeMembers(to writer: inout JSONWriter) {
        writer.member("call_id", callId)
        writer.member("decision", decision)
        writer.member("worker_id", workerId)
        writer.member("fallback", fallback)
        writer.member("cause", cause)
    }
}
