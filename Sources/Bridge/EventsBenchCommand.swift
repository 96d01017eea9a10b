import ArgumentParser
import BusSchema
import Foundation
import Logging
import Synchronization
import ZeroMQ

/// `switchboard-bridge bench-events` (hidden): the bus's event path without SIP. It publishes events through
/// the bridge's own ``BusEndpoints`` (numbering, the journal's group commit, the PUB socket after each
/// commit) as fast as the SIP side would hand them over, to real ZeroMQ SUB sockets on loopback, and checks
/// that every subscriber got every sequence number once and in order and that the journal holds them all.
///
/// `bench/events-throughput` runs it; it prints events/s (journaled and received by every subscriber) and
/// exits 1 when an event was lost, duplicated, reordered or not journaled.
struct EventsBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-events",
        abstract: "Measure events journaled and published per second, with no SIP (for bench/events-throughput).",
        discussion: """
            Publishes --events events (call.offered and call.routed, alternately, as the bridge writes them) \
            through the bus and its journal to --subscribers SUB sockets on loopback, one thread each. \
            Without --rate it publishes as fast as the slowest subscriber keeps up (at most --window events \
            ahead of it); with --rate it offers that many events per second whatever happens. \
            Exits 1 when any subscriber missed, repeated or reordered an event, or the journal misses one.

            Example: switchboard-bridge bench-events --events 200000 --subscribers 10
            """,
        shouldDisplay: false
    )

    @Option(help: "Events in the measured run.")
    var events = 200_000

    @Option(help: "SUB sockets (a thread each) that must each receive every event.")
    var subscribers = 10

    @Option(help: "Events offered per second; 0 = as fast as the slowest subscriber keeps up.")
    var rate = 0

    @Option(help: "Without --rate: the most events published ahead of the slowest subscriber (below the PUB's high-water mark).")
    var window = 20_000

    @Option(help: "Milliseconds each subscriber sleeps after draining its socket (a consumer that works in batches); 0 = poll again at once.")
    var subscriberPauseMs = 1.0

    @Option(help: "The journal's background checkpoint interval in milliseconds (default: the bridge's).")
    var checkpointIntervalMs: Int?

    @Option(help: "The WAL pages past which the journal's writer checkpoints itself (default: the bridge's).")
    var writerCheckpointPages: Int?

    @Option(help: "The journal file (default: a new temporary file, removed afterwards).")
    var journal: String?

    @Option(help: "Seconds to wait for the last event to reach every subscriber before calling it lost.")
    var timeout = 20

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    func validate() throws {
        guard events > 0 else { throw ValidationError("--events must be at least 1") }
        guard (1...1000).contains(subscribers) else { throw ValidationError("--subscribers must be 1...1000") }
        guard rate >= 0 else { throw ValidationError("--rate must be 0 (as fast as possible) or more") }
        guard window > 0 else { throw ValidationError("--window must be at least 1") }
        guard timeout > 0 else { throw ValidationError("--timeout must be at least 1 second") }
        guard subscriberPauseMs >= 0 else { throw ValidationError("--subscriber-pause-ms must be 0 or more") }
        guard (checkpointIntervalMs ?? 1) > 0, (writerCheckpointPages ?? 1) > 0 else {
            throw ValidationError("--checkpoint-interval-ms and --writer-checkpoint-pages must be at least 1")
        }
    }

    func run() throws {
        var logger = Logger(label: "switchboard.bench-events")
        logger.logLevel = .warning
        let path = journal ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("switchboard-bench-events-\(UUID().uuidString).sqlite").path
        defer {
            if journal == nil {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            }
        }
        var journalConfiguration = EventJournal.Configuration(path: path)
        if let checkpointIntervalMs { journalConfiguration.checkpointInterval = .milliseconds(checkpointIntervalMs) }
        if let writerCheckpointPages { journalConfiguration.writerCheckpointPages = writerCheckpointPages }
        let result = try EventsBench(events: events, subscribers: subscribers, rate: rate, window: window,
                                     subscriberPause: .microseconds(Int64(subscriberPauseMs * 1000)),
                                     timeout: .seconds(timeout), journal: journalConfiguration, logger: logger).measure()
        print(json ? result.json() : result.text())
        if !result.passed { throw ExitCode(1) }
    }
}

/// One run of the events bench: a bus, its subscribers, a producer (this thread), the checks.
struct EventsBench {
    var events: Int
    var subscribers: Int
    var rate: Int
    var window: Int
    /// How long each subscriber sleeps after draining its socket.
    var subscriberPause: Duration = .zero
    var timeout: Duration
    var journal: EventJournal.Configuration
    var logger: Logger

