import BusSchema
import Foundation
import Testing
@testable import PBX

@Suite struct PBXRouterTests {
    static let domain = "switchboard.local"
    static let noon = Date(timeIntervalSince1970: 1_780_000_000)  // a Thursday, 2026-05-28 20:26:40 UTC

    static func offer(to user: String, failure: RouteFailure? = nil) -> CallOffer {
        CallOffer(sipCallId: "x@h", requestUri: Address(uri: "sip:\(user)@10.0.0.1:5080", user: user, host: "10.0.0.1"),
                  from: Address(uri: "sip:alice@\(domain)", user: "alice", host: domain),
                  to: Address(uri: "sip:\(user)@\(domain)", user: user, host: domain),
                  source: Source(address: "127.0.0.1", port: 5060, transport: "udp", peer: "127.0.0.1"),
                  authUser: "alice", headers: [:], sdp: nil, failure: failure)
    }

    static func failure(_ status: Int, _ cause: EndCause, ringMs: Int = 1500, step: Int = 1) -> RouteFailure {
        RouteFailure(status: status, reason: "R", cause: cause, ringMs: ringMs, targets: [Target(uri: "sip:bob@\(domain)")], step: step)
    }

    func decide(_ router: PBXRouter, _ offer: CallOffer, at date: Date = Self.noon, registered: Bool? = nil,
                turn: Int = 0) -> PBXDecision {
        router.decide(offer, at: date, domain: Self.domain, registered: { _ in registered }, takeTurn: { _ in turn })
    }

    static func bridge(_ uris: [String], ringMs: Int? = nil, mode: ForkMode = .serial, ask: Bool = false) -> Decision {
        .bridge(BridgeRoute(targets: uris.map { BridgeTarget(uri: $0, ringTimeoutMs: ringMs) }, mode: mode, onFailure: ask ? .ask : .end))
    }

    let bob = PBXExtension(user: "bob", forwardBusy: "carol", forwardNoAnswer: "sip:vm@voicemail.example", noAnswerSeconds: 5,
                           forwardUnreachable: "dave")

    @Test func anExtensionWithFailureForwardsRingsAndAsks() {
        let result = decide(PBXRouter(extensions: [bob], groups: []), Self.offer(to: "bob"))
        #expect(result == PBXDecision(decision: Self.bridge(["sip:bob@switchboard.local"], ringMs: 5000, ask: true), rule: .extensionRing))
    }

    @Test func aUserWithoutRulesIsRungPlainly() {
        #expect(decide(PBXRouter(extensions: [bob], groups: []), Self.offer(to: "erin")).decision == Self.bridge(["sip:erin@switchboard.local"]))
        let noForwards = PBXRouter(extensions: [PBXExtension(user: "frank", contact: "sip:frank@10.0.0.9")], groups: [])
        #expect(decide(noForwards, Self.offer(to: "frank")).decision == Self.bridge(["sip:frank@10.0.0.9"]), "no forward, no ask")
    }

    @Test(arguments: [
        (486, EndCause.busy, 1500, "sip:carol@switchboard.local", PBXDecision.Rule.forwardBusy),
        (600, .busy, 0, "sip:carol@switchboard.local", .forwardBusy),
        (480, .noAnswer, 5000, "sip:vm@voicemail.example", .forwardNoAnswer),
        (480, .noAnswer, 0, "sip:dave@switchboard.local", .unreachable),
        (404, .unavailable, 0, "sip:dave@switchboard.local", .unreachable),
        (408, .noAnswer, 0, "sip:dave@switchboard.local", .unreachable),
    ])
    func theFailureStepPicksTheForwardForItsCause(status: Int, cause: EndCause, ringMs: Int, target: String, rule: PBXDecision.Rule) {
        let result = decide(PBXRouter(extensions: [bob], groups: []), Self.offer(to: "bob", failure: Self.failure(status, cause, ringMs: ringMs)))
        #expect(result == PBXDecision(decision: Self.bridge([target]), rule: rule))
    }

