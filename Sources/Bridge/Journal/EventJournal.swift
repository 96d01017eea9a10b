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
/// go through a separate reader connection of the same `DatabasePool`, so they never wait for a commit.
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
    private let logger: Logger

    // Guarded by `condition`, shared by the bus thread and the writer thread.
    private let condition = NSCondition()
    private var queue: [[Entry]] = []
    private var writing = false
    private var stopping = false
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
        }
        do {
            database = try DatabasePool(path: configuration.path, configuration: config)
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
            run(onCommitted: onCommitted)
            finished.signal()
        }
        thread.name = "switchboard-journal"
        self.thread = thread
        thread.start()
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

    /// Commits what is queued, then stops the writer thread.
    func stop() {
        condition.withLock {
            stopping = true
            condition.signal()
        }
        if thread != nil { finished.wait() }
        thread = nil
        try? database.close()
    }

    private func run(onCommitted: @Sendable ([Entry]) -> Void) {
        var nextPrune = ContinuousClock.now
        while true {
            let (batches, stop) = condition.withLock { () -> ([[Entry]], Bool) in
                while queue.isEmpty, !stopping {
                    let wait = nextPrune - .now
                    if wait <= .zero { break }
                    _ = condition.wait(until: Date(timeIntervalSinceNow: Double(wait.milliseconds) / 1000))
                }
                defer { queue.removeAll(keepingCapacity: true) }
                writing = !queue.isEmpty
                return (queue, stopping)
            }
            if !batches.isEmpty {
                commitLogged(batches.flatMap { $0 })
                for batch in batches { onCommitted(batch) }
                condition.withLock {
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
            commitTimer.recordNanoseconds(Int64((ContinuousClock.now - started).milliseconds * 1_000_000))
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
