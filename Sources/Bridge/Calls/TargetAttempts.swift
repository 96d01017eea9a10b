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

    let route: BridgeRoute
    let join: Join
    /// Index of the next serial target to try.
    private var next: Int
    /// Status and reason of the failure to report when every target failed.
    private(set) var best: (status: Int, reason: String)?

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

    /// A target failed: its status is kept when it is the best to report so far.
    mutating func failed(status: Int, reason: String) {
        if let best, Self.rank(status) <= Self.rank(best.status) { return }
        best = (status, reason)
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
