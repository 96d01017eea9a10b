import BusSchema

/// One leg as its call's `CallFlow` sees it: the role it plays, what it calls, where it stands, the SDP
/// it was last sent and whether it is held. The SIP side of the same leg is its `LegSIP`.
struct FlowLeg: Sendable {
    enum State: String, Sendable {
        case calling, ringing, answered, ended
    }

    var role: Leg
    var uri: String
    var state: State = .calling
    var startedAt: ContinuousClock.Instant
    /// When the leg first rang (a 180/183): a failure step reports how long its targets rang.
    var ringingAt: ContinuousClock.Instant?
    /// The ring timer fired and the leg was cancelled: its 487 means "no answer".
    var timedOut = false
    /// What this leg was last sent as SDP (offer or answer); hold rewrites it.
    var sentSDP: [UInt8]?
    var held = false
}
