import GRDB
import SQLiteStore

extension DatabaseQueue {
    /// Opens (creating if needed) a worker's SQLite file the way every store here wants it: WAL, so
    /// the CLI can read and edit while the worker runs, a 5 s busy timeout for those moments, and
    /// the store's migrations applied (`MigratedDatabase`: the CLI may be opening it too).
    ///
    /// ```swift
    /// let database = try DatabaseQueue.openMigrated(path: "routes.sqlite", migrator: RouteStore.migrator)
    /// ```
    static func openMigrated(path: String, migrator: DatabaseMigrator) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(5)
        return try MigratedDatabase.open(migrator: migrator) { try DatabaseQueue(path: path, configuration: configuration) }
    }
}
