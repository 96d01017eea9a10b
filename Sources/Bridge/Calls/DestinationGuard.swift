import BusSchema
import CallPolicy
import Logging
import Metrics

/// The bridge's last word on where SIP goes: every URI a command or a worker asks it to dial or redirect
/// to passes the same `DestinationPolicy` the gateway checks with, so a bus client that bypasses the
/// gateway (or a worker that routes a caller-chosen number) gets no further. Refusals are logged and
/// counted (`switchboard_policy_denials_total{rule, place}`).
struct DestinationGuard {
    /// Whether worker targets are checked; commands always are.
    enum WorkerTargets: String, CaseIterable {
        case enforce, off
    }

    /// Where a URI came from, as the metric's `place` label says it.
    enum Place: String {
        case originate, transfer, redirect, bridge
    }

    let policy: DestinationPolicy
    let workerTargets: WorkerTargets
    let logger: Logger

    init(configuration: BridgeConfiguration, logger: Logger) {
        policy = DestinationPolicy(rules: configuration.destinationRules)
        workerTargets = configuration.policyWorkerTargets
        self.logger = logger
    }

    /// Nil when `uri` may be dialled, else the denial (logged and counted).
    func check(_ uri: String, place: Place, callId: String?) -> PolicyDenial? {
        do throws(PolicyDenial) {
            try policy.check(uri)
            return nil
        } catch {
            Counter(label: "switchboard_policy_denials_total", dimensions: [("rule", error.rule.rawValue), ("place", place.rawValue)]).increment()
            logger.notice("destination denied", metadata: [
                "policy.rule": "\(error.rule)", "policy.place": "\(place.rawValue)", "policy.destination": "\(error.destination)",
                "call.id": "\(callId ?? "-")",
            ])
            return error
        }
    }

    /// The Warning of a SIP refusal (403): only the rule's name, since the denied URI is a worker's, a caller's or a
    /// phone's text, not header material.
    static func warning(_ denial: PolicyDenial) -> String {
        "399 switchboard \"destination policy: \(denial.rule.rawValue)\""
    }

    /// A command's refusal: `policy_denied` with the rule first, so clients (and the gateway) can read it.
    func commandError(_ denial: PolicyDenial, field: String) -> ErrorReply {
        ErrorReply(code: .policyDenied, message: "\(denial.rule.rawValue): \(field): \(denial.message)")
    }

    /// The targets of a worker's decision that the policy allows (all of them when enforcement is off),
    /// and the first denial, for the 403 when none is left.
    func allowed<T>(_ targets: [T], uri: (T) -> String, place: Place, callId: String) -> (kept: [T], denial: PolicyDenial?) {
        guard workerTargets == .enforce else { return (targets, nil) }
        var firstDenial: PolicyDenial?
        let kept = targets.filter { target in
            guard let denial = check(uri(target), place: place, callId: callId) else { return true }
            firstDenial = firstDenial ?? denial
            return false
        }
        return (kept, firstDenial)
    }
}
