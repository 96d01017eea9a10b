import Foundation
import GRDB

extension DatabaseQueue {
    /// Opens (creating if needed) a worker's SQLite file the way every store here wants it: WAL, so
    /// the CLI can read and edit while the worker runs, a 5 s busy timeout for those moments, and
    /// the store's migrations applied.
    ///
    /// ```swift
    /// let database = try DatabaseQueue.openMigrated(path: "routes.sqlite", migrator: RouteStore.migrator)
    /// ```
    ///
    /// Two processes may open a new file at once (the accounting worker and `cdrs list`, a router and
    /// `routes add`). Then switching the file to WAL can meet the other's lock before the busy timeout
    /// applies (SQLITE_BUSY), and GRDB, which reads the applied migrations before it takes the write lock,
    /// can run a migration the other has just committed ("table ... already exists", or its row already
    /// in grdb_migrations). Each migration commits on its own, so opening again, a moment later, settles
    /// both.
    static func openMigrated(path: String, migrator: DatabaseMigrator, attempts: Int = 10) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(5)
        for attempt in 1... {
            do {
                let database = try DatabaseQueue(path: path, configuration: configuration)
                try migrator.migrate(database)
                return database
            } catch let error as DatabaseError
                        where [.SQLITE_BUSY, .SQLITE_ERROR, .SQLITE_CONSTRAINT].contains(error.resultCode) && attempt < attempts {
                Thread.sleep(forTimeInterval: 0.02 * Double(attempt))
            }
        }
        preconditionFailure("unreachable: the last attempt returns or throws")
    }
}