    struct Result {
        var events: Int
        var subscribers: Int
        var rate: Int
        var firstSeq: UInt64
        /// From the first measured publish to the last subscriber's receipt of the last event.
        var elapsed: Duration
        /// How long publishing (handing events to the bus) took.
        var publishing: Duration
        var tallies: [BenchSubscriber.Tally]
        var journaled: Int
        /// The journal's commits during the run.
        var commits: Int
        /// CPU seconds per thread name during the measured run.
        var threadCPU: [String: Double]

        var eventsPerSecond: Double { Double(events) / elapsed.inSeconds }
        var lost: Int { tallies.map { max(0, events - $0.measured) }.reduce(0, +) }
        var passed: Bool {
            journaled == events && tallies.allSatisfy { $0.measured == events && $0.missed == 0 && $0.disordered == 0 }
        }

        func text() -> String {
            var lines = [
                "events: \(events) to \(subscribers) subscriber(s), \(rate == 0 ? "closed loop" : "offered \(rate)/s"), seq \(firstSeq)...\(firstSeq + UInt64(events) - 1)",
                "journaled and published: \(Int(eventsPerSecond)) events/s (\(format(elapsed.inSeconds)) s; publishing took \(format(publishing.inSeconds)) s)",
                "journal: \(journaled) of \(events) events, in \(commits) commits (\(events / max(1, commits)) events each)",
            ]
            for (index, tally) in tallies.enumerated() {
                lines.append("subscriber \(index): \(tally.measured) received, \(tally.missed) missed, \(tally.disordered) repeated or out of order, \(Int(tally.ratePerSecond)) events/s")
            }
            lines.append("CPU: " + threadCPU.sorted { $0.value > $1.value }.map { "\($0.key) \(format($0.value / elapsed.inSeconds * 100))%" }.joined(separator: ", "))
            lines.append(passed ? "ok: none lost" : "FAILED: \(lost) event receipts missing, journal \(journaled)/\(events)")
            return lines.joined(separator: "\n")
        }

        func json() -> String {
            let object: [String: Any] = [
                "events": events, "subscribers": subscribers, "rate": rate, "first_seq": firstSeq,
                "elapsed_s": elapsed.inSeconds, "publishing_s": publishing.inSeconds, "events_per_s": eventsPerSecond,
                "journaled": journaled, "lost": lost, "passed": passed, "commits": commits,
                "subscriber_events_per_s": tallies.map(\.ratePerSecond),
                "received": tallies.map(\.measured), "missed": tallies.map(\.missed), "disordered": tallies.map(\.disordered),
                "thread_cpu_s": threadCPU,
            ]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }

        private func format(_ value: Double) -> String { String(format: "%.2f", value) }
    }

    enum BenchError: Error, CustomStringConvertible {
        case subscribersNeverJoined(Int)

        var description: String {
            switch self {
            case .subscribersNeverJoined(let count): "\(count) subscriber(s) received nothing within 10 s of connecting"
            }
        }
    }

