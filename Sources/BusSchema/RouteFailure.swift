/// Why a bridged call's route failed, in the `decision.request` that asks the workers for the call's next
/// step (`offer.failure`). Sent only for a `bridge` decision with `"on_failure":"ask"` whose targets all
/// failed while the caller was still waiting; the worker answers with the next `bridge`, a `reject`, or a
/// `redirect` (a 302 to the caller).
///
/// ```json
/// {"status":486,"reason":"Busy Here","cause":"busy","ring_ms":1200,"targets":[{"uri":"sip:bob@switchboard.local"}],"step":1}
/// ```
public struct RouteFailure: Equatable, Sendable {
    /// The failed B leg's own final status (the best of the step's targets, RFC 3261 §16.7); 480 when they
    /// only rang out.
    public var status: Int
    public var reason: String
    /// `busy`, `no_answer` (a ring timeout, or 408/480), `rejected`, `unavailable` (5xx, 404, 410, 484) or `failed`.
    public var cause: EndCause
    /// How long the route's targets rang, from the first one's first 180/183 to the failure, milliseconds; 0 when
    /// none rang (a 480 from the proxy's location lookup: the user is not registered).
    public var ringMs: Int
    /// What the step tried, in order (a target's 3xx contacts included).
    public var targets: [Target]
    /// 1 for the failure of the first decision's route, 2 for the route the first ask chose, ...
    public var step: Int

    public init(status: Int, reason: String, cause: EndCause, ringMs: Int, targets: [Target], step: Int) {
        self.status = status
        self.reason = reason
        self.cause = cause
        self.ringMs = ringMs
        self.targets = targets
        self.step = step
    }
}

extension RouteFailure: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(status: try json.int("status"), reason: try json.string("reason"), cause: try json.enumValue("cause"),
                  ringMs: try json.int("ring_ms"), targets: try json.members("targets"), step: try json.int("step"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("status", status)
        writer.member("reason", reason)
        writer.member("cause", cause)
        writer.member("ring_ms", ringMs)
        writer.member("targets", targets)
        writer.member("step", step)
        writer.closeObject()
    }
}
