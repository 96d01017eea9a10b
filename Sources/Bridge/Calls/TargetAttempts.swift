import BusSchema

/// The B targets a call tries (a bridge decision's, an originate's party B, a transfer target), how far
/// through them it is, and which failure to report once every one failed. Pure: `CallFlow` asks it.
struct TargetAttempts: Sendable {
    /// How a B leg that answers is joined to the party waiting for it.
    enum Join: Sendable {
        /// Inbound: answer the caller's INVITE with B's answer (or, for a caller without SDP, B's offer).
        case answerCaller
        /// 3PCC: re-INVITE this leg with B's offer; its answer goes into B's ACK.
        case reinvite(waiting: LegID)
    }

    /// The targets to try: the decision's, and the contacts of a target's 3xx inserted where they are tried next.
    private(set) var route: BridgeRoute
    let join: Join
    /// Index of the next serial target to try.
    private var next: Int
    /// Contacts of 3xx answers taken as targets so far.
    private var redirects = 0
    /// The failure to report when every target failed, as the caller gets it.
    private(set) var best: CallerFailure?

    /// At most this many targets a call takes from its B legs' 3xx answers, so redirects that point at
    /// each other (or fan out) cannot keep a call ringing for ever.
    static let maxRedirectTargets = 5

    /// `dialled` targets were called already (a transfer calls its one target itself).
    init(route: BridgeRoute, join: Join, dialled: Int = 0) {
        self.route = route
        self.join = join
        next = dialled
    }

    /// The targets to call first, with their attempt numbers from 1: every one in parallel, the first in serial.
    mutating func start() -> [(target: BridgeTarget, attempt: Int)] {
        switch route.mode {
        case .parallel:
            next = route.targets.count
            return route.targets.enumerated().map { (target: $1, attempt: $0 + 1) }
        case .serial:
            return nextSerial().map { [$0] } ?? []
        }
    }

    /// The next serial target, if one is left.
    mutating func nextSerial() -> (target: BridgeTarget, attempt: Int)? {
        guard next < route.targets.count else { return nil }
        next += 1
        return (route.targets[next - 1], next)
    }

    /// A target's 3xx (RFC 3261 §8.1.3.4): its contacts, in the order given, are the next targets tried.
    /// The bridge follows a redirect itself, as a carrier SBC does: relayed, the 3xx would have the proxy
    /// in front send the caller to targets no business logic chose and no destination policy screened.
    mutating func redirect(to uris: [String]) {
        let taken = uris.prefix(max(Self.maxRedirectTargets - redirects, 0))
        redirects += taken.count
        route.targets.insert(contentsOf: taken.map { BridgeTarget(uri: $0) }, at: next)
    }

    /// A target failed: its answer, as the caller would get it, is kept when it is the best to report so far.
    mutating func failed(status: Int, reason: String) {
        let failure = CallerFailure(status: status, reason: reason)
        if let best, Self.rank(failure.status) <= Self.rank(best.status) { return }
        best = failure
    }

    /// RFC 3261 §16.7 in short: a 6xx beats everything, busy beats other refusals, a 5xx comes last.
    private static func rank(_ status: Int) -> Int {
        switch status {
        case 600...699: 4
        case 486: 3
        case 400...499: 2
        default: 1
        }
    }
}

/// A B leg's final failure as the caller gets it. Most statuses pass unchanged; three would mislead the
/// caller or the proxy in front of the bridge, so the caller gets another status and a `Reason` header
/// (RFC 3326) naming the B leg's own:
/// - 5xx → 480: a 5xx from the bridge reads as the bridge failing, and the proxy (openser-cfg's
///   BRIDGE_FAILURE) fails over to the next bridge, which dials every target again; and a 503 is not
///   to be relayed at all (RFC 3261 §16.7). The bridge's own 503 (overload, shutdown) stays a 503.
/// - 401/407 → 403: the challenge is for credentials of the B side, which the caller does not have
///   and the bridge does not relay.
/// - 3xx → 480: a redirect the bridge did not follow (no usable contact, or the call's limit).
///
/// ```swift
/// CallerFailure(status: 503, reason: "Service Unavailable")
/// // status 480 "Temporarily Unavailable", reasonHeader "SIP;cause=503;text=\"Service Unavailable\""
/// ```
struct CallerFailure: Equatable, Sendable {
    let status: Int
    let reason: String
    /// The B leg's own status (the call's end cause is read from it) and reason phrase.
    let legStatus: Int
    let legReason: String
    /// The `Reason` header value naming the B leg's status, when the caller gets another.
    let reasonHeader: String?

    init(status: Int, reason: String) {
        legStatus = status
        legReason = reason
        let mapped: (status: Int, reason: String)? = switch status {
        case 300...399, 500...599: (480, "Temporarily Unavailable")
        case 401, 407: (403, "Forbidden")
        default: nil
        }
        guard let mapped else {
            (self.status, self.reason, reasonHeader) = (status, reason, nil)
            return
        }
        // A quoted-string: backslash and double quote escaped (RFC 3261 §25.1).
        var text = ""
        for character in reason {
            if character == "\\" || character == "\"" { text.append("\\") }
            text.append(character)
        }
        (self.status, self.reason, reasonHeader) = (mapped.status, mapped.reason, "SIP;cause=\(status);text=\"\(text)\"")
    }
}