    /// Runs the bench on a thread of its own (the SIP side's stand-in, named for the CPU per thread) and waits.
    func measure() throws -> Result {
        let outcome = Mutex<Swift.Result<Result, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            outcome.withLock { $0 = Swift.Result { try run() } }
            done.signal()
        }
        thread.start()
        done.wait()
        return try outcome.withLock { $0! }.get()
    }

    private func run() throws -> Result {
        // A Linux thread starts with its creator's name (Foundation's `Thread.name` is not applied there): the bus
        // loop's thread is made in BusEndpoints' init, so name this one after it meanwhile, for the CPU per thread.
        ThreadCPU.nameCurrentThread("switchboard-bus")
        defer { ThreadCPU.nameCurrentThread("bench-producer") }
        let bus = try BusEndpoints(configuration: .init(
            bridgeId: "bench", eventsEndpoint: "tcp://127.0.0.1:*", decisionsEndpoint: "tcp://127.0.0.1:*",
            replayEndpoint: "tcp://127.0.0.1:*", commandsEndpoint: "tcp://127.0.0.1:*",
            journal: journal), logger: logger)
        ThreadCPU.nameCurrentThread("bench-producer")
        // A context of their own, as separate processes would have: their I/O thread is not the bridge's.
        let context = try ZMQContext()
        let subs = try (0..<subscribers).map { try BenchSubscriber(index: $0, context: context, endpoint: bus.boundEvents, pause: subscriberPause) }
        defer {
            for sub in subs { sub.stop() }
            context.close()
        }
        bus.start(announcing: .bridgeStarted(BridgeInfo(version: BridgeConfiguration.version, sipListen: "-", events: bus.boundEvents,
                                                        decisions: bus.boundDecisions, replay: bus.boundReplay, journal: journal.path,
                                                        decisionTimeoutMs: 0, fallback: "-")),
                  onResolution: { _ in }, onCommand: { _, _, _ in })
        // Nothing else publishes: bridge.started took the first number, and each `publish` here the next.
        var seq = bus.nextSeqAtStart

        // Slow joiner: a PUB drops what it sends before a subscription arrives, so publish until each has one.
        let joinDeadline = ContinuousClock.now + .seconds(10)
        while subs.contains(where: { $0.lastSeq == 0 }) {
            guard ContinuousClock.now < joinDeadline else {
                bus.stop()
                throw BenchError.subscribersNeverJoined(subs.filter { $0.lastSeq == 0 }.count)
            }
            seq += 1
            bus.publish(callId: Self.callId(seq), Self.body(seq))
            Thread.sleep(forTimeInterval: 0.01)
        }
        let first = seq + 1
        let last = seq + UInt64(events)
        for sub in subs { sub.measure(from: first) }
        let cpuBefore = ThreadCPU.read()
        let commitsBefore = bus.journalStatistics.commits

        let started = ContinuousClock.now
        let pace = rate > 0 ? Double(rate) : nil
        var checked = seq
        while seq < last {
            if let pace {
                let due = first - 1 + UInt64(min(Double(events), (ContinuousClock.now - started).inSeconds * pace))
                if seq >= due {
                    Thread.sleep(forTimeInterval: 0.0005)
                    continue
                }
            } else if seq - checked >= 256 {
                // Closed loop: no further ahead of the slowest subscriber than the window.
                checked = seq
                while seq - (subs.map(\.lastSeq).min() ?? seq) > UInt64(window) { Thread.sleep(forTimeInterval: 0.0002) }
            }
            seq += 1
            bus.publish(callId: Self.callId(seq), Self.body(seq))
        }
        let publishing = ContinuousClock.now - started

        // Until every subscriber has the last event, or none makes progress for `timeout`.
        var progress = subs.map(\.lastSeq)
        var quietSince = ContinuousClock.now
        while subs.contains(where: { $0.lastSeq < last }), ContinuousClock.now - quietSince < timeout {
            Thread.sleep(forTimeInterval: 0.001)
            let now = subs.map(\.lastSeq)
            if now != progress { (progress, quietSince) = (now, .now) }
        }
        let cpuAfter = ThreadCPU.read()
        let commits = bus.journalStatistics.commits - commitsBefore
        let tallies = subs.map { $0.tally() }
        let finished = tallies.compactMap(\.lastReceived).max() ?? .now
        bus.stop()

        let stored = try EventJournal(configuration: .init(path: journal.path), logger: logger)
        defer { stored.stop() }
        let journaled = try stored.count(from: first, through: last)
        return Result(events: events, subscribers: subscribers, rate: rate, firstSeq: first, elapsed: finished - started,
                      publishing: publishing, tallies: tallies, journaled: journaled, commits: commits,
                      threadCPU: cpuAfter.merging(cpuBefore.mapValues { -$0 }, uniquingKeysWith: +).filter { $0.value > 0.005 })
    }

    static func callId(_ seq: UInt64) -> String {
        "bench-\(seq / 2)"
    }

    /// A call's two events as the bridge writes them for a redirect: the offer, then the route.
    static func body(_ seq: UInt64) -> EventBody {
        let call = seq / 2
        let number = "+1202555\(1000 + call % 9000)"
        if seq % 2 == 0 {
            return .callOffered(CallOffer(
                sipCallId: "\(call)-8f14e45f@192.0.2.10",
                requestUri: Address(uri: "sip:\(number)@switchboard.local;user=phone", user: number, host: "switchboard.local"),
                from: Address(uri: "sip:alice@switchboard.local", user: "alice", host: "switchboard.local", displayName: "Alice"),
                to: Address(uri: "sip:\(number)@switchboard.local", user: number, host: "switchboard.local"),
                source: Source(address: "192.0.2.10", port: 5060, transport: "udp", peer: "127.0.0.1"),
                authUser: "alice", headers: ["X-Customer-Id": "42"],
                sdp: SDPSummary(connection: "192.0.2.10", media: [.init(kind: "audio", port: 49170, proto: "RTP/AVP", formats: ["0", "8", "101"])])))
        }
        return .callRouted(Routed(targets: [Target(uri: "sip:\(number)@gw1.example.com", q: 1), Target(uri: "sip:\(number)@gw2.example.com", q: 0.5)],
                                  workerId: "router-1", fallback: false, decisionMs: 0.8))
    }
}

