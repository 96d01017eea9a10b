import BusSchema
import Foundation
import Logging
import Synchronization
import Testing
@testable import Bridge

/// The journal on a real SQLite file: batches, numbering across reopen, retention, replay ranges.
@Suite struct EventJournalTests {
    static func entry(_ seq: UInt64, at date: Date = Date()) -> EventJournal.Entry {
        let event = Event(bridgeId: "b1", seq: seq, timestamp: date, callId: "b1-\(seq)",
                          body: .callRejected(Rejected(status: 503, reason: "Service Unavailable", workerId: nil, fallback: true,
                                                       cause: .noWorker, decisionMs: 0.1)))
        return EventJournal.Entry(seq: seq, type: event.type, callId: event.callId, ts: Event.wireTimestamp(date), json: event.jsonBytes())
    }

    static func open(_ path: String, maxEvents: Int = 1_000_000, maxAge: Duration = .seconds(72 * 3600)) throws -> EventJournal {
        try EventJournal(configuration: .init(path: path, maxEvents: maxEvents, maxAge: maxAge), logger: BridgeFixture.logger)
    }

    @Test func batchesComeBackCommittedInOrderAndAreReadable() async throws {
        let path = BridgeFixture.temporaryJournalPath()
        let journal = try Self.open(path)
        let batches = LockedBox<[[UInt64]]>([])
        journal.start { batch in batches.mutate { $0.append(batch.map(\.seq)) } }
        let entries = (1...9).map { Self.entry($0) }
        journal.append(Array(entries[0..<3]))
        journal.append([entries[3]])
        journal.append(Array(entries[4...]))
        journal.flush()
        // Whether batches shared a transaction or not, each comes back whole and in order.
        #expect(batches.value == [[1, 2, 3], [4], [5, 6, 7, 8, 9]])
        // A reader sees exactly what was committed, byte for byte.
        let range = try journal.read(from: 1, max: 100)
        #expect(range.events.map(\.seq) == Array(1...9))
        #expect(range.events.map(\.json) == entries.map(\.json))
        #expect(try Event.decode(range.events[3].json).callId == "b1-4")
        journal.stop()
    }

    @Test func numberingContinuesAfterReopen() throws {
        let path = BridgeFixture.temporaryJournalPath()
        let first = try Self.open(path)
        #expect(first.lastSeqAtOpen == 0)
        try first.commit((1...5).map { Self.entry($0) })
        first.stop()
        let second = try Self.open(path)
        #expect(second.lastSeqAtOpen == 5)
        second.stop()
    }

    @Test func readsClampToTheJournalAndSayWhereItStands() throws {
        let journal = try Self.open(BridgeFixture.temporaryJournalPath())
        defer { journal.stop() }
        let empty = try journal.read(from: 1, max: 10)
        #expect(empty.events.isEmpty && empty.firstSeq == 0 && empty.lastSeq == 0)
        try journal.commit((10...30).map { Self.entry($0) })
        // Older than the oldest: the answer starts at the oldest.
        let early = try journal.read(from: 1, max: 5)
        #expect(early.events.map(\.seq) == [10, 11, 12, 13, 14])
        #expect((early.firstSeq, early.lastSeq) == (10, 30))
        #expect(try journal.read(from: 28, max: 100).events.map(\.seq) == [28, 29, 30])
        #expect(try journal.read(from: 31, max: 100).events.isEmpty)
    }

    @Test func countsTheEventsStoredInARange() throws {
        let journal = try Self.open(BridgeFixture.temporaryJournalPath())
        defer { journal.stop() }
        #expect(try journal.count(from: 1, through: 100) == 0)
        try journal.commit((10...30).map { Self.entry($0) } + (40...41).map { Self.entry($0) })
        #expect(try journal.count(from: 1, through: 100) == 23)
        #expect(try journal.count(from: 10, through: 30) == 21)
        #expect(try journal.count(from: 30, through: 40) == 2)
        #expect(try journal.count(from: 31, through: 39) == 0)
        #expect(try journal.count(from: 41, through: UInt64.max) == 1)
    }

