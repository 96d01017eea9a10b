import NIOCore
import SIPCore

/// The timers that only end a transaction once it has lingered long enough to absorb retransmissions
/// (RFC 3261 Timers D, I, J, K; RFC 6026 Timers L and M). Every call leaves two of them running for 32 s,
/// so at hundreds of calls a second they are tens of thousands; none needs precision. Rather than an
/// event-loop task each (a task, its promise and closure: hundreds of bytes), they wait in first-in,
/// first-out queues, one per delay, swept a few times a second.
///
/// A timer fires with the entry that started it (`owner`), which the owner compares by identity with the
/// entry now under the key: one that ended and was replaced under the same key is left alone. The queue
/// holds the entry until then, at most the delay.
///
/// ```swift
/// let linger = LingerTimers<TransactionKey, TransactionTimerID>(loop: loop) { key, timer, owner in ... }
/// linger.start(.timerL, for: key, owner: entry, after: .seconds(32))
/// ```
final class LingerTimers<Key: Hashable, Timer: Hashable> {
    private struct Waiting {
        let deadline: NIODeadline
        let key: Key
        let timer: Timer
        let owner: AnyObject
    }

    /// Waiting timers of one delay, oldest first: equal delays keep them in deadline order.
    private struct Queue {
        var items: [Waiting] = []
        var head = 0
    }

    private let loop: EventLoop
    private let fire: (Key, Timer, AnyObject) -> Void
    private var queues: [Duration: Queue] = [:]
    private var sweep: RepeatedTask?

    /// `fire` gets the key, the timer and the entry that started it, on `loop`, at most `resolution` late.
    init(loop: EventLoop, resolution: TimeAmount = .milliseconds(200), fire: @escaping (Key, Timer, AnyObject) -> Void) {
        self.loop = loop
        self.fire = fire
        sweep = loop.scheduleRepeatedTask(initialDelay: resolution, delay: resolution) { [weak self] _ in self?.fireDue() }
    }

    deinit {
        sweep?.cancel()
    }

    func start(_ timer: Timer, for key: Key, owner: AnyObject, after delay: Duration) {
        let waiting = Waiting(deadline: loop.now + TimeAmount(delay), key: key, timer: timer, owner: owner)
        queues[delay, default: Queue()].items.append(waiting)
    }

    private func fireDue() {
        let now = loop.now
        for delay in Array(queues.keys) {
            var due: [Waiting] = []
            guard var queue = queues[delay] else { continue }
            while queue.head < queue.items.count, queue.items[queue.head].deadline <= now {
                due.append(queue.items[queue.head])
                queue.head += 1
            }
            // Compact once the fired part dominates, so the array does not grow for ever.
            if queue.head > 1024, queue.head * 2 > queue.items.count {
                queue.items.removeFirst(queue.head)
                queue.head = 0
            }
            queues[delay] = queue
            for waiting in due { fire(waiting.key, waiting.timer, waiting.owner) }
        }
    }
}

extension TransactionTimerID {
    /// Timers I, J and L only end a transaction that lingered: ``LingerTimers`` runs them.
    var lingers: Bool { self == .timerI || self == .timerJ || self == .timerL }
}

extension ClientTimerID {
    /// Timers D, K and M only end a transaction that lingered: ``LingerTimers`` runs them.
    var lingers: Bool { self == .timerD || self == .timerK || self == .timerM }
}
