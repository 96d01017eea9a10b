import BusSchema
import Foundation
import GRDB
import Logging
import Metrics

/// The bridge's event journal: every event, as published, in a SQLite file (WAL, `synchronous=NORMAL`).
///
/// The bus thread hands batches of numbered events to `append`; a writer thread of the journal's own
/// commits whatever has gathered in one transaction (group commit) and hands each batch back through
/// `onCommitted`, in order, so the bus thread publishes an event only once it is journaled. Replay reads
/// go through a separate reader connection of the same `DatabasePool`, so they never wait for a commit;
/// checkpoints run on a thread and connection of their own, so a commit never waits for their syncs.
///
/// When a commit fails (disk full, I/O error) the batch is still handed back: a live subscriber losing
/// events would be worse than a replay missing them. The failure is logged and counted
/// (`switchboard_journal_errors_total`), and a later replay shows the hole as missing sequence numbers.
// Unchecked: the mutable state is guarded by `condition`, an NSCondition, because the writer thread
// waits on it for work, which Mutex cannot do.
final class EventJournal: @unchecked Sendable {
    struct Configuration {
        var path: String
        /// Oldest events beyond this count are pruned.
        var maxEvents = 1_000_000
        /// Events older than this are pruned.
        var maxAge: Duration = .seconds(72 * 3600)
        /// How often retention runs (off the hot path, on the writer thread between commits).
        var pruneInterval: Duration = .seconds(60)
        /// How often a thread of the journal's own checkpoints the WAL into the database file. A checkpoint syncs
        /// both files, which took 20-300 ms on a busy disk: on the writer's connection (SQLite's default, every
        /// 1,000 pages) it held up every commit, and so every publish, that long.
        var checkpointInterval: Duration = .milliseconds(200)
        /// The WAL size, in pages, past which the writer checkpoints itself after all (SQLite's automatic
        /// checkpoint): the background checkpoints cannot finish while commits keep coming, so they never let
        /// the WAL start over; this does, with one sync, since the background has copied most of it already.
        /// 65,536 pages (256 MB) is about 7 s of events at 50,000/s.
        var writerCheckpointPages = 65_536
        /// What the WAL file is cut back to once it starts over, so a burst does not keep its disk space.
        var walSizeLimit = 64 << 20
    }

    /// What the writer has done since the journal was opened.
    struct Statistics: Equatable {
        var commits = 0
        var events = 0
    }

    /// One numbered event, ready to store and to publish.
    struct Entry: Sendable {
        var seq: UInt64
        var type: String
        var callId: String?
        var ts: String
        var json: [UInt8]
    }

    /// What a replay read found: the events from the asked sequence number, and the journal's bounds.
    struct Range: Equatable {
        /// `(seq, json)` in sequence order.
        var events: [(seq: UInt64, json: [UInt8])]
        /// Oldest and newest sequence numbers stored, 0 when the journal is empty.
        var firstSeq: UInt64
        var lastSeq: UInt64

        static func == (lhs: Range, rhs: Range) -> Bool {
            lhs.firstSeq == rhs.firstSeq && lhs.lastSeq == rhs.lastSeq
                && lhs.events.map(\.seq) == rhs.events.map(\.seq) && lhs.events.map(\.json) == rhs.events.map(\.json)
        }
    }

    enum JournalError: Error, CustomStringConvertible {
        case cannotOpen(path: String, underlying: Error)

        var description: String {
            switch self {
            case .cannotOpen(let path, let underlying): "cannot open the event journal at \(path): \(underlying)"
            }
        }
    }

    /// Rows deleted per retention transaction, so a large prune never holds the write lock for long.
    private static let pruneChunk = 5_000

    let configuration: Configuration
    /// The newest sequence number stored when the journal was opened: numbering continues after it.
    let lastSeqAtOpen: UInt64
    private let database: DatabasePool
    /// Its own connection, so that a checkpoint never waits for the writer's nor holds it up.
    private let checkpointer: DatabaseQueue
    private let stopCheckpoints = DispatchSemaphore(value: 0)
    private let checkpointsStopped = DispatchSemaphore(value: 0)
    private var checkpointThread: Thread?
    private let logger: Logger

    // Guarded by `condition`, shared by the bus thread and the writer thread.
    private let condition = NSCondition()
    private var queue: [[Entry]] = []
    private var writing = false
    private var stopping = false
    private var written = Statistics()
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    private let errors = Counter(label: "switchboard_journal_errors_total")
    private let commitTimer = Metrics.Timer(label: "switchboard_journal_commit_seconds")
    private let pruned = Counter(label: "switchboard_journal_events_pruned_total")