    /// The database file's size: what checkpoints have copied out of the WAL.
    static func databaseBytes(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    /// Commits leave the WAL-to-database copy (and its syncs) to the checkpoint thread: with the writer's own
    /// checkpoint out of reach, the rows still reach the database file, and only when that thread runs.
    @Test(arguments: [true, false])
    func theCheckpointThreadCopiesTheWALIntoTheDatabase(checkpointing: Bool) async throws {
        let path = BridgeFixture.temporaryJournalPath()
        var configuration = EventJournal.Configuration(path: path)
        configuration.writerCheckpointPages = 1_000_000
        configuration.checkpointInterval = checkpointing ? .milliseconds(20) : .seconds(3600)
        let journal = try EventJournal(configuration: configuration, logger: BridgeFixture.logger)
        journal.start { _ in }
        let before = Self.databaseBytes(path)
        for chunk in stride(from: 1, through: 3_000, by: 100) { journal.append((chunk..<chunk + 100).map { Self.entry(UInt64($0)) }) }
        journal.flush()
        // Checkpointing: until the rows are copied. Not: long enough for a dozen checkpoints, were there any.
        let deadline = ContinuousClock.now + (checkpointing ? .seconds(5) : .milliseconds(300))
        while Self.databaseBytes(path) < before + 500_000, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect((Self.databaseBytes(path) >= before + 500_000) == checkpointing)
        #expect(try journal.count(from: 1, through: 3_000) == 3_000)
        #expect(journal.statistics.events == 3_000)
        journal.stop()
    }

    @Test func retentionPrunesByCountAndKeepsNumbering() throws {
        let path = BridgeFixture.temporaryJournalPath()
        let journal = try Self.open(path, maxEvents: 10)
        try journal.commit((1...25).map { Self.entry($0) })
        #expect(try journal.prune(now: Date()) == 15)
        let range = try journal.read(from: 0, max: 100)
        #expect(range.events.map(\.seq) == Array(16...25))
        #expect(try journal.prune(now: Date()) == 0)
        journal.stop()
        #expect(try Self.open(path).lastSeqAtOpen == 25)
    }

    @Test func retentionPrunesByAgeButKeepsTheNewestEvent() throws {
        let path = BridgeFixture.temporaryJournalPath()
        let journal = try Self.open(path, maxAge: .seconds(3600))
        let now = Date()
        try journal.commit((1...4).map { Self.entry($0, at: now.addingTimeInterval(-7200)) } + (5...6).map { Self.entry($0, at: now) })
        #expect(try journal.prune(now: now) == 4)
        #expect(try journal.read(from: 0, max: 100).events.map(\.seq) == [5, 6])
        // Everything is old: all but the newest goes, so a reopened journal still numbers from 7.
        #expect(try journal.prune(now: now.addingTimeInterval(86400)) == 1)
        #expect(try journal.read(from: 0, max: 100).events.map(\.seq) == [6])
        journal.stop()
        #expect(try Self.open(path).lastSeqAtOpen == 6)
    }

    @Test func largePrunesGoInChunks() throws {
        let journal = try Self.open(BridgeFixture.temporaryJournalPath(), maxEvents: 100)
        defer { journal.stop() }
        try journal.commit((1...12_100).map { Self.entry($0) })
        #expect(try journal.prune(now: Date()) == 12_000)
        #expect(try journal.read(from: 0, max: 1).events.first?.seq == 12_001)
    }

    @Test func aJournalThatCannotBeOpenedNamesItsPath() {
        let path = "/nonexistent-dir-\(UUID().uuidString)/bridge.journal.sqlite"
        #expect {
            try Self.open(path)
        } throws: { error in
            "\(error)".contains("cannot open the event journal at \(path)")
        }
    }

    @Test func groupCommitThroughput() throws {
        let journal = try Self.open(BridgeFixture.temporaryJournalPath())
        let entries = (1...20_000).map { Self.entry(UInt64($0)) }
        let batched = LockedBox(0)
        journal.start { batch in batched.mutate { $0 += batch.count } }
        let started = ContinuousClock.now
        for chunk in stride(from: 0, to: entries.count, by: 50) { journal.append(Array(entries[chunk..<min(chunk + 50, entries.count)])) }
        journal.flush()
        let elapsed = ContinuousClock.now - started
        journal.stop()
        #expect(batched.value == entries.count)
        print("journal: \(entries.count) events in batches of 50 committed in \(elapsed) (\(Int(Double(entries.count) / (Double(elapsed.milliseconds) / 1000))) events/s)")
    }
}

/// A value shared with a callback on another thread.
final class LockedBox<Value: Sendable>: Sendable {
    private let stored: Mutex<Value>

    init(_ value: Value) {
        stored = Mutex(value)
    }

    var value: Value { stored.withLock { $0 } }

    func mutate(_ body: (inout Value) -> Void) {
        stored.withLock { body(&$0) }
    }
}
