import BusSchema
import Foundation

/// The PBX's decision for one offer, and which rule made it (for logs and tests).
public struct PBXDecision: Equatable, Sendable {
    public var decision: Decision
    public var rule: Rule

    public enum Rule: String, Equatable, Sendable {
        /// The called user has no rule: its phone is rung, and a failure reaches the caller.
        case plain
        case extensionRing = "extension"
        case forwardAlways = "forward_always"
        case dnd
        case closed
        case unreachable
        case forwardBusy = "forward_busy"
        case forwardNoAnswer = "forward_no_answer"
        case group
        case overflow
        /// A failure no rule takes: the caller gets it.
        case failure
    }
}

/// The PBX rules as one pure function: an offer (with the failure when the bridge asks for a failure step), the
/// time, whether users are registered and the round-robin rotation in; a decision out.
///
/// ```swift
/// let router = PBXRouter(extensions: [PBXExtension(user: "bob", forwardBusy: "carol")], groups: [])
/// router.decide(offer, at: Date(), domain: "switchboard.local", registered: { _ in nil }, takeTurn: { _ in 0 }).decision
/// // .bridge(sip:bob@switchboard.local, on_failure ask); on bob's 486: .bridge(sip:carol@switchboard.local)
/// ```
///
/// The first decision rings the extension with `on_failure: ask` when it has a busy, no-answer or unreachable
/// forward; the bridge's failure step (`offer.failure`) then picks the forward from the failure: `busy` → busy
/// forward; a 404/408/480 before anything rang (`ring_ms` 0: the proxy found no registration) → unreachable
/// forward; `no_answer` → no-answer forward. Forwards do not ask again, so a call takes at most one step here.
public struct PBXRouter: Sendable {
    public var extensions: [String: PBXExtension]
    public var groups: [String: PBXGroup]

