import Foundation

/// One PBX extension: the user it answers for and what happens to its calls.
///
/// ```swift
/// PBXExtension(user: "bob", forwardBusy: "carol", forwardNoAnswer: "voicemail", noAnswerSeconds: 15)
/// ```
///
/// A forward target is a `sip:`/`sips:`/`tel:` URI, or a bare name: a hunt group's, else a user of the called
/// domain (`carol` → `sip:carol@<domain>`).
public struct PBXExtension: Codable, Equatable, Sendable {
    public var user: String
    /// The URI to ring; nil: `sip:<user>@<domain>` (Kamailio finds the registered phone).
    public var contact: String?
    /// Do not disturb: calls are treated as busy (forwarded on busy, else 486).
    public var dnd: Bool
    public var forwardAlways: String?
    public var forwardBusy: String?
    public var forwardNoAnswer: String?
    /// How long the extension rings before `forwardNoAnswer` takes the call.
    public var noAnswerSeconds: Int?
    /// Where calls go when the user is not registered (the proxy answers 404/408/480 without ringing).
    public var forwardUnreachable: String?
    /// Open hours; outside them the schedule's `closed` answer takes the call.
    public var schedule: Schedule?

    /// Seconds an extension rings before its no-answer forward when no `noAnswerSeconds` is set.
    public static let defaultNoAnswerSeconds = 20

    public init(user: String, contact: String? = nil, dnd: Bool = false, forwardAlways: String? = nil, forwardBusy: String? = nil,
                forwardNoAnswer: String? = nil, noAnswerSeconds: Int? = nil, forwardUnreachable: String? = nil, schedule: Schedule? = nil) {
        self.user = user
        self.contact = contact
        self.dnd = dnd
        self.forwardAlways = forwardAlways
        self.forwardBusy = forwardBusy
        self.forwardNoAnswer = forwardNoAnswer
        self.noAnswerSeconds = noAnswerSeconds
        self.forwardUnreachable = forwardUnreachable
        self.schedule = schedule
    }

    enum CodingKeys: String, CodingKey {
        case user, contact, dnd, schedule
        case forwardAlways = "forward_always", forwardBusy = "forward_busy", forwardNoAnswer = "forward_no_answer"
        case noAnswerSeconds = "no_answer_seconds", forwardUnreachable = "forward_unreachable"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // The API names the user in its path: a body without one gets it there.
        self.init(user: try container.decodeIfPresent(String.self, forKey: .user) ?? "", contact: try container.decodeIfPresent(String.self, forKey: .contact),
                  dnd: try container.decodeIfPresent(Bool.self, forKey: .dnd) ?? false,
                  forwardAlways: try container.decodeIfPresent(String.self, forKey: .forwardAlways),
                  forwardBusy: try container.decodeIfPresent(String.self, forKey: .forwardBusy),
                  forwardNoAnswer: try container.decodeIfPresent(String.self, forKey: .forwardNoAnswer),
                  noAnswerSeconds: try container.decodeIfPresent(Int.self, forKey: .noAnswerSeconds),
                  forwardUnreachable: try container.decodeIfPresent(String.self, forKey: .forwardUnreachable),
                  schedule: try container.decodeIfPresent(Schedule.self, forKey: .schedule))
    }

    /// What is wrong with the rule, or nil.
    public var problem: String? {
        if let problem = PBXName.problem(user, what: "user") { return problem }
        if let contact {
            if !contact.contains(":") { return "contact \(contact.debugDescription) is not a sip:, sips: or tel: URI" }
            if let problem = PBXTarget.problem(contact, what: "contact") { return problem }
        }
        for (what, target) in [("forward_always", forwardAlways), ("forward_busy", forwardBusy), ("forward_no_answer", forwardNoAnswer),
                               ("forward_unreachable", forwardUnreachable)] {
            if let target, let problem = PBXTarget.problem(target, what: what) { return problem }
        }
        if let noAnswerSeconds, !PBXRing.seconds.contains(noAnswerSeconds) {
            return "no_answer_seconds \(noAnswerSeconds) is outside \(PBXRing.seconds.lowerBound)...\(PBXRing.seconds.upperBound)"
        }
        return schedule?.problem
    }
}

/// How a hunt group rings its members.
public enum HuntStrategy: String, Codable, Equatable, Sendable, CaseIterable {
    /// One after the other, in the listed order, each for `ring_seconds`.
    case sequential
    /// Every member at once; the first to answer takes the call.
    case simultaneous
    /// One after the other, starting one member further on each call (the rotation is kept in the database).
    case roundRobin = "round_robin"
}

