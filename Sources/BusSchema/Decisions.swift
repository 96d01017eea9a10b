import Foundation

/// A worker's answer to an offer.
///
/// ```swift
/// .redirect([Target(uri: "sip:12025550100@gw1.example.com", q: 1.0)])
/// .reject(status: 486, reason: "Busy Here")
/// .bridge(BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@switchboard.local", ringTimeoutMs: 20_000)]))
/// ```
public enum Decision: Equatable, Sendable {
    /// Answer 302 with these targets as Contacts; the proxy (Kamailio) follows them.
    case redirect([Target])
    /// Answer with a final error status; `headers` (e.g. `Retry-After`) are added to the response.
    case reject(status: Int, reason: String? = nil, headers: [String: String] = [:])
    /// Keep the call: the bridge dials leg B to the route's targets and joins the two legs (B2BUA).
    case bridge(BridgeRoute)
    /// The bridge answers the caller itself, its media anchored in rtpengine, and the workers go on with media
    /// commands (an IVR: `play`, `call.dtmf`) and a `transfer` of leg A to where the caller chose.
    case answer

    /// Checks what the bridge could not turn into a valid SIP answer; returns what is wrong, or nil.
    public var problem: String? {
        switch self {
        case .redirect(let targets):
            if targets.isEmpty { return "redirect needs at least one target" }
            for target in targets {
                if let problem = SIPText.uriProblem(target.uri, what: "target uri") { return problem }
                if let q = target.q, !(0...1).contains(q) { return "q-value \(q) is outside 0.0–1.0" }
            }
        case .reject(let status, let reason, let headers):
            if !(400...699).contains(status) { return "reject status \(status) is not a 4xx–6xx final response" }
            if let reason, reason.hasControlCharacter { return "reason contains a control character" }
            return SIPText.headersProblem(headers)
        case .bridge(let route):
            return route.problem
        case .answer:
            return nil
        }
        return nil
    }
}

/// How a bridge decision forks leg B over its targets.
public enum ForkMode: String, Equatable, Sendable, CaseIterable {
    /// One target after another: the next is dialed when the previous fails or its ring timeout ends.
    case serial
    /// Every target at once; the first to answer wins and the others are cancelled.
    case parallel
}

/// What the bridge does when every target of a bridge decision failed and the caller still waits.
public enum OnFailure: String, Equatable, Sendable, CaseIterable {
    /// The caller gets the best failure (the default; left out of the JSON).
    case end
    /// The bridge asks the workers again: a `decision.request` with the same offer and `offer.failure`, whose
    /// answer is the call's next step (under the same deadline and fallback; the fallback is the failure).
    case ask
}

/// A caller id to present on an outgoing leg (From URI and display name); either part may be left to the bridge.
///
/// ```json
/// {"uri":"sip:+12025550100@switchboard.local","display_name":"Support"}
/// ```
public struct CallerID: Equatable, Sendable {
    public var uri: String?
    public var displayName: String?

    public init(uri: String? = nil, displayName: String? = nil) {
        self.uri = uri
        self.displayName = displayName
    }

    /// What would break the From header, or nil.
    var problem: String? {
        if let uri, let problem = SIPText.uriProblem(uri, what: "caller_id uri") { return problem }
        // A quote would end the quoted display name early; CR/LF would end the header.
        if let displayName, displayName.hasControlCharacter || displayName.contains("\"") {
            return "display_name \(displayName.debugDescription) contains a line break or a quote"
        }
        return nil
    }
}

/// One target of a bridge decision: a URI to dial, and how long to let it ring.
///
/// ```json
/// {"uri":"sip:bob@switchboard.local","ring_timeout_ms":20000}
/// ```
public struct BridgeTarget: Equatable, Sendable {
    public var uri: String
    /// How long the target may ring before the bridge gives up on it; nil: the bridge's default.
    public var ringTimeoutMs: Int?

    public init(uri: String, ringTimeoutMs: Int? = nil) {
        self.uri = uri
        self.ringTimeoutMs = ringTimeoutMs
    }
}