    public init(extensions: [PBXExtension], groups: [PBXGroup]) {
        self.extensions = Dictionary(extensions.map { ($0.user, $0) }, uniquingKeysWith: { $1 })
        self.groups = Dictionary(groups.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
    }

    /// - Parameters:
    ///   - domain: the host of the URIs made from bare names.
    ///   - registered: whether a user is registered now; nil when not known (then only a failure tells).
    ///   - takeTurn: the first member's index for a round-robin group's call; moves the group's rotation on.
    public func decide(_ offer: CallOffer, at now: Date, domain: String, registered: (String) -> Bool?,
                       takeTurn: (String) throws -> Int) rethrows -> PBXDecision {
        let user = offer.requestUri.user ?? offer.to.user ?? ""
        let context = Context(domain: domain)
        if let failure = offer.failure {
            // Only the first route (the extension's or the group's own) asks; a later step is not one of ours.
            if failure.step == 1, let group = groups[user] { return try overflow(group, after: failure, context: context, takeTurn: takeTurn) }
            if failure.step == 1, let rule = extensions[user] { return try afterFailure(rule, failure, context: context, takeTurn: takeTurn) }
            return PBXDecision(decision: Self.relay(failure), rule: .failure)
        }
        if let group = groups[user] { return try ring(group, context: context, takeTurn: takeTurn) }
        guard let rule = extensions[user] else {
            return PBXDecision(decision: .bridge(BridgeRoute(targets: [BridgeTarget(uri: context.uri(user))])), rule: .plain)
        }
        if let schedule = rule.schedule, !schedule.isOpen(at: now) {
            guard let forward = schedule.closed.forward else {
                return PBXDecision(decision: .reject(status: schedule.closed.status, reason: schedule.closed.reason), rule: .closed)
            }
            return try forwardTo(forward, rule: .closed, context: context, takeTurn: takeTurn)
        }
        if rule.dnd {
            guard let forward = rule.forwardBusy else { return PBXDecision(decision: .reject(status: 486, reason: "Busy Here"), rule: .dnd) }
            return try forwardTo(forward, rule: .dnd, context: context, takeTurn: takeTurn)
        }
        if let forward = rule.forwardAlways { return try forwardTo(forward, rule: .forwardAlways, context: context, takeTurn: takeTurn) }
        if let forward = rule.forwardUnreachable, registered(rule.user) == false {
            return try forwardTo(forward, rule: .unreachable, context: context, takeTurn: takeTurn)
        }
        let asks = rule.forwardBusy != nil || rule.forwardNoAnswer != nil || rule.forwardUnreachable != nil
        let ringMs = rule.forwardNoAnswer.map { _ in (rule.noAnswerSeconds ?? PBXExtension.defaultNoAnswerSeconds) * 1000 }
        let route = BridgeRoute(targets: [BridgeTarget(uri: rule.contact ?? context.uri(rule.user), ringTimeoutMs: ringMs)],
                                onFailure: asks ? .ask : .end)
        return PBXDecision(decision: .bridge(route), rule: .extensionRing)
    }

    private struct Context {
        let domain: String

        func uri(_ target: String) -> String {
            target.contains(":") ? target : "sip:\(target)@\(domain)"
        }
    }

    /// The extension's route failed: the forward its cause calls for, else the failure to the caller.
    private func afterFailure(_ rule: PBXExtension, _ failure: RouteFailure, context: Context,
                              takeTurn: (String) throws -> Int) rethrows -> PBXDecision {
        if failure.cause == .busy, let forward = rule.forwardBusy {
            return try forwardTo(forward, rule: .forwardBusy, context: context, takeTurn: takeTurn)
        }
        if Self.unreachable(failure), let forward = rule.forwardUnreachable {
            return try forwardTo(forward, rule: .unreachable, context: context, takeTurn: takeTurn)
        }
        if failure.cause == .noAnswer, let forward = rule.forwardNoAnswer {
            return try forwardTo(forward, rule: .forwardNoAnswer, context: context, takeTurn: takeTurn)
        }
        return PBXDecision(decision: Self.relay(failure), rule: .failure)
    }

    /// Kamailio answers 404 (no such user) or 480 (not registered) from its location lookup, or a 408 when the
    /// registered contact is gone; in each case nothing rang.
    static func unreachable(_ failure: RouteFailure) -> Bool {
        [404, 408, 480].contains(failure.status) && failure.ringMs == 0
    }

    private func forwardTo(_ target: String, rule: PBXDecision.Rule, context: Context,
                           takeTurn: (String) throws -> Int) rethrows -> PBXDecision {
        if !target.contains(":"), let group = groups[target] {
            guard case .bridge(var route) = try ring(group, context: context, takeTurn: takeTurn).decision else {
                preconditionFailure("a group always rings")
            }
            // A forward does not ask again: the group's overflow is for calls to the group itself.
            route.onFailure = .end
            return PBXDecision(decision: .bridge(route), rule: rule)
        }
        return PBXDecision(decision: .bridge(BridgeRoute(targets: [BridgeTarget(uri: context.uri(target))])), rule: rule)
    }

    /// A hunt group's route: serial from the first member or from its turn, or every member at once; it asks on
    /// failure when the group has an overflow.
    private func ring(_ group: PBXGroup, context: Context, takeTurn: (String) throws -> Int) rethrows -> PBXDecision {
        var members = group.members
        if group.strategy == .roundRobin, !members.isEmpty {
            let start = try takeTurn(group.name) % members.count
            members = Array(members[start...] + members[..<start])
        }
        let ringMs = group.ringSeconds * 1000
        let route = BridgeRoute(targets: members.map { BridgeTarget(uri: context.uri($0), ringTimeoutMs: ringMs) },
                                mode: group.strategy == .simultaneous ? .parallel : .serial,
                                onFailure: group.overflow == nil ? .end : .ask)
        return PBXDecision(decision: .bridge(route), rule: .group)
    }

    private func overflow(_ group: PBXGroup, after failure: RouteFailure, context: Context,
                          takeTurn: (String) throws -> Int) rethrows -> PBXDecision {
        guard let overflow = group.overflow, overflow != group.name else { return PBXDecision(decision: Self.relay(failure), rule: .failure) }
        return try forwardTo(overflow, rule: .overflow, context: context, takeTurn: takeTurn)
    }

    /// The failure as the bridge would give it to the caller: a 5xx or 3xx as 480 (a 5xx would have the proxy fail
    /// over to another bridge), a challenge as 403.
    static func relay(_ failure: RouteFailure) -> Decision {
        switch failure.status {
        case 300...399, 500...599: .reject(status: 480, reason: "Temporarily Unavailable")
        case 401, 407: .reject(status: 403, reason: "Forbidden")
        case 400...699: .reject(status: failure.status, reason: failure.reason)
        default: .reject(status: 480, reason: "Temporarily Unavailable")
        }
    }
}
