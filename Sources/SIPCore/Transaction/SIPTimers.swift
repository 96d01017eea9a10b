/// The base timer values of RFC 3261 §17.1.1.1 and Table 4, from which every transaction timer derives.
///
/// ```swift
/// let timers = SIPTimers(t1: .milliseconds(250))   // a LAN with a short round trip
/// timers.timerH                                     // 16 s
/// timers.timerB                                     // 16 s
/// ```
public struct SIPTimers: Sendable, Hashable {
    /// The round-trip estimate, 500 ms by default.
    public var t1: Duration
    /// The longest retransmit interval for non-INVITE requests and INVITE responses, 4 s by default.
    public var t2: Duration
    /// How long a message may linger in the network, 5 s by default.
    public var t4: Duration
    /// Timer C (RFC 3261 §16.6 item 11), how long an INVITE client transaction that had a provisional response
    /// waits for its final one before it is CANCELled: more than 3 minutes, 181 s by default.
    public var timerC: Duration

    /// Creates timer values; the defaults are RFC 3261's.
    public init(t1: Duration = .milliseconds(500), t2: Duration = .seconds(4), t4: Duration = .seconds(5),
                timerC: Duration = .seconds(181)) {
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.timerC = timerC
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

    /// The first interval of Timer A (INVITE retransmission); it then doubles without a cap until Timer B.
    public var timerA: Duration { t1 }

    /// Timer B, how long a client waits for any response to its INVITE: 64*T1.
    public var timerB: Duration { t1 * 64 }

    /// Timer D, how long a client absorbs retransmissions of a non-2xx final response: at least 32 s whatever T1
    /// is, since it must outlast the server's Timer G retransmissions (RFC 3261 §17.1.1.2); zero on reliable
    /// transports.
    public func timerD(reliable: Bool) -> Duration { reliable ? .zero : .seconds(32) }

    /// The first interval of Timer E (non-INVITE retransmission); it then doubles up to ``t2``.
    public var timerE: Duration { t1 }

    /// Timer F, how long a client waits for the final response to a non-INVITE request: 64*T1.
    public var timerF: Duration { t1 * 64 }

    /// Timer K, how long a non-INVITE client absorbs response retransmissions: T4, zero on reliable transports.
    public func timerK(reliable: Bool) -> Duration { reliable ? .zero : t4 }

    /// Timer M (RFC 6026), how long the accepted state passes 2xx retransmissions to the TU: 64*T1.
    public var timerM: Duration { t1 * 64 }

    /// The interval following `interval` for Timer E in the trying state: the same rule as Timer G
    /// (RFC 3261 §17.1.2.2).
    func nextTimerE(after interval: Duration) -> Duration {
        nextTimerG(after: interval)
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
    /// A server's Timer H fired: the ACK never came (RFC 3261 §17.2.1). A client's Timer B or F fired: no
    /// (final) response came, and the TU acts as if it had received a 408 (RFC 3261 §8.1.3.1).
    case timeout
    /// The transport reported a failure to send (RFC 3261 §17.1.4, §17.2.4).
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

/// The timers a client transaction asks its owner to run (RFC 3261 Table 4, RFC 6026 Timer M). Apart from the
/// server's ``TransactionTimerID`` so that a client timer cannot be fired into a server transaction.
public enum ClientTimerID: Sendable, Hashable {
    /// INVITE request retransmission, unreliable transports only.
    case timerA
    /// INVITE transaction timeout.
    case timerB
    /// Wait for retransmissions of a non-2xx final response to an INVITE.
    case timerD
    /// Non-INVITE request retransmission, unreliable transports only.
    case timerE
    /// Non-INVITE transaction timeout.
    case timerF
    /// Wait for retransmissions of the final response to a non-INVITE request.
    case timerK
    /// Wait for 2xx retransmissions after the first 2xx to an INVITE (RFC 6026).
    case timerM
    /// Wait for the final response to an INVITE after the TU cancelled it: 64*T1 (RFC 3261 §9.1).
    case cancelled
}

/// What a client transaction asks its owner to do. Events return `[ClientTransactionAction]`; an empty array means
/// nothing to do. After `.terminated` the owner drops the transaction and any timers it still runs.
///
/// ```swift
/// for action in transaction.receive(response) {
///     switch action {
///     case .send(let request): transport.send(request)
///     case .deliver(let response): tu.handle(response)
///     case .startTimer(let timer, let delay): schedule(timer, after: delay)
///     case .cancelTimer(let timer): cancel(timer)
///     case .terminated(let reason): drop(key, reason)
///     }
/// }
/// ```
public enum ClientTransactionAction: Sendable, Hashable {
    /// Send this request (the original, a retransmission, or the transaction's own ACK) to the transport.
    case send(SIPRequest)
    /// Pass this response up to the TU.
    case deliver(SIPResponse)
    /// Start (or restart) a timer; fire it back with `timerFired(_:)`.
    case startTimer(ClientTimerID, after: Duration)
    /// Stop a timer.
    case cancelTimer(ClientTimerID)
    /// The transaction is over; tell the TU when the reason is not `.normal`.
    case terminated(TransactionTerminationReason)
}
