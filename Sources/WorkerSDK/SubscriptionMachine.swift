import BusSchema

/// An event as it came off the bus, before the subscriber decides whether to deliver it.
///
/// `event` is nil when the frame's `type` is one this build does not know (a newer bridge): the
/// sequence number is still consumed, so it never looks like a gap, but no handler sees it.
struct SequencedEvent: Equatable, Sendable {
    var bridgeId: String
    var seq: UInt64
    var type: String
    var event: Event?
}

/// Events a subscriber will never see: the range, inclusive, and why.
///
/// ```swift
/// subscriber.onLoss { loss in logger.error("lost events \(loss.range) from \(loss.bridgeId ?? "?")") }
/// ```
public struct EventLoss: Equatable, Sendable, CustomStringConvertible {
    /// Why the events are gone.
    public enum Reason: String, Equatable, Sendable {
        /// The bridge's journal no longer holds them (retention): `from_seq < first_seq`.
        case expired
        /// Neither the live stream nor the replay endpoint produced them after several attempts
        /// (replay endpoint unreachable, or a journal that does not have them).
        case unavailable
    }

    /// The bridge the events came from, when one was heard from.
    public var bridgeId: String?
    /// The missing sequence numbers, first and last included.
    public var range: ClosedRange<UInt64>
    public var reason: Reason

    public init(bridgeId: String?, range: ClosedRange<UInt64>, reason: Reason) {
        self.bridgeId = bridgeId
        self.range = range
        self.reason = reason
    }

    /// How many events were lost.
    public var count: UInt64 { range.upperBound - range.lowerBound + 1 }

    public var description: String { "\(count) event(s) \(range.lowerBound)...\(range.upperBound) \(reason.rawValue)" }
}

/// The subscriber's ordering logic with no I/O: live events and replay replies in, actions out.
///
/// Invariant: every sequence number above the cursor is handed out once, in order (`deliver`), or
/// declared lost (`loss`). Live events past a gap wait in `pending` while the gap is replayed.
struct SubscriptionMachine {
    struct Configuration: Equatable {
        /// Events asked for per replay request.
        var batch: Int = 1000
        /// Ask the replay endpoint after this long without traffic (tail loss).
        var idleInterval: Duration = .seconds(3)
        /// A replay request not answered within this is sent again.
        var replayTimeout: Duration = .seconds(2)
        /// Unanswered or fruitless replay attempts before a gap is declared lost.
        var attempts: Int = 3
        /// Live events kept while a gap is replayed; beyond it they are dropped and replayed later.
        var maxPending: Int = 10_000
    }

    enum Action: Equatable {
        case deliver(SequencedEvent)
        case loss(EventLoss)
        case requestReplay(requestId: String, fromSeq: UInt64, max: Int)
    }

    private struct Request {
        var id: String
        var fromSeq: UInt64
        var sentAt: ContinuousClock.Instant
    }

    let configuration: Configuration
    /// The last sequence number handed out (or skipped as lost); nil before the first event of a fresh start.
    private(set) var last: UInt64?
    private(set) var pending: [UInt64: SequencedEvent] = [:]
    private var request: Request?
    private var requestCounter = 0
    /// Consecutive replay attempts that did not close the current gap.
    private var failedAttempts = 0
    private var lastActivity: ContinuousClock.Instant
    private(set) var bridgeId: String?
    private(set) var duplicates = 0
    /// Whether a `replay.end` has said the journal holds nothing past what was handed out (and no live
    /// event waits behind a gap): everything the bridge had journaled by then has been delivered.
    private(set) var caughtUp = false

    init(resumeAfter: UInt64?, configuration: Configuration, now: ContinuousClock.Instant) {
        self.last = resumeAfter
        self.configuration = configuration
        self.lastActivity = now
    }

    /// Start: with a cursor, catch up at once rather than wait for live traffic.
    mutating func start(now: ContinuousClock.Instant) -> [Action] {
        guard let last else { return [] }
        return [sendRequest(from: last + 1, now: now)]
    }

    /// An event from the PUB socket.
    mutating func receiveLive(_ event: SequencedEvent, now: ContinuousClock.Instant) -> [Action] {
        lastActivity = now
        bridgeId = event.bridgeId
        guard let last else {
            // A fresh subscriber (no cursor) starts with the first event it hears.
            self.last = event.seq
            return [.deliver(event)]
        }
        var actions = accept(event, after: last)
        if request == nil, gapStart != nil { actions.append(sendRequest(from: self.last! + 1, now: now)) }
        return actions
    }

