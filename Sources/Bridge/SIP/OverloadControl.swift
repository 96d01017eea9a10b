import Logging
import Metrics
import NIOCore

/// Admission control for new calls: when the bridge cannot keep up, the INVITEs it cannot serve get a quick
/// 503 with Retry-After at the door instead of joining a queue where every call, admitted or not, would miss
/// its deadline (and the caller's retransmissions would double the load).
///
/// Time is cut in windows (100 ms). A window is overloaded when the SIP loop was busy for more than `busyLimit` of
/// it (the time spent handling datagrams and decisions, measured around each), when datagrams wait in the UDP
/// socket's receive queue or the kernel dropped some (the loop gets less CPU than it needs: ``ReceiveQueue``), when
/// even the fastest decision in it took longer than half the decision deadline (a standing queue on the bus or at
/// the workers, as CoDel reads a queue), or when the workers' pool refused an offer for want of capacity. Then the bridge admits per window at
/// most 90 % of the calls it served in that one (admitted and decided), and sheds the rest; each window that is not
/// overloaded raises the limit by a twentieth (additive increase, multiplicative decrease), and a second of windows
/// that shed nothing lifts it. In-dialog requests, ACKs, CANCELs and responses are never shed: they belong to calls already
/// admitted, which the room made by shedding lets finish.
///
/// Loop-bound: used on the SIP event loop only.
final class OverloadControl {
    struct Configuration {
        /// The share of a window the SIP loop may be busy before new calls are shed; 1 or more: never.
        var busyLimit = 0.9
        /// The fastest decision of a window taking longer than this share of the decision deadline means a
        /// queue; zero: never. A share, not a time: workers that need long to decide get a long deadline.
        var latencyShare = 0.5
        var window: Duration = .milliseconds(100)
        /// Retry-After on the 503 of a shed call, in seconds.
        var retryAfter = 5
    }

    /// The UDP socket's receive queue as the kernel tells it (`SO_MEMINFO`).
    struct ReceiveQueue {
        /// Bytes of datagrams waiting to be read.
        var queued: Int
        /// What the queue may hold.
        var buffer: Int
        /// Datagrams dropped because it was full, since the socket opened.
        var drops: UInt32

        /// More than this waiting is a standing queue, not a burst: at 256 kB, about a hundred INVITEs.
        var isBacklogged: Bool { queued > min(256 * 1024, buffer / 2) }
    }

    let configuration: Configuration
    /// Reads the receive queue at the end of each window and hands it to ``received(_:)``.
    var probeReceiveQueue: (() -> Void)?
    private let logger: Logger
    private let window: Int64
    /// In nanoseconds; 0: never.
    private let latencyLimit: Int64
    private var windowStart: NIODeadline
    private var busyNanoseconds: Int64 = 0
    private var fastestDecision: Int64?
    private var decisions = 0
    private var refusedForCapacity = false
    /// Set by the last probe of the receive queue, read at the end of the window it fell in.
    private var backlogged = false
    /// Calls served in each of the last 100 windows (10 s), a ring.
    private var recentlyServed = [Int](repeating: 0, count: 100)
    private var nextRecent = 0
    private var lastDrops: UInt32?
    private var admitted = 0
    private var shedInWindow = 0
    /// Calls admitted per window while overloaded; nil: every call is admitted.
    private(set) var limit: Int?
    /// Windows in a row, while overloaded, that shed nothing.
    private var calmWindows = 0
    /// Shed calls since the overload began, for its end's log line.
    private var shedSinceStart = 0

    private let shedCounter = Counter(label: "switchboard_overload_shed_total")
    private let activeGauge = Gauge(label: "switchboard_overload_active")
    private let limitGauge = Gauge(label: "switchboard_overload_admitted_per_second")
    private let busyGauge = Gauge(label: "switchboard_sip_loop_busy_ratio")

    init(configuration: Configuration, decisionTimeout: Duration, logger: Logger, now: NIODeadline = .now()) {
        self.configuration = configuration
        windowStart = now
        self.logger = logger
        window = TimeAmount(configuration.window).nanoseconds
        latencyLimit = Int64(Double(TimeAmount(decisionTimeout).nanoseconds) * configuration.latencyShare)
        activeGauge.record(0)
    }

