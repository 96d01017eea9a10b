import GRDB

/// The dial plan on disk: routes and blocks in one SQLite file, created and migrated on first use.
///
/// Several processes share the file — the router reads it, the CLI edits it while the router runs —
/// so it is opened in WAL mode (readers never wait for a writer) with a busy timeout for writers.
///
/// ```swift
/// let store = try RouteStore(path: "/var/lib/switchboard/routes.sqlite")
/// let route = try store.addRoute(Route(prefix: "1202", target: "sip:gw1.example.com", cost: 0.01))
/// try store.removeRoute(id: route.id!)
/// ```
struct RouteStore: Sendable {
    /// Where the file is, for messages.
    let path: String
    private let database: DatabaseQueue

    /// Opens (creating if needed) and migrates the database at `path`.
    /// - Throws: ``DialPlanError/databaseUnavailable(path:problem:)``.
    init(path: String) throws {
        do {
            database = try DatabaseQueue.openMigrated(path: path, migrator: Self.migrator)
        } catch let error as DatabaseError {
            throw DialPlanError.databaseUnavailable(path: path, problem: error.message ?? error.description)
        }
        self.path = path
    }

    /// The schema, one migration per released change; applied migrations are skipped, so opening an
    /// up-to-date file changes nothing.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: routes and blocks") { db in
            try db.create(table: "routes") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("prefix", .text).notNull()
                table.column("target", .text).notNull()
                table.column("cost", .double).notNull().defaults(to: 0)
                table.column("priority", .integer).notNull().defaults(to: 0)
                table.column("description", .text)
                table.uniqueKey(["prefix", "target"])
            }
            try db.create(table: "blocks") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("kind", .text).notNull().check { ["caller", "destination"].contains($0) }
                table.column("pattern", .text).notNull()
                table.column("reason", .text)
                table.uniqueKey(["kind", "pattern"])
            }
        }
        return migrator
    }

    // MARK: Routes

    /// Saves `route` and returns it with its id.
    /// - Throws: ``DialPlanError/duplicateRoute(prefix:target:existingId:)`` when the prefix already
    ///   routes to that target.
    @discardableResult
    func addRoute(_ route: Route) throws -> Route {
        try database.write { db in
            if let existing = try Route.filter(Column("prefix") == route.prefix && Column("target") == route.target).fetchOne(db),
               let existingId = existing.id {
                throw DialPlanError.duplicateRoute(prefix: route.prefix, target: route.target, existingId: existingId)
            }
            return try route.inserted(db)
        }
    }

    /// Every route, by prefix and then in least-cost order.
    func routes() throws -> [Route] {
        try database.read { db in try Self.allRoutes(db) }
    }

    /// Deletes the route with `id`.
    /// - Throws: ``DialPlanError/routeNotFound(id:)``.
    func removeRoute(id: Int64) throws {
        let deleted = try database.write { db in try Route.deleteOne(db, key: id) }
        if !deleted { throw DialPlanError.routeNotFound(id: id) }
    }

    // MARK: Blocks

    /// Saves `block` and returns it with its id.
    /// - Throws: ``DialPlanError/duplicateBlock(kind:pattern:existingId:)``.
    @discardableResult
    func addBlock(_ block: Block) throws -> Block {
        try database.write { db in
            if let existing = try Block.filter(Column("kind") == block.kind.rawValue && Column("pattern") == block.pattern).fetchOne(db),
               let existingId = existing.id {
                throw DialPlanError.duplicateBlock(kind: block.kind, pattern: block.pattern, existingId: existingId)
            }
            return try block.inserted(db)
        }
    }

    /// Every block, callers first, by pattern.
    func blocks() throws -> [Block] {
        try database.read { db in try Self.allBlocks(db) }
    }

    /// Deletes the block with `id`.
    /// - Throws: ``DialPlanError/blockNotFound(id:)``.
    func removeBlock(id: Int64) throws {
        let deleted = try database.write { db in try Block.deleteOne(db, key: id) }
        if !deleted { throw DialPlanError.blockNotFound(id: id) }
    }

    // MARK: Snapshots for the router

    /// Routes and blocks read in one transaction, with the `data_version` they were read at.
    func snapshot() async throws -> (table: RoutingTable, version: Int) {
        try await database.read { db in
            (RoutingTable(routes: try Self.allRoutes(db), blocks: try Self.allBlocks(db)), try Self.dataVersion(db))
        }
    }

    /// SQLite's `PRAGMA data_version`: it changes when another connection (the CLI, another process)
    /// commits to the file, so polling it tells the router when to reload without reading the tables.
    func dataVersion() async throws -> Int {
        try await database.read { db in try Self.dataVersion(db) }
    }

    private static func dataVersion(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "PRAGMA data_version") ?? 0
    }

    private static func allRoutes(_ db: Database) throws -> [Route] {
        try Route.order(Column("prefix"), Column("cost"), Column("priority"), Column("id")).fetchAll(db)
    }

    private static func allBlocks(_ db: Database) throws -> [Block] {
        try Block.order(Column("kind"), Column("pattern")).fetchAll(db)
    }
}

extension Route: FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "routes"

    mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

extension Block: FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "blocks"

    mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}