    /// One `replay.events` message.
    mutating func receiveReplayEvents(requestId: String, events: [SequencedEvent], now: ContinuousClock.Instant) -> [Action] {
        guard requestId == request?.id, let start = last else { return [] }
        lastActivity = now
        var actions: [Action] = []
        for event in events {
            bridgeId = event.bridgeId
            actions += accept(event, after: self.last ?? start)
        }
        return actions
    }

    /// `replay.end`: the journal holds `firstSeq...lastSeq`; `nextSeq > lastSeq` means caught up.
    mutating func receiveReplayEnd(requestId: String, bridgeId: String?, firstSeq: UInt64, lastSeq: UInt64, nextSeq: UInt64,
                                   now: ContinuousClock.Instant) -> [Action] {
        guard let current = request, requestId == current.id, var last else { return [] }
        request = nil
        lastActivity = now
        if let bridgeId { self.bridgeId = bridgeId }
        var actions: [Action] = []
        // Retention: what we asked for starts before the oldest journaled event.
        if firstSeq > 0, firstSeq > last + 1 {
            actions.append(.loss(EventLoss(bridgeId: self.bridgeId, range: (last + 1)...(firstSeq - 1), reason: .expired)))
            last = firstSeq - 1
            self.last = last
            actions += drainPending()
            last = self.last!
        }
        if nextSeq <= lastSeq, lastSeq > last {
            failedAttempts = 0
            actions.append(sendRequest(from: last + 1, now: now))
        } else if let gap = gapStart {
            // The journal says we are caught up, yet live events wait past a gap: it may be writing
            // them still; after a few rounds they are declared lost.
            failedAttempts += 1
            if failedAttempts >= configuration.attempts {
                actions += declareGapLost(from: gap)
            } else {
                actions.append(sendRequest(from: gap, now: now))
            }
        } else {
            failedAttempts = 0
            caughtUp = true
        }
        return actions
    }

    /// An `error` reply to our request: retried by `tick` after the idle interval, like a lost reply.
    mutating func receiveReplayError(requestId: String, now: ContinuousClock.Instant) -> [Action] {
        guard requestId == request?.id else { return [] }
        request = nil
        lastActivity = now
        return failed(now: now)
    }

    /// Timers: replay timeout, gap retries and the idle check.
    mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        if let current = request {
            guard now - current.sentAt >= configuration.replayTimeout else { return [] }
            request = nil
            return failed(now: now)
        }
        guard let last else { return [] }
        if gapStart != nil { return [sendRequest(from: last + 1, now: now)] }
        if now - lastActivity >= configuration.idleInterval {
            lastActivity = now
            return [sendRequest(from: last + 1, now: now)]
        }
        return []
    }

    // MARK: Internals

    /// The first missing sequence number when live events wait behind a gap.
    private var gapStart: UInt64? {
        guard let last, !pending.isEmpty else { return nil }
        return last + 1
    }

    private mutating func failed(now: ContinuousClock.Instant) -> [Action] {
        guard let gap = gapStart else {
            // Nothing is known to be missing (an idle check went unanswered): try again later.
            lastActivity = now
            return []
        }
        failedAttempts += 1
        if failedAttempts >= configuration.attempts { return declareGapLost(from: gap) }
        return [sendRequest(from: gap, now: now)]
    }

    private mutating func declareGapLost(from gap: UInt64) -> [Action] {
        failedAttempts = 0
        guard let firstPending = pending.keys.min(), firstPending > gap else { return drainPending() }
        last = firstPending - 1
        return [.loss(EventLoss(bridgeId: bridgeId, range: gap...(firstPending - 1), reason: .unavailable))] + drainPending()
    }

    /// Delivers `event` if it is next, keeps it if it is ahead, drops it if already seen.
    private mutating func accept(_ event: SequencedEvent, after last: UInt64) -> [Action] {
        if event.seq <= last || pending[event.seq] != nil {
            duplicates += 1
            return []
        }
        if event.seq == last + 1 {
            self.last = event.seq
            failedAttempts = 0
            return [.deliver(event)] + drainPending()
        }
        if pending.count < configuration.maxPending { pending[event.seq] = event }
        return []
    }

    /// Hands out the pending events that are now contiguous with the cursor.
    private mutating func drainPending() -> [Action] {
        var actions: [Action] = []
        while let last, let next = pending.removeValue(forKey: last + 1) {
            self.last = next.seq
            actions.append(.deliver(next))
        }
        // Anything at or below the cursor (skipped by a loss) is stale.
        if let last { pending = pending.filter { $0.key > last } }
        return actions
    }

    private mutating func sendRequest(from seq: UInt64, now: ContinuousClock.Instant) -> Action {
        requestCounter += 1
        let id = "r\(requestCounter)"
        request = Request(id: id, fromSeq: seq, sentAt: now)
        return .requestReplay(requestId: id, fromSeq: seq, max: configuration.batch)
    }
}