/// A hunt group: a name that rings its members in turn or together, and where the call goes when none answers.
///
/// ```swift
/// PBXGroup(name: "sales", strategy: .roundRobin, members: ["alice", "bob", "sip:carol@pbx.example"], ringSeconds: 10)
/// ```
public struct PBXGroup: Codable, Equatable, Sendable {
    public var name: String
    public var strategy: HuntStrategy
    /// Bare names (`sip:<name>@<domain>`) or URIs.
    public var members: [String]
    /// How long each member rings (sequential, round robin) or the group rings (simultaneous).
    public var ringSeconds: Int
    /// Where the call goes when no member answers; nil: the caller gets the failure.
    public var overflow: String?

    public init(name: String, strategy: HuntStrategy, members: [String], ringSeconds: Int = 20, overflow: String? = nil) {
        self.name = name
        self.strategy = strategy
        self.members = members
        self.ringSeconds = ringSeconds
        self.overflow = overflow
    }

    enum CodingKeys: String, CodingKey {
        case name, strategy, members, overflow
        case ringSeconds = "ring_seconds"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try container.decodeIfPresent(String.self, forKey: .name) ?? "", strategy: try container.decode(HuntStrategy.self, forKey: .strategy),
                  members: try container.decode([String].self, forKey: .members),
                  ringSeconds: try container.decodeIfPresent(Int.self, forKey: .ringSeconds) ?? 20,
                  overflow: try container.decodeIfPresent(String.self, forKey: .overflow))
    }

    /// The bridge dials at most this many targets for one decision (`BridgeRoute.maxTargets`).
    public static let maxMembers = 16

    public var problem: String? {
        if let problem = PBXName.problem(name, what: "group name") { return problem }
        if members.isEmpty { return "group \(name) needs at least one member" }
        if members.count > Self.maxMembers { return "group \(name) has \(members.count) members, more than \(Self.maxMembers)" }
        for member in members {
            if let problem = PBXTarget.problem(member, what: "member") { return problem }
        }
        if !PBXRing.seconds.contains(ringSeconds) {
            return "ring_seconds \(ringSeconds) is outside \(PBXRing.seconds.lowerBound)...\(PBXRing.seconds.upperBound)"
        }
        if let overflow, let problem = PBXTarget.problem(overflow, what: "overflow") { return problem }
        return nil
    }
}

/// Open hours in a time zone: the days of the week and a time span (`closes` before `opens` runs past midnight,
/// into the next day). Outside them `closed` answers.
///
/// ```json
/// {"time_zone":"Europe/Paris","days":["mon","tue","wed","thu","fri"],"opens":"09:00","closes":"17:30",
///  "closed":{"status":480,"reason":"Closed"}}
/// ```
public struct Schedule: Codable, Equatable, Sendable {
    /// An IANA time zone (`Europe/Paris`), so daylight saving time moves the hours with the clocks.
    public var timeZone: String
    public var days: [Weekday]
    /// `HH:MM`, 24-hour.
    public var opens: String
    public var closes: String
    public var closed: ClosedAnswer

    public init(timeZone: String, days: [Weekday], opens: String, closes: String, closed: ClosedAnswer = ClosedAnswer()) {
        self.timeZone = timeZone
        self.days = days
        self.opens = opens
        self.closes = closes
        self.closed = closed
    }

    enum CodingKeys: String, CodingKey {
        case days, opens, closes, closed
        case timeZone = "time_zone"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(timeZone: try container.decode(String.self, forKey: .timeZone), days: try container.decode([Weekday].self, forKey: .days),
                  opens: try container.decode(String.self, forKey: .opens), closes: try container.decode(String.self, forKey: .closes),
                  closed: try container.decodeIfPresent(ClosedAnswer.self, forKey: .closed) ?? ClosedAnswer())
    }

    public var problem: String? {
        if TimeZone(identifier: timeZone) == nil { return "time_zone \(timeZone.debugDescription) is not an IANA time zone (is tzdata installed?)" }
        if days.isEmpty { return "schedule needs at least one day" }
        for (what, time) in [("opens", opens), ("closes", closes)] where Self.minutes(time) == nil {
            return "\(what) \(time.debugDescription) is not a time HH:MM"
        }
        if opens == closes { return "opens and closes are both \(opens)" }
        return closed.problem
    }

    /// Whether `date` falls in the open hours. An overnight span (22:00-06:00) belongs to the day it opens on.
    public func isOpen(at date: Date) -> Bool {
        guard let zone = TimeZone(identifier: timeZone), let opening = Self.minutes(opens), let closing = Self.minutes(closes) else { return false }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let parts = calendar.dateComponents([.weekday, .hour, .minute], from: date)
        guard let weekday = parts.weekday.flatMap(Weekday.init(calendarWeekday:)), let hour = parts.hour, let minute = parts.minute else { return false }
        let now = hour * 60 + minute
        if opening < closing { return days.contains(weekday) && now >= opening && now < closing }
        // Overnight: open from `opens` on a listed day, and until `closes` on the morning after one.
        return (days.contains(weekday) && now >= opening) || (days.contains(weekday.previous) && now < closing)
    }