/// One SUB socket on a thread of its own: checks each event's `seq` follows the previous one.
// Unchecked: the socket is made and connected before the thread starts, used only by that thread, and
// closed after it has ended (`stop`); the rest is atomics and a mutex.
final class BenchSubscriber: @unchecked Sendable {
    /// What one subscriber saw from the measured run on.
    struct Tally: Sendable {
        /// Events at or after the run's first sequence number.
        var measured = 0
        /// Sequence numbers skipped.
        var missed = 0
        /// Events whose number was not one past the previous one's (repeated or out of order).
        var disordered = 0
        var firstReceived: ContinuousClock.Instant?
        var lastReceived: ContinuousClock.Instant?

        var ratePerSecond: Double {
            guard let firstReceived, let lastReceived, lastReceived > firstReceived else { return 0 }
            return Double(measured) / (lastReceived - firstReceived).inSeconds
        }
    }

    private let socket: ZMQSocket
    private let latest = Atomic<UInt64>(0)
    private let measureFrom = Atomic<UInt64>(.max)
    private let stopping = Atomic<Bool>(false)
    private let state = Mutex(Tally())
    private let finished = DispatchSemaphore(value: 0)

    /// `pause`: sleep after each drain, so that a burst is read in one go rather than woken up for again and again.
    init(index: Int, context: ZMQContext, endpoint: String, pause: Duration = .zero) throws {
        socket = try ZMQSocket(context: context, type: .sub)
        // Unbounded, as a subscriber that must not lose anything would set it; the PUB side bounds the queue.
        try socket.setHighWaterMarks(send: 1_000, receive: 0)
        try socket.setLinger(.zero)
        try socket.subscribe("")
        try socket.connect(endpoint)
        let thread = Thread { [self] in
            ThreadCPU.nameCurrentThread("bench-sub-\(index)")
            receive(pause: pause)
            finished.signal()
        }
        thread.start()
    }

    /// The newest sequence number received, 0 before the first event.
    var lastSeq: UInt64 { latest.load(ordering: .acquiring) }

    func measure(from seq: UInt64) {
        measureFrom.store(seq, ordering: .releasing)
    }

    func tally() -> Tally {
        state.withLock { $0 }
    }

    func stop() {
        stopping.store(true, ordering: .releasing)
        finished.wait()
        socket.close()
    }

    private func receive(pause: Duration) {
        var poller = ZMQPoller()
        let index = poller.add(socket)
        var previous: UInt64 = 0
        while !stopping.load(ordering: .acquiring) {
            guard (try? poller.poll(timeout: .milliseconds(20)))?.contains(index) == true else { continue }
            var tally = state.withLock { $0 }
            while let frames = try? socket.receive(dontWait: true) {
                let seq = frames.last.flatMap(Self.seq(in:)) ?? 0
                if previous != 0, seq != previous + 1 {
                    if seq > previous + 1 { tally.missed += Int(seq - previous - 1) } else { tally.disordered += 1 }
                }
                // Read per event: the run's first event may come in the same drain as the warm-up's last.
                if seq >= measureFrom.load(ordering: .acquiring) {
                    tally.measured += 1
                    if tally.firstReceived == nil { tally.firstReceived = .now }
                }
                previous = max(previous, seq)
            }
            tally.lastReceived = .now
            state.withLock { $0 = tally }
            latest.store(previous, ordering: .releasing)
            if pause > .zero { Thread.sleep(forTimeInterval: pause.inSeconds) }
        }
    }

    /// The event's `seq` member, read without decoding the rest: the bridge writes it before any nested object.
    static func seq(in frame: [UInt8]) -> UInt64? {
        let key = Array(#""seq":"#.utf8)
        guard frame.count > key.count else { return nil }
        var start = 0
        while start + key.count < frame.count {
            if frame[start] == key[0], frame[start..<start + key.count].elementsEqual(key) {
                var value: UInt64 = 0
                var position = start + key.count
                guard position < frame.count, (48...57).contains(frame[position]) else { return nil }
                while position < frame.count, (48...57).contains(frame[position]) {
                    value = value &* 10 &+ UInt64(frame[position] - 48)
                    position += 1
                }
                return value
            }
            start += 1
        }
        return nil
    }
}

/// CPU seconds per thread name of this process, from /proc (Linux; empty elsewhere).
enum ThreadCPU {
    /// Names the calling thread (at most 15 bytes show); threads it creates from now on start with this name.
    static func nameCurrentThread(_ name: String) {
        // pthread_setname_np is not in Swift's Glibc module; the kernel's own file for it is.
        try? String(name.utf8.prefix(15))!.write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
    }

    static func read() -> [String: Double] {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var out: [String: Double] = [:]
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        for task in tasks {
            guard let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
            // Names of threads of one kind end in a number (bench-sub-3, ZMQbg/IO/0): one entry per kind.
            let name = String(stat[stat.index(after: open)..<close]).trimmingCharacters(in: .decimalDigits)
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
            out[name, default: 0] += (user + system) / ticks
        }
        return out
    }
}