/// Where and how the bridge dials leg B for a ``Decision/bridge(_:)``.
///
/// ```json
/// {"action":"bridge","targets":[{"uri":"sip:bob@switchboard.local","ring_timeout_ms":20000},{"uri":"sip:carol@switchboard.local"}],
///  "mode":"serial","caller_id":{"uri":"sip:+12025550100@switchboard.local","display_name":"Support"},"headers":{"X-Account":"acme"}}
/// ```
public struct BridgeRoute: Equatable, Sendable {
    /// Most targets one decision may fork to: bounds the legs one offer can make the bridge dial.
    public static let maxTargets = 16

    public var targets: [BridgeTarget]
    public var mode: ForkMode
    /// The caller id leg B's phone shows; nil: the caller's own From.
    public var callerId: CallerID?
    /// Extra headers for leg B's INVITE.
    public var headers: [String: String]
    /// `.ask`: when every target fails, the workers choose the next step (``RouteFailure``).
    public var onFailure: OnFailure
    /// `.anchor`: the call's media goes through the bridge's rtpengine, for the media commands.
    public var media: MediaMode

    public init(targets: [BridgeTarget], mode: ForkMode = .serial, callerId: CallerID? = nil, headers: [String: String] = [:],
                onFailure: OnFailure = .end, media: MediaMode = .relay) {
        self.targets = targets
        self.mode = mode
        self.callerId = callerId
        self.headers = headers
        self.onFailure = onFailure
        self.media = media
    }

    var problem: String? {
        if targets.isEmpty { return "bridge needs at least one target" }
        if targets.count > Self.maxTargets { return "bridge has \(targets.count) targets, more than \(Self.maxTargets)" }
        for target in targets {
            if let problem = SIPText.uriProblem(target.uri, what: "target uri") { return problem }
            if let problem = SIPText.ringTimeoutProblem(target.ringTimeoutMs) { return problem }
        }
        if let problem = callerId?.problem { return problem }
        return SIPText.headersProblem(headers)
    }
}

extension String {
    /// A C0 control other than HTAB, or DEL: CR and LF would let a value break out of its SIP header
    /// line, and peers split lines on a bare CR or stop at a NUL, so none of them is relayed.
    var hasControlCharacter: Bool { unicodeScalars.contains { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7F } }
}

/// The checks that keep worker- and client-supplied text from breaking the SIP the bridge writes with it.
enum SIPText {
    /// Ring timeouts a decision or command may ask for: at least a second, at most ten minutes.
    static let ringTimeoutRange = 1_000...600_000

    /// A sip:, sips: or tel: URI that cannot escape its `<...>` in a header, else what is wrong with it.
    static func uriProblem(_ uri: String, what: String) -> String? {
        if !(uri.hasPrefix("sip:") || uri.hasPrefix("sips:") || uri.hasPrefix("tel:")) {
            return "\(what) \(uri.debugDescription) is not a sip:, sips: or tel: URI"
        }
        if uri.hasControlCharacter || uri.unicodeScalars.contains(where: { $0 == ">" || $0 == "<" || $0 == " " }) {
            return "\(what) \(uri.debugDescription) contains forbidden characters"
        }
        return nil
    }

    static func ringTimeoutProblem(_ milliseconds: Int?) -> String? {
        guard let milliseconds, !ringTimeoutRange.contains(milliseconds) else { return nil }
        return "ring_timeout_ms \(milliseconds) is outside \(ringTimeoutRange.lowerBound)...\(ringTimeoutRange.upperBound)"
    }

    /// Headers a worker or client may not set, lower-cased, compact forms included: the bridge writes
    /// them itself (routing, the dialog, the body, the extensions it runs), or they assert an identity
    /// or credentials that only the proxy may vouch for. Caller identity goes through `caller_id`.
    static let reservedHeaders: Set<String> = [
        "via", "v", "from", "f", "to", "t", "call-id", "i", "cseq", "contact", "m", "max-forwards", "route",
        "record-route", "content-length", "l", "content-type", "c", "content-encoding", "e", "content-disposition",
        "mime-version", "allow", "supported", "k", "require", "proxy-require", "unsupported", "session-expires", "x",
        "min-se", "rseq", "rack", "event", "o", "allow-events", "u", "refer-to", "r", "referred-by", "b", "replaces",
        "authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate", "authentication-info",
        "p-asserted-identity", "p-preferred-identity", "remote-party-id", "identity", "y", "privacy",
    ]

