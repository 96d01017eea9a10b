/// Timer C of RFC 3261 §16.6 item 11 and §16.8 for an INVITE client transaction whose final response may never
/// come: Timer B only bounds the wait for the first response, so a far side that answers 180 and then nothing
/// would hold the transaction, and whatever waits on it, for ever. Proxies run it; so does a B2BUA for the
/// re-INVITEs it relays or sends. A pure machine like the transactions: each event returns the actions for the
/// owner to carry out, and the owner runs the timer and fires it back.
///
/// ```swift
/// var timerC = InviteTimerC(timers: timers)
/// perform(timerC.start())                  // [.startTimer(after: 181 s)]
/// perform(timerC.received(status: 180))    // [.startTimer(after: 181 s)]: restarted
/// perform(timerC.fired())                  // [.cancel]: CANCEL the INVITE (§16.8)
/// ```
public struct InviteTimerC: Sendable {
    public enum Action: Sendable, Hashable {
        /// Start, or restart, Timer C; fire it back with ``fired()``.
        case startTimer(after: Duration)
        case cancelTimer
        /// Timer C fired after a provisional response: CANCEL the INVITE (§16.8).
        case cancel
        /// Timer C fired before any provisional response: take it as a 408 (Request Timeout) (§16.8).
        case timeout
    }

    /// How long Timer C runs, from ``SIPTimers/timerC``.
    public let interval: Duration
    private var provisional = false
    private var over = false

    public init(timers: SIPTimers = SIPTimers()) {
        interval = timers.timerC
    }

    /// The INVITE was sent: Timer C starts.
    public func start() -> [Action] {
        [.startTimer(after: interval)]
    }

    /// A response to the INVITE: any provisional lets a CANCEL go should Timer C fire, one from 101 to 199 restarts
    /// it (§16.7 item 2), and a final response stops it.
    public mutating func received(status: Int) -> [Action] {
        guard !over else { return [] }
        switch status {
        case 100:
            provisional = true
            return []
        case 101...199:
            provisional = true
            return [.startTimer(after: interval)]
        default:
            over = true
            return [.cancelTimer]
        }
    }

    /// The transaction ended without a final response (Timer B, a transport error): Timer C stops.
    public mutating func transactionEnded() -> [Action] {
        guard !over else { return [] }
        over = true
        return [.cancelTimer]
    }

    /// Timer C fired (§16.8): CANCEL after a provisional response, else take it as a 408. Once a final response
    /// came (a timer that raced its cancellation) it does nothing.
    public mutating func fired() -> [Action] {
        guard !over else { return [] }
        over = true
        return provisional ? [.cancel] : [.timeout]
    }
}
