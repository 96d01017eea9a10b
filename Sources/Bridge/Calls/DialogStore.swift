import BusSchema
import Foundation
import GRDB
import Logging
import Metrics
import SIPCore
import Synchronization

/// The dialogs of the calls that are up, in a SQLite file, so a bridge that crashed can end them
/// cleanly when it comes back (BYE on every leg, `call.ended` with cause `bridge_restart`).
///
/// The SIP loop never waits for the disk: `save` and `delete` queue the change and a serial queue of
/// the store's own writes whatever has gathered in one transaction. A crash can lose the last few
/// milliseconds of changes; the worst case is a call that ended just then getting one BYE too many,
/// which its phone answers 481.
final class DialogStore: Sendable {
    /// One call's answered legs.
    struct Record: Codable, Equatable, Sendable {
        struct AnsweredLeg: Codable, Equatable, Sendable {
            var role: Leg
            var dialog: Dialog
        }

        var callId: String
        var createdAt: Date
        var connectedAt: Date?
        var legs: [AnsweredLeg]
    }

    private enum Change: Sendable {
        case save(Record)
        case delete(String)
    }

    private let database: DatabaseQueue
    private let logger: Logger
    private let queue = DispatchQueue(label: "switchboard-dialog-store")
    /// Changes not yet handed to a write; the SIP loop appends, the store's queue takes them all.
    private let pending = Mutex<[Change]>([])
    private let errors = Counter(label: "switchboard_dialog_store_errors_total")

    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "call") { table in
                table.column("call_id", .text).primaryKey()
                table.column("record", .blob).notNull()
            }
        }
        return migrator
    }()

    init(path: String, logger: Logger) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        database = try DatabaseQueue(path: path, configuration: configuration)
        try database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
        try Self.migrator.migrate(database)
        self.logger = logger
    }

    /// What the previous run left: calls that were up when it stopped.
    func leftovers() throws -> [Record] {
        let decoder = JSONDecoder()
        return try database.read { db in
            try Row.fetchAll(db, sql: "SELECT call_id, record FROM call").compactMap { row in
                let data: Data = row["record"]
                do {
                    return try decoder.decode(Record.self, from: data)
                } catch {
                    logger.error("unreadable dialog record skipped", metadata: ["call.id": "\(row["call_id"] as String)", "store.error": "\(error)"])
                    return nil
                }
            }
        }
    }

    func save(_ record: Record) {
        enqueue(.save(record))
    }

    func delete(callId: String) {
        enqueue(.delete(callId))
    }

    /// Waits until every queued change is written (shutdown, tests).
    func flush() {
        queue.sync {}
    }

    private func enqueue(_ change: Change) {
        let first = pending.withLock { pending in
            pending.append(change)
            return pending.count == 1
        }
        if first { queue.async { [self] in writePending() } }
    }

    private func writePending() {
        let changes = pending.withLock { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        guard !changes.isEmpty else { return }
        let encoder = JSONEncoder()
        do {
            try database.write { db in
                for change in changes {
                    switch change {
                    case .save(let record):
                        try db.execute(sql: "INSERT OR REPLACE INTO call (call_id, record) VALUES (?, ?)",
                                       arguments: [record.callId, try encoder.encode(record)])
                    case .delete(let callId):
                        try db.execute(sql: "DELETE FROM call WHERE call_id = ?", arguments: [callId])
                    }
                }
            }
        } catch {
            errors.increment()
            logger.error("dialog state not saved", metadata: ["store.error": "\(error)", "store.changes": "\(changes.count)"])
        }
    }
}
