/// The base timer values of RFC 3261 §17.1.1.1 and Table 4, from which every transaction timer derives.
///
/// ```swift
/// let timers = SIPTimers(t1: .milliseconds(250))   // a LAN with a short round trip
/// timers.timerH                                     // 16 s
/// ```
public struct SIPTimers: Sendable, Hashable {
    /// The round-trip estimate, 500 ms by default.
    public var t1: Duration
    /// The longest retransmit interval for non-INVITE requests and INVITE responses, 4 s by default.
    public var t2: Duration
    /// How long a message may linger in the network, 5 s by default.
    public var t4: Duration

    /// Creates timer values; the defaults are RFC 3261's.
    public init(t1: Duration = .milliseconds(500), t2: Duration = .seconds(4), t4: Duration = .seconds(5)) {
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
    }

    /// The first interval of Timer G (response retransmission); it then doubles up to ``t2``.
    public var timerG: Duration { t1 }

    /// Timer H, how long a server waits for the ACK of a non-2xx final response: 64*T1.
    public var timerH: Duration { t1 * 64 }

    /// Timer I, how long the confirmed state absorbs ACK retransmissions: T4, zero on reliable transports.
    public func timerI(reliable: Bool) -> Duration { reliable ? .zero : t4 }

    /// Timer J, how long a non-INVITE server transaction absorbs request retransmissions: 64*T1, zero on
    /// reliable transports.
    public func timerJ(reliable: Bool) -> Duration { reliable ? .zero : t1 * 64 }

    /// Timer L (RFC 6026), how long the accepted state absorbs INVITE retransmissions after a 2xx: 64*T1.
    public var timerL: Duration { t1 * 64 }

    /// The interval following `interval` for Timer G: doubled, capped at ``t2`` (RFC 3261 §17.2.1).
    func nextTimerG(after interval: Duration) -> Duration {
        min(interval * 2, t2)
    }
}

/// The timers a server transaction asks its owner to run (RFC 3261 Table 4, RFC 6026 Timer L).
public enum TransactionTimerID: Sendable, Hashable {
    /// INVITE final response retransmission.
    case timerG
    /// Wait for ACK of a non-2xx final response.
    case timerH
    /// Wait for ACK retransmissions.
    case timerI
    /// Wait for non-INVITE request retransmissions.
    case timerJ
    /// Wait for INVITE retransmissions after a 2xx (RFC 6026).
    case timerL
}

/// Why a transaction ended.
public enum TransactionTerminationReason: Sendable, Hashable {
    /// The transaction ran its course.
    case normal
    /// Timer H fired: the ACK never came (RFC 3261 §17.2.1).
    case timeout
    /// The transport reported a failure to send (RFC 3261 §17.2.4).
    case transportError
}

/// What a server transaction asks its owner to do. Events return `[TransactionAction]`; an empty array means
/// nothing to do. After `.terminated` the owner drops the transaction and any timers it still runs.
public enum TransactionAction: Sendable, Hashable {
    /// Send this response to the transport.
    case send(SIPResponse)
    /// Start (or restart) a timer; fire it back with `timerFired(_:)`.
    case startTimer(TransactionTimerID, after: Duration)
    /// Stop a timer.
    case cancelTimer(TransactionTimerID)
    /// The transaction is over; tell the TU when the reason is not `.normal`.
    case terminated(TransactionTerminationReason)
}
