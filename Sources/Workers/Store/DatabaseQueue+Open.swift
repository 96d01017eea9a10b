import GRDB

extension DatabaseQueue {
    /// Opens (creating if needed) a worker's SQLite file the way every store here wants it: WAL, so
    /// the CLI can read and edit while the worker runs, a 5 s busy timeout for those moments, and
    /// the store's migrations applied.
    ///
    /// ```swift
    /// let database = try DatabaseQueue.openMigrated(path: "routes.sqlite", migrator: RouteStore.migrator)
    /// ```
    static func openMigrated(path: String, migrator: DatabaseMigrator) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(5)
        let database = try DatabaseQueue(path: path, configuration: configuration)
        try migrator.migrate(database)
        return database
    }
}