    /// Minutes since midnight of `HH:MM`, or nil.
    static func minutes(_ text: String) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ $0.count == 2 }), let hours = Int(parts[0]), let minutes = Int(parts[1]),
              (0...23).contains(hours), (0...59).contains(minutes) else { return nil }
        return hours * 60 + minutes
    }
}

public enum Weekday: String, Codable, Equatable, Sendable, CaseIterable {
    case mon, tue, wed, thu, fri, sat, sun

    /// From Foundation's weekday number (1 = Sunday).
    init?(calendarWeekday: Int) {
        guard (1...7).contains(calendarWeekday) else { return nil }
        self = Self.allCases[(calendarWeekday + 5) % 7]
    }

    var previous: Weekday { Self.allCases[(Self.allCases.firstIndex(of: self)! + 6) % 7] }

    /// `mon-fri`, `sat,sun`, `mon,wed-fri` → the days; nil when a part is not a day or a range of days.
    public static func parseList(_ text: String) -> [Weekday]? {
        var days: [Weekday] = []
        for part in text.lowercased().split(separator: ",") {
            let ends = part.split(separator: "-")
            guard (1...2).contains(ends.count), let first = Weekday(rawValue: String(ends[0])),
                  let last = Weekday(rawValue: String(ends[ends.count - 1])) else { return nil }
            var day = first
            while true {
                if !days.contains(day) { days.append(day) }
                if day == last { break }
                day = Self.allCases[(Self.allCases.firstIndex(of: day)! + 1) % 7]
            }
        }
        return days.isEmpty ? nil : days
    }
}

/// What a closed schedule answers: a forward, or a final status (default 480 "Temporarily Unavailable").
public struct ClosedAnswer: Codable, Equatable, Sendable {
    public var forward: String?
    public var status: Int
    public var reason: String?

    public init(forward: String? = nil, status: Int = 480, reason: String? = nil) {
        self.forward = forward
        self.status = status
        self.reason = reason
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(forward: try container.decodeIfPresent(String.self, forKey: .forward),
                  status: try container.decodeIfPresent(Int.self, forKey: .status) ?? 480,
                  reason: try container.decodeIfPresent(String.self, forKey: .reason))
    }

    var problem: String? {
        if let forward, let problem = PBXTarget.problem(forward, what: "closed forward") { return problem }
        // A 5xx would have the proxy in front fail over to another bridge (RFC 3261 §16.7), which would ask again.
        if !(400...499).contains(status) && !(600...699).contains(status) { return "closed status \(status) is not a 4xx or 6xx" }
        if let reason, reason.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return "closed reason contains a control character" }
        return nil
    }
}

enum PBXRing {
    /// Ring times a rule may ask for; the bridge refuses a ring timeout under 1 s or over 10 min.
    static let seconds = 1...600
}

enum PBXName {
    /// A user or group name: what may stand before the `@` of a SIP URI without escaping.
    static func problem(_ name: String, what: String) -> String? {
        if name.isEmpty || name.count > 64 { return "\(what) \(name.debugDescription) must be 1 to 64 characters" }
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_.+"))
        if name.unicodeScalars.contains(where: { !$0.isASCII || !allowed.contains($0) }) {
            return "\(what) \(name.debugDescription) may hold only ASCII letters, digits and - _ . +"
        }
        return nil
    }
}

enum PBXTarget {
    /// A target is a bare name or a sip:, sips: or tel: URI without characters that would break out of `<...>`.
    static func problem(_ target: String, what: String) -> String? {
        guard target.contains(":") else { return PBXName.problem(target, what: what) }
        guard target.hasPrefix("sip:") || target.hasPrefix("sips:") || target.hasPrefix("tel:") else {
            return "\(what) \(target.debugDescription) is not a name or a sip:, sips: or tel: URI"
        }
        if target.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F || $0 == "<" || $0 == ">" || $0 == "\"" }) {
            return "\(what) \(target.debugDescription) contains forbidden characters"
        }
        return nil
    }
}

/// Every rule, as `pbx-rules list --json` and `GET /api/pbx` give them.
public struct PBXRules: Codable, Equatable, Sendable {
    public var extensions: [PBXExtension]
    public var groups: [PBXGroup]

    public init(extensions: [PBXExtension], groups: [PBXGroup]) {
        self.extensions = extensions
        self.groups = groups
    }
}
