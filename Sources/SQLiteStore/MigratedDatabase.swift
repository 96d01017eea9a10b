import Foundation
import GRDB

/// Opens an SQLite file with a store's migrations applied, where two processes may open the same new file at
/// once: a worker and its CLI (the accounting worker and `cdrs list`, a router and `routes add`), the gateway
/// and `switchboard-gateway keys create`.
///
/// ```swift
/// let database = try MigratedDatabase.open(migrator: RouteStore.migrator) {
///     try DatabaseQueue(path: "routes.sqlite", configuration: configuration)
/// }
/// ```
///
/// Then switching the file to WAL can meet the other's lock before the busy timeout applies (SQLITE_BUSY), and
/// GRDB, which reads the applied migrations before it takes the write lock, can run a migration the other has
/// just committed ("table ... already exists", or its row already in grdb_migrations). Each migration commits
/// on its own, so opening again, a moment later, settles both.
public enum MigratedDatabase {
    public static func open<Writer: DatabaseWriter>(migrator: DatabaseMigrator, attempts: Int = 10,
                                                    _ connect: () throws -> Writer) throws -> Writer {
        for attempt in 1... {
            do {
                let database = try connect()
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