    /// The prefix of the headers Kamailio uses to tell the bridge what it checked (`X-Switchboard-Auth-User`).
    static let reservedPrefix = "x-switchboard-"

    /// Header names must be tokens outside the reserved set, and values single lines without controls,
    /// or a header could inject others or take over what the bridge or the proxy asserts.
    static func headersProblem(_ headers: [String: String]) -> String? {
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            if name.isEmpty || name.unicodeScalars.contains(where: { !($0.properties.isASCIIHexDigit || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || $0 == "-" || $0 == "_" || $0 == ".") }) {
                return "header name \(name.debugDescription) is not a SIP token"
            }
            let lowered = name.lowercased()
            if reservedHeaders.contains(lowered) || lowered.hasPrefix(reservedPrefix) {
                return "header \(name) is reserved: the bridge or the proxy writes it"
            }
            if value.hasControlCharacter { return "header \(name) contains a control character" }
        }
        return nil
    }
}

/// A decision's `action`.
enum DecisionAction: String, CaseIterable {
    case redirect, reject, bridge, answer
}

extension Decision: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        let action = try json.string("action")
        switch DecisionAction(rawValue: action) {
        case .redirect: self = .redirect(try json.members("targets"))
        case .reject: self = .reject(status: try json.int("status"), reason: try json.optionalString("reason"), headers: try json.stringMap("headers"))
        case .bridge: self = .bridge(try BridgeRoute(json: json))
        case .answer: self = .answer
        case nil:
            let expected = DecisionAction.allCases.map(\.rawValue)
            throw BusDecodingError(code: .badMessage, message: "\(json.name("action")): unknown action \(action.debugDescription) "
                                   + "(expected \(expected.dropLast().joined(separator: ", ")) or \(expected.last!))")
        }
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        switch self {
        case .redirect(let targets):
            writer.member("action", DecisionAction.redirect)
            writer.member("targets", targets)
        case .reject(let status, let reason, let headers):
            writer.member("action", DecisionAction.reject)
            writer.member("status", status)
            writer.member("reason", reason)
            if !headers.isEmpty { writer.member("headers", headers) }
        case .bridge(let route):
            writer.member("action", DecisionAction.bridge)
            route.writeMembers(to: &writer)
        case .answer:
            writer.member("action", DecisionAction.answer)
        }
        writer.closeObject()
    }
}

extension CallerID: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(uri: try json.optionalString("uri"), displayName: try json.optionalString("display_name"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("uri", uri)
        writer.member("display_name", displayName)
        writer.closeObject()
    }
}

extension BridgeTarget: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(uri: try json.string("uri"), ringTimeoutMs: try json.optionalInt("ring_timeout_ms"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("uri", uri)
        writer.member("ring_timeout_ms", ringTimeoutMs)
        writer.closeObject()
    }
}

extension BridgeRoute {
    /// Reads the route's members from the decision object that also holds `action`.
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(targets: try json.members("targets"), mode: try json.optionalEnum("mode") ?? .serial,
                  callerId: try json.optionalMember("caller_id"), headers: try json.stringMap("headers"),
                  onFailure: try json.optionalEnum("on_failure") ?? .end, media: try json.optionalEnum("media") ?? .relay)
    }

    /// The route's members, written into the decision object that holds `action`.
    func writeMembers(to writer: inout JSONWriter) {
        writer.member("targets", targets)
        writer.member("mode", mode)
        writer.member("caller_id", callerId)
        if !headers.isEmpty { writer.member("headers", headers) }
        if onFailure != .end { writer.member("on_failure", onFailure) }
        if media != .relay { writer.member("media", media) }
    }
}