    @Test func aFailureNoRuleTakesReachesTheCaller() {
        let router = PBXRouter(extensions: [PBXExtension(user: "bob", forwardBusy: "carol")], groups: [])
        #expect(decide(router, Self.offer(to: "bob", failure: Self.failure(603, .rejected))).decision == .reject(status: 603, reason: "R"))
        // A 5xx would have the proxy fail over to another bridge: the caller gets 480, as from the bridge itself.
        #expect(decide(router, Self.offer(to: "bob", failure: Self.failure(503, .unavailable))).decision
            == .reject(status: 480, reason: "Temporarily Unavailable"))
        // Only the extension's own route asks: a later step is relayed, so forwards cannot loop.
        #expect(decide(router, Self.offer(to: "bob", failure: Self.failure(486, .busy, step: 2))).decision == .reject(status: 486, reason: "R"))
    }

    @Test func forwardAlwaysAndDNDComeBeforeRinging() {
        let always = PBXExtension(user: "bob", forwardAlways: "sip:+12025550100@gw.example", forwardBusy: "carol")
        #expect(decide(PBXRouter(extensions: [always], groups: []), Self.offer(to: "bob"))
            == PBXDecision(decision: Self.bridge(["sip:+12025550100@gw.example"]), rule: .forwardAlways))
        let dnd = PBXExtension(user: "bob", dnd: true, forwardAlways: "x", forwardBusy: "carol")
        #expect(decide(PBXRouter(extensions: [dnd], groups: []), Self.offer(to: "bob"))
            == PBXDecision(decision: Self.bridge(["sip:carol@switchboard.local"]), rule: .dnd))
        let dndOnly = PBXExtension(user: "bob", dnd: true)
        #expect(decide(PBXRouter(extensions: [dndOnly], groups: []), Self.offer(to: "bob")).decision == .reject(status: 486, reason: "Busy Here"))
    }

    @Test func aKnownUnregisteredUserIsForwardedWithoutRinging() {
        let router = PBXRouter(extensions: [bob], groups: [])
        #expect(decide(router, Self.offer(to: "bob"), registered: false).rule == .unreachable)
        #expect(decide(router, Self.offer(to: "bob"), registered: true).rule == .extensionRing)
        #expect(decide(router, Self.offer(to: "bob"), registered: nil).rule == .extensionRing, "unknown: ring, and learn from the failure")
    }

    // MARK: Hunt groups

    let members = ["alice", "bob", "sip:carol@pbx.example"]

    @Test func sequentialAndSimultaneousGroups() {
        let sequential = PBXGroup(name: "sales", strategy: .sequential, members: members, ringSeconds: 5)
        #expect(decide(PBXRouter(extensions: [], groups: [sequential]), Self.offer(to: "sales")).decision
            == Self.bridge(["sip:alice@switchboard.local", "sip:bob@switchboard.local", "sip:carol@pbx.example"], ringMs: 5000))
        let together = PBXGroup(name: "sales", strategy: .simultaneous, members: members, ringSeconds: 30, overflow: "sip:vm@vm.example")
        #expect(decide(PBXRouter(extensions: [], groups: [together]), Self.offer(to: "sales")).decision
            == Self.bridge(["sip:alice@switchboard.local", "sip:bob@switchboard.local", "sip:carol@pbx.example"], ringMs: 30000,
                           mode: .parallel, ask: true))
    }

    @Test func roundRobinStartsAtTheGroupsTurn() {
        let group = PBXGroup(name: "sales", strategy: .roundRobin, members: members, ringSeconds: 5)
        let router = PBXRouter(extensions: [], groups: [group])
        var turns: [String] = []
        for turn in 0..<4 {
            guard case .bridge(let route) = decide(router, Self.offer(to: "sales"), turn: turn).decision else { Issue.record("no bridge"); return }
            turns.append(route.targets.map(\.uri).joined(separator: " "))
        }
        #expect(turns == [
            "sip:alice@switchboard.local sip:bob@switchboard.local sip:carol@pbx.example",
            "sip:bob@switchboard.local sip:carol@pbx.example sip:alice@switchboard.local",
            "sip:carol@pbx.example sip:alice@switchboard.local sip:bob@switchboard.local",
            "sip:alice@switchboard.local sip:bob@switchboard.local sip:carol@pbx.example",
        ])
        // Only round-robin groups take a turn.
        var taken = 0
        let sequential = PBXRouter(extensions: [], groups: [PBXGroup(name: "sales", strategy: .sequential, members: members)])
        _ = sequential.decide(Self.offer(to: "sales"), at: Self.noon, domain: Self.domain, registered: { _ in nil }, takeTurn: { _ in taken += 1; return 0 })
        #expect(taken == 0)
    }

    @Test func aGroupsOverflowTakesItsFailureAndAForwardIntoAGroupDoesNotAsk() {
        let group = PBXGroup(name: "sales", strategy: .sequential, members: ["alice"], ringSeconds: 5, overflow: "bob")
        let router = PBXRouter(extensions: [PBXExtension(user: "erin", forwardBusy: "sales")], groups: [group])
        #expect(decide(router, Self.offer(to: "sales", failure: Self.failure(480, .noAnswer, ringMs: 5000)))
            == PBXDecision(decision: Self.bridge(["sip:bob@switchboard.local"]), rule: .overflow))
        #expect(decide(router, Self.offer(to: "erin", failure: Self.failure(486, .busy)))
            == PBXDecision(decision: Self.bridge(["sip:alice@switchboard.local"], ringMs: 5000), rule: .forwardBusy))
    }

    // MARK: Schedules

    /// Open 09:00-17:00 Monday to Friday in Paris; closed forwards to the night line.
    let office = PBXExtension(user: "desk", schedule: Schedule(timeZone: "Europe/Paris", days: Weekday.parseList("mon-fri")!,
                                                               opens: "09:00", closes: "17:00",
                                                               closed: ClosedAnswer(status: 480, reason: "Closed")))

    static func utc(_ text: String) -> Date { try! Date(text, strategy: .iso8601) }

    @Test(arguments: [
        ("2026-01-14T07:59:00Z", false),  // Wednesday 08:59 in Paris (UTC+1, winter)
        ("2026-01-14T08:00:00Z", true),   // 09:00
        ("2026-01-14T15:59:00Z", true),   // 16:59
        ("2026-01-14T16:00:00Z", false),  // 17:00
        ("2026-07-15T07:00:00Z", true),   // Wednesday 09:00 in summer time (UTC+2): the hours move with the clocks
        ("2026-07-15T15:00:00Z", false),  // 17:00 CEST
        ("2026-01-17T10:00:00Z", false),  // Saturday
        ("2026-03-30T06:59:00Z", false),  // Monday after the change to summer time, 08:59 CEST
        ("2026-03-30T07:00:00Z", true),
    ])
    func scheduleFollowsTheTimeZoneAndDST(at: String, open: Bool) {
        let router = PBXRouter(extensions: [office], groups: [])
        let result = decide(router, Self.offer(to: "desk"), at: Self.utc(at))
        #expect(result.rule == (open ? .extensionRing : .closed), "\(at)")
        if !open { #expect(result.decision == .reject(status: 480, reason: "Closed")) }
    }

    @Test func theSameInstantIsOpenInOneZoneAndClosedInAnother() {
        let instant = Self.utc("2026-01-14T14:00:00Z")  // 15:00 in Paris, 09:00 in New York, 23:00 in Tokyo
        for (zone, open) in [("Europe/Paris", true), ("America/New_York", true), ("Asia/Tokyo", false)] {
            let schedule = Schedule(timeZone: zone, days: [.wed], opens: "09:00", closes: "17:00")
            #expect(schedule.isOpen(at: instant) == open, "\(zone)")
        }
    }

    @Test func anOvernightScheduleRunsIntoTheNextMorning() {
        let night = Schedule(timeZone: "UTC", days: [.fri], opens: "22:00", closes: "06:00")
        #expect(night.isOpen(at: Self.utc("2026-01-16T23:30:00Z")))   // Friday night
        #expect(night.isOpen(at: Self.utc("2026-01-17T05:59:00Z")))   // Saturday morning, from Friday
        #expect(!night.isOpen(at: Self.utc("2026-01-17T06:00:00Z")))
        #expect(!night.isOpen(at: Self.utc("2026-01-17T23:00:00Z")))  // Saturday night is not listed
    }

    @Test func closedCanForward() {
        var rule = office
        rule.schedule?.closed = ClosedAnswer(forward: "sip:night@answering.example")
        #expect(decide(PBXRouter(extensions: [rule], groups: []), Self.offer(to: "desk"), at: Self.utc("2026-01-17T10:00:00Z"))
            == PBXDecision(decision: Self.bridge(["sip:night@answering.example"]), rule: .closed))
    }

    // MARK: Validation

    @Test(arguments: [
        (PBXExtension(user: "bo b"), "user \"bo b\" may hold only"),
        (PBXExtension(user: "bob", forwardBusy: "http://x"), "forward_busy \"http://x\" is not a name or a sip:"),
        (PBXExtension(user: "bob", forwardNoAnswer: "sip:a@b>"), "forbidden characters"),
        (PBXExtension(user: "bob", noAnswerSeconds: 0), "no_answer_seconds 0 is outside 1...600"),
        (PBXExtension(user: "bob", contact: "bob"), "contact \"bob\" is not a sip:"),
        (PBXExtension(user: "bob", schedule: Schedule(timeZone: "Mars/Olympus", days: [.mon], opens: "09:00", closes: "17:00")),
         "time_zone \"Mars/Olympus\" is not an IANA time zone"),
        (PBXExtension(user: "bob", schedule: Schedule(timeZone: "UTC", days: [.mon], opens: "9:00", closes: "17:00")), "opens \"9:00\" is not a time"),
        (PBXExtension(user: "bob", schedule: Schedule(timeZone: "UTC", days: [], opens: "09:00", closes: "17:00")), "at least one day"),
        (PBXExtension(user: "bob", schedule: Schedule(timeZone: "UTC", days: [.mon], opens: "09:00", closes: "17:00",
                                                      closed: ClosedAnswer(status: 503))), "closed status 503 is not a 4xx or 6xx"),
    ])
    func badExtensionsAreRefusedByName(rule: PBXExtension, problem: String) {
        #expect(rule.problem?.contains(problem) == true, "\(rule.problem ?? "no problem")")
    }

    @Test func badGroupsAreRefusedByName() {
        #expect(PBXGroup(name: "g", strategy: .sequential, members: []).problem == "group g needs at least one member")
        #expect(PBXGroup(name: "g", strategy: .sequential, members: Array(repeating: "a", count: 17)).problem?.contains("more than 16") == true)
        #expect(PBXGroup(name: "g", strategy: .sequential, members: ["a"], ringSeconds: 601).problem?.contains("ring_seconds 601") == true)
        #expect(PBXGroup(name: "g", strategy: .roundRobin, members: ["a", "sip:b@c"], ringSeconds: 5, overflow: "vm").problem == nil)
    }

    @Test func weekdayLists() {
        #expect(Weekday.parseList("mon-fri") == [.mon, .tue, .wed, .thu, .fri])
        #expect(Weekday.parseList("sat,sun") == [.sat, .sun])
        #expect(Weekday.parseList("fri-mon") == [.fri, .sat, .sun, .mon])
        #expect(Weekday.parseList("funday") == nil)
        #expect(Weekday.parseList("") == nil)
    }
}
