/// The session timer of one dialog (RFC 4028), from this side's point of view: what to put in requests and 2xx
/// responses, the interval and refresher the two sides agreed on, and when this side must refresh the session or
/// may consider it dead.
///
/// A pure state machine: the owner feeds it the dialog's requests and responses and schedules ``nextEvent``.
///
/// ```swift
/// var timer = SessionTimer(role: .uac, configuration: .init())
/// invite.headers.add(contentsOf: timer.requestHeaders())          // Supported, Session-Expires, Min-SE
/// timer.received2xx(ok)                                           // the agreed interval and refresher
/// schedule(timer.nextEvent)                                       // .refresh at interval/2, or .expire
/// ```
public struct SessionTimer: Sendable, Hashable {
    /// Which side sends the refreshes, as the `refresher` parameter names it.
    public enum Refresher: String, Sendable, Hashable {
        case uac
        case uas
    }

    /// This side's role in the dialog: it sent the INVITE that made it (uac) or answered it (uas).
    public enum Role: String, Sendable, Hashable {
        case uac
        case uas
    }

    /// What this side asks for and accepts.
    public struct Configuration: Sendable, Hashable {
        /// The interval asked for in requests, and given in 2xx when the other side asked for none (seconds).
        public var interval: Int
        /// The smallest interval accepted (Min-SE); RFC 4028 §4 sets 90 s as the floor.
        public var minimum: Int

        public init(interval: Int = 1800, minimum: Int = 90) {
            precondition(minimum >= 90 && interval >= minimum, "RFC 4028 §4: 90 <= Min-SE <= Session-Expires")
            self.interval = interval
            self.minimum = minimum
        }
    }

    /// What the owner does when ``nextEvent``'s delay has passed since the last refresh.
    public enum Event: Sendable, Hashable {
        /// Send a refresh: UPDATE if the peer allows it, else a re-INVITE (RFC 4028 §7.4).
        case refresh
        /// No refresh came in time: the session is over; send BYE (RFC 4028 §10).
        case expire
    }

    public let role: Role
    public let configuration: Configuration
    /// The agreed interval in seconds; nil while none is agreed (or none ever will be).
    public private(set) var interval: Int?
    /// Whether this side refreshes; nil while no interval is agreed. Kept apart from the `refresher` parameter,
    /// which names a side by its role in the transaction that carries it (§4), not in the dialog: in a refresh
    /// the UAS of the initial INVITE sends, `refresher=uac` names it.
    private var localRefresher: Bool?
    /// The largest Min-SE the peer asked for (in a 422 or a request): later requests ask for no less (§7.1).
    public private(set) var peerMinimum: Int?

    public init(role: Role, configuration: Configuration = Configuration()) {
        self.role = role
        self.configuration = configuration
    }

    /// Who refreshes, by role in the dialog; nil while no interval is agreed.
    public var refresher: Refresher? {
        localRefresher.map { $0 == (role == .uac) ? .uac : .uas }
    }

    /// Whether this side sends the refreshes.
    public var refreshesLocally: Bool { localRefresher == true }

    /// When to act, counted from the last refresh (or the 2xx that agreed the interval): a refresher refreshes
    /// at half the interval (§7.4); the other side gives up before it ends, by a third or 32 s, whichever is
    /// less (§10). Nil without an agreed interval.
    public var nextEvent: (after: Duration, event: Event)? {
        guard let interval else { return nil }
        if refreshesLocally { return (.seconds(interval) / 2, .refresh) }
        return (.seconds(interval - min(32, interval / 3)), .expire)
    }

    // MARK: - Requests this side sends (RFC 4028 §7)

    /// The header fields of a session refresh request this side sends, the initial INVITE included:
    /// `Supported: timer`, the interval it asks for (the agreed one, with its refresher, in a refresh) and
    /// Min-SE. This side is the request's UAC, whichever side sent the dialog's initial INVITE.
    public func requestHeaders() -> [SIPHeader] {
        let minimum = max(configuration.minimum, peerMinimum ?? 0)
        var expires = "\(max(interval ?? configuration.interval, minimum))"
        if let localRefresher { expires += ";refresher=\(localRefresher ? "uac" : "uas")" }
        return [SIPHeader(name: "Supported", value: "timer"), SIPHeader(name: "Session-Expires", value: expires),
                SIPHeader(name: "Min-SE", value: "\(minimum)")]
    }