    /// Ends each window on time, so that an overload ends (and its gauge falls) when calls stop coming.
    func endWindows(on loop: EventLoop) {
        loop.assumeIsolated().scheduleTask(in: TimeAmount(configuration.window)) { [self] in
            endWindowIfDue(now: .now())
            endWindows(on: loop)
        }
    }

    /// Whether a new call may go on to the workers now; false: answer it 503 with ``Configuration/retryAfter``.
    func admitsNewCall(now: NIODeadline = .now()) -> Bool {
        endWindowIfDue(now: now)
        if let limit, admitted >= limit {
            shedInWindow += 1
            shedSinceStart += 1
            shedCounter.increment()
            return false
        }
        admitted += 1
        return true
    }

    /// Time the SIP loop spent on one piece of work.
    func busy(since start: NIODeadline, now: NIODeadline = .now()) {
        busyNanoseconds += (now - start).nanoseconds
    }

    /// A worker's decision arrived this long after its offer.
    func decided(after latency: TimeAmount) {
        fastestDecision = min(fastestDecision ?? .max, latency.nanoseconds)
        decisions += 1
    }

    /// The fallback answered an offer (no worker, a full pool, the deadline, shutdown): a call served too, or a
    /// bridge without workers would count none and shed all but one call per window.
    func fellBack() {
        decisions += 1
    }

    /// What the receive queue held when last probed.
    func received(_ queue: ReceiveQueue) {
        let dropped = lastDrops.map { queue.drops != $0 } ?? false
        lastDrops = queue.drops
        backlogged = backlogged || dropped || queue.isBacklogged
    }

    /// The workers' pool had no free capacity for an offer.
    func poolFull() {
        refusedForCapacity = true
    }

    private func endWindowIfDue(now: NIODeadline) {
        let elapsed = (now - windowStart).nanoseconds
        guard elapsed >= window else { return }
        let busyRatio = Double(busyNanoseconds) / Double(elapsed)
        busyGauge.record(busyRatio)
        let slow = latencyLimit > 0 && (fastestDecision ?? 0) > latencyLimit
        let loopSaturated = (configuration.busyLimit < 1 && busyRatio > configuration.busyLimit) || backlogged
        let workersBehind = slow || refusedForCapacity
        // What got through is what the bridge can serve: the calls decided, when fewer than those admitted (the
        // rest queue), per window (one that ended late, on a busy loop, counts for its length).
        let served = Int(Int64(min(admitted, decisions)) * window / elapsed)
        recentlyServed[nextRecent] = served
        nextRecent = (nextRecent + 1) % recentlyServed.count
        if loopSaturated || workersBehind {
            var next = max(1, served * 9 / 10)
            if !workersBehind {
                // The loop may be busy with what it sheds (a flood it reads and refuses), which admitting fewer
                // calls would not relieve: it keeps serving at least 80 % of its best of the last 10 s, so the
                // limit cannot spiral down while the calls admitted are decided in time.
                next = max(next, (recentlyServed.max() ?? 0) * 8 / 10)
            }
            if limit == nil {
                logger.warning("overload: new calls beyond the admitted rate get 503", metadata: [
                    "overload.sip_loop_busy": "\(Int(busyRatio * 100))%",
                    "overload.receive_queue_backlog": "\(backlogged)",
                    "overload.fastest_decision_ms": "\(fastestDecision.map { $0 / 1_000_000 } ?? 0)",
                    "overload.worker_pool_full": "\(refusedForCapacity)",
                    "overload.admitted_per_second": "\(next * 1_000_000_000 / Int(window))",
                ])
                activeGauge.record(1)
            }
            limit = min(limit ?? .max, next)
            calmWindows = 0
        } else if let current = limit {
            calmWindows = shedInWindow == 0 ? calmWindows + 1 : 0
            // A second without shedding ends the overload: a load hovering at the limit would otherwise start
            // and end one every few windows.
            if calmWindows >= 10 {
                logger.notice("overload over: every new call is admitted again", metadata: ["overload.shed": "\(shedSinceStart)"])
                limit = nil
                shedSinceStart = 0
                activeGauge.record(0)
            } else {
                limit = current + max(1, current / 20)
            }
        }
        limitGauge.record(limit.map { $0 * 1_000_000_000 / Int(window) } ?? 0)
        probeReceiveQueue?()
        windowStart = now
        busyNanoseconds = 0
        fastestDecision = nil
        decisions = 0
        refusedForCapacity = false
        backlogged = false
        admitted = 0
        shedInWindow = 0
    }
}