    /// Opens (or creates) the journal; throws ``JournalError/cannotOpen(path:underlying:)`` naming the file.
    init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        var config = GRDB.Configuration()
        config.prepareDatabase { db in
            // WAL (DatabasePool's mode) with NORMAL syncs at checkpoints, not every commit: a power cut
            // may lose the last commits, a process crash loses nothing.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(configuration.writerCheckpointPages)")
            try db.execute(sql: "PRAGMA journal_size_limit = \(configuration.walSizeLimit)")
        }
        do {
            database = try DatabasePool(path: configuration.path, configuration: config)
            checkpointer = try DatabaseQueue(path: configuration.path, configuration: config)
            try database.write { db in
                try db.execute(sql: """
                    CREATE TABLE IF NOT EXISTS events(
                        seq INTEGER PRIMARY KEY, type TEXT NOT NULL, call_id TEXT, ts TEXT NOT NULL, json BLOB NOT NULL)
                    """)
            }
            lastSeqAtOpen = try database.read { db in try UInt64.fetchOne(db, sql: "SELECT MAX(seq) FROM events") ?? 0 }
        } catch {
            throw JournalError.cannotOpen(path: configuration.path, underlying: error)
        }
    }

    /// Starts the writer thread; `onCommitted` gets each batch on it, in append order, after its commit.
    func start(onCommitted: @escaping @Sendable ([Entry]) -> Void) {
        let thread = Thread { [self] in
            // Foundation does not apply `Thread.name` on Linux; top -H and the benches read this one.
            ThreadCPU.nameCurrentThread("switchboard-journal")
            run(onCommitted: onCommitted)
            finished.signal()
        }
        self.thread = thread
        thread.start()
        let checkpoints = Thread { [self] in
            ThreadCPU.nameCurrentThread("switchboard-ckpt")
            while stopCheckpoints.wait(timeout: .now() + configuration.checkpointInterval.inSeconds) == .timedOut {
                checkpoint()
            }
            checkpointsStopped.signal()
        }
        checkpointThread = checkpoints
        checkpoints.start()
    }

    /// Copies what the WAL holds into the database file (PASSIVE: as far as no reader needs, never waiting).
    private func checkpoint() {
        do {
            try checkpointer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(PASSIVE)") }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            // The writer's own checkpoint is running: it does the work.
        } catch {
            errors.increment()
            logger.error("journal checkpoint failed", metadata: ["journal.path": "\(configuration.path)", "journal.error": "\(error)"])
        }
    }

    /// Queues a batch for the next commit; never blocks on the disk.
    func append(_ batch: [Entry]) {
        condition.withLock {
            queue.append(batch)
            condition.signal()
        }
    }

    /// Waits until every appended batch is committed and handed back (for shutdown).
    func flush() {
        condition.withLock {
            while !queue.isEmpty || writing { condition.wait() }
        }
    }

    /// Commits and events written so far.
    var statistics: Statistics {
        condition.withLock { written }
    }

    /// Commits what is queued, then stops the writer thread.
    func stop() {
        condition.withLock {
            stopping = true
            condition.signal()
        }
        if thread != nil { finished.wait() }
        thread = nil
        if checkpointThread != nil {
            stopCheckpoints.signal()
            checkpointsStopped.wait()
            checkpointThread = nil
        }
        try? checkpointer.close()
        try? database.close()
    }

    private func run(onCommitted: @Sendable ([Entry]) -> Void) {
        var nextPrune = ContinuousClock.now
        while true {
            let (batches, stop) = condition.withLock { () -> ([[Entry]], Bool) in
                while queue.isEmpty, !stopping {
                    let wait = nextPrune - .now
                    if wait <= .zero { break }
                    _ = condition.wait(until: Date(timeIntervalSinceNow: wait.inSeconds))
                }
                defer { queue.removeAll(keepingCapacity: true) }
                writing = !queue.isEmpty
                return (queue, stopping)
            }
            if !batches.isEmpty {
                let entries = batches.count == 1 ? batches[0] : batches.flatMap { $0 }
                commitLogged(entries)
                for batch in batches { onCommitted(batch) }
                condition.withLock {
                    written.commits += 1
                    written.events += entries.count
                    writing = false
                    condition.broadcast()
                }
            } else if stop {
                return
            } else {
                pruneLogged()
                nextPrune = .now + configuration.pruneInterval
            }
        }
    }

    private func commitLogged(_ entries: [Entry]) {
        let started = ContinuousClock.now
        do {
            try commit(entries)
            commitTimer.recordNanoseconds(Int64((ContinuousClock.now - started).inSeconds * 1e9))
        } catch {
            errors.increment()
            logger.error("journal commit failed; the events are published anyway but replay will miss them", metadata: [
                "journal.path": "\(configuration.path)", "journal.error": "\(error)",
                "journal.first_seq": "\(entries.first?.seq ?? 0)", "journal.last_seq": "\(entries.last?.seq ?? 0)",
            ])
        }
    }

    private func pruneLogged() {
        do {
            let count = try prune(now: Date())
            if count > 0 {
                pruned.increment(by: count)
                logger.debug("journal pruned", metadata: ["journal.pruned": "\(count)"])
            }
        } catch {
            errors.increment()
            logger.error("journal retention failed", metadata: ["journal.path": "\(configuration.path)", "journal.error": "\(error)"])
        }
    }

    /// Stores `entries` in one transaction.
    func commit(_ entries: [Entry]) throws {
        try database.write { db in
            let statement = try db.cachedStatement(sql: "INSERT INTO events(seq, type, call_id, ts, json) VALUES (?, ?, ?, ?, ?)")
            for entry in entries {
                try statement.execute(arguments: [Int64(entry.seq), entry.type, entry.callId, entry.ts, Data(entry.json)])
            }
        }
    }

    /// Deletes events beyond the count limit or older than the age limit, a chunk per transaction so
    /// commits slip in between. The newest event always stays: numbering continues from it after a restart.
    @discardableResult
    func prune(now: Date) throws -> Int {
        let cutoff = Event.wireTimestamp(now.addingTimeInterval(-Double(configuration.maxAge.milliseconds) / 1000))
        var total = 0
        while true {
            let deleted = try database.write { db -> Int in
                guard let newest = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM events") else { return 0 }
                // Keep the newest maxEvents: everything below the maxEvents-th newest goes.
                let byCount = try Int64.fetchOne(db, sql: "SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?",
                                                 arguments: [configuration.maxEvents - 1]) ?? Int64.min
                // Rows are in seq order, and ts grows with seq, so the scan stops at the first recent event.
                let byAge = try Int64.fetchOne(db, sql: "SELECT seq FROM events WHERE ts >= ? ORDER BY seq LIMIT 1",
                                               arguments: [cutoff]) ?? newest
                let below = max(byCount, byAge)
                try db.execute(sql: "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq < ? ORDER BY seq LIMIT ?)",
                               arguments: [below, Self.pruneChunk])
                return db.changesCount
            }
            total += deleted
            if deleted < Self.pruneChunk { return total }
        }
    }

    /// How many events with a sequence number in `first...last` are stored (the events bench's check).
    func count(from first: UInt64, through last: UInt64) throws -> Int {
        try database.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events WHERE seq BETWEEN ? AND ?",
                             arguments: [Int64(clamping: first), Int64(clamping: last)]) ?? 0
        }
    }

    /// Up to `max` events from `fromSeq` on (from the oldest kept, when `fromSeq` is older), with the
    /// journal's bounds, read in one snapshot on the reader connection.
    func read(from fromSeq: UInt64, max: Int) throws -> Range {
        try database.read { db in
            let bounds = try Row.fetchOne(db, sql: "SELECT MIN(seq), MAX(seq) FROM events")
            let oldest: Int64? = bounds?[0]
            let newest: Int64? = bounds?[1]
            let first = oldest.map(UInt64.init) ?? 0
            let last = newest.map(UInt64.init) ?? 0
            var events: [(seq: UInt64, json: [UInt8])] = []
            let rows = try Row.fetchCursor(db, sql: "SELECT seq, json FROM events WHERE seq >= ? ORDER BY seq LIMIT ?",
                                           arguments: [Int64(clamping: fromSeq), max])
            while let row = try rows.next() {
                let seq: Int64 = row[0]
                let json: Data = row[1]
                events.append((UInt64(seq), Array(json)))
            }
            return Range(events: events, firstSeq: first, lastSeq: last)
        }
    }
}

extension Duration {
    /// Seconds with the fraction, for the APIs that take a `TimeInterval`.
    var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