    /// A 2xx to a session refresh request this side sent (§7.2). With Session-Expires, its interval and
    /// refresher hold (a refresher missing from it is taken as uac, this side); without, the peer does not do session
    /// timers, and this side refreshes itself at the interval it asked for, so a dead peer is still found.
    public mutating func received2xx(_ response: SIPResponse) {
        if let (seconds, named) = Self.sessionExpires(in: response) {
            interval = seconds
            localRefresher = (named ?? .uac) == .uac
        } else {
            interval = max(interval ?? configuration.interval, configuration.minimum, peerMinimum ?? 0)
            localRefresher = true
        }
    }

    /// A 422 to a request this side sent (§7.3): the interval to ask for next, from its Min-SE; nil when the 422
    /// names none, or none larger than what was asked (retrying would loop).
    public mutating func received422(_ response: SIPResponse) -> Int? {
        guard let value = response.headers.first(.minSE).flatMap(Self.deltaSeconds),
              value > max(interval ?? configuration.interval, peerMinimum ?? 0) else { return nil }
        peerMinimum = value
        return value
    }

    // MARK: - Requests this side answers (RFC 4028 §9)

    /// A session refresh request from the peer, the initial INVITE included: the header fields for its 2xx, or a
    /// 422 when it asks for less than this side's minimum and supports timers (one that does not gets the
    /// minimum instead: it cannot understand a 422; RFC 4028 errata 1687). The refresher is the one asked for;
    /// if none, the one agreed before; if none, the peer when it supports timers (it sends the refreshes it
    /// knows how to send), else this side.
    public mutating func received(_ request: SIPRequest) -> Result<[SIPHeader], SIPStatusError> {
        let supportsTimer = request.headers.namesOptionTag("timer", in: "Supported") || request.headers.namesOptionTag("timer", in: "Require")
        let asked = Self.sessionExpires(in: request)
        let peerMin = request.headers.first(.minSE).flatMap(Self.deltaSeconds)
        if let peerMin { peerMinimum = max(peerMinimum ?? 0, peerMin) }
        let minimum = max(configuration.minimum, peerMin ?? 0)
        var seconds = asked?.seconds ?? interval ?? configuration.interval
        if seconds < minimum {
            guard !supportsTimer else {
                return .failure(SIPStatusError(status: 422, reason: "Session Interval Too Small",
                                               headers: [SIPHeader(name: "Min-SE", value: "\(minimum)")]))
            }
            seconds = minimum
        }
        // This side is the request's UAS: `refresher=uac` names the peer.
        let peerChosen = asked?.refresher.map { $0 == .uac } ?? localRefresher.map(!) ?? supportsTimer
        // A peer that does not support timers cannot be made the refresher.
        let peerRefreshes = peerChosen && supportsTimer
        interval = seconds
        localRefresher = !peerRefreshes
        var headers = [SIPHeader(name: "Session-Expires", value: "\(seconds);refresher=\(peerRefreshes ? "uac" : "uas")")]
        // §9: a UAS that makes the UAC the refresher requires the extension of it.
        if peerRefreshes { headers.append(SIPHeader(name: "Require", value: "timer")) }
        return .success(headers)
    }

    // MARK: - Header fields

    /// `Session-Expires: delta-seconds *(;se-params)` (§4): the interval and the refresher it names, if any.
    static func sessionExpires(in message: some SIPMessageFields) -> (seconds: Int, refresher: Refresher?)? {
        guard let value = message.headers.first(.sessionExpires) else { return nil }
        return ValueScanner.scan(value) { scanner in
            scanner.skipWhitespace()
            guard let seconds = deltaSeconds(scanner.read(while: Grammar.isDigit)), let parameters = scanner.readParameters()
            else { return nil }
            return (seconds, parameters.value(for: "refresher").flatMap { Refresher(rawValue: $0.lowercased()) })
        }
    }

    /// `delta-seconds`: digits, at most a year's worth so arithmetic on it cannot overflow.
    static func deltaSeconds(_ text: String) -> Int? {
        let trimmed = Grammar.trimmed(text)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 9, trimmed.utf8.allSatisfy(Grammar.isDigit) else { return nil }
        return Int(trimmed)
    }
}
