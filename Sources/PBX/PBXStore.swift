import Foundation
import GRDB
import SQLiteStore

/// The PBX rules on disk: extensions and hunt groups in one SQLite file (WAL), with each round-robin group's
/// rotation. The `pbx` worker reads it; `switchboard-worker pbx-rules` and the gateway's `/api/pbx` edit it while
/// the worker runs.
///
/// ```swift
/// let store = try PBXStore(path: "pbx.sqlite")
/// try store.save(PBXExtension(user: "bob", forwardBusy: "carol"))
/// let router = try store.router()
/// ```
public struct PBXStore: Sendable {
    public let path: String
    private let database: DatabaseQueue

    /// Opens (creating and migrating) the file at `path`.
    /// - Throws: ``PBXError/databaseUnavailable(path:problem:)``.
    public init(path: String) throws {
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(5)
        do {
            database = try MigratedDatabase.open(migrator: Self.migrator) { try DatabaseQueue(path: path, configuration: configuration) }
        } catch let error as DatabaseError {
            throw PBXError.databaseUnavailable(path: path, problem: error.message ?? error.description)
        }
        self.path = path
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: extensions and hunt groups") { db in
            // Rules are kept as the JSON the API speaks: one row per user or group, read whole.
            try db.create(table: "pbx_extensions") { table in
                table.primaryKey("user", .text)
                table.column("rule", .text).notNull()
            }
            try db.create(table: "pbx_groups") { table in
                table.primaryKey("name", .text)
                table.column("rule", .text).notNull()
                // The next round-robin turn; advanced in the same write that reads it.
                table.column("next_turn", .integer).notNull().defaults(to: 0)
            }
        }
        return migrator
    }

    // MARK: Extensions

    /// Creates or replaces the rule for `rule.user`.
    /// - Throws: ``PBXError/invalid(_:)`` naming the problem; ``PBXError/nameTaken(_:)`` when a group has the name.
    public func save(_ rule: PBXExtension) throws {
        if let problem = rule.problem { throw PBXError.invalid(problem) }
        try database.write { db in
            if try Row.fetchOne(db, sql: "SELECT 1 FROM pbx_groups WHERE name = ?", arguments: [rule.user]) != nil {
                throw PBXError.nameTaken(rule.user)
            }
            try db.execute(sql: "INSERT INTO pbx_extensions (user, rule) VALUES (?, ?) ON CONFLICT(user) DO UPDATE SET rule = excluded.rule",
                           arguments: [rule.user, try Self.json(rule)])
        }
    }

    public func extensions() throws -> [PBXExtension] {
        try database.read { db in try Self.extensions(db) }
    }

    public func `extension`(_ user: String) throws -> PBXExtension? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT rule FROM pbx_extensions WHERE user = ?", arguments: [user]).map { try Self.decode($0) }
        }
    }

    /// - Throws: ``PBXError/notFound(_:)``.
    public func deleteExtension(_ user: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM pbx_extensions WHERE user = ?", arguments: [user])
            if db.changesCount == 0 { throw PBXError.notFound("extension \(user)") }
        }
    }

    // MARK: Hunt groups

    /// Creates or replaces the group `group.name`; a replaced group keeps its rotation.
    public func save(_ group: PBXGroup) throws {
        if let problem = group.problem { throw PBXError.invalid(problem) }
        try database.write { db in
            if try Row.fetchOne(db, sql: "SELECT 1 FROM pbx_extensions WHERE user = ?", arguments: [group.name]) != nil {
                throw PBXError.nameTaken(group.name)
            }
            try db.execute(sql: "INSERT INTO pbx_groups (name, rule) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET rule = excluded.rule",
                           arguments: [group.name, try Self.json(group)])
        }
    }

    public func groups() throws -> [PBXGroup] {
        try database.read { db in try Self.groups(db) }
    }

    public func group(_ name: String) throws -> PBXGroup? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT rule FROM pbx_groups WHERE name = ?", arguments: [name]).map { try Self.decode($0) }
        }
    }

    public func deleteGroup(_ name: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM pbx_groups WHERE name = ?", arguments: [name])
            if db.changesCount == 0 { throw PBXError.notFound("group \(name)") }
        }
    }

    /// The group's turn for this call, and the rotation moved on by one, in one write: two workers on one file never
    /// hand out the same turn, and a restart goes on where the last call left off.
    public func takeTurn(_ group: String) throws -> Int {
        try database.write { db in
            try Int.fetchOne(db, sql: "UPDATE pbx_groups SET next_turn = next_turn + 1 WHERE name = ? RETURNING next_turn - 1",
                             arguments: [group]) ?? 0
        }
    }

    // MARK: Snapshots

    /// Every rule, read in one transaction, with SQLite's `data_version` (it changes when another connection commits).
    public func snapshot() throws -> (router: PBXRouter, version: Int) {
        try database.read { db in
            (PBXRouter(extensions: try Self.extensions(db), groups: try Self.groups(db)), try Self.dataVersion(db))
        }
    }

    public func dataVersion() throws -> Int {
        try database.read { db in try Self.dataVersion(db) }
    }

    private static func dataVersion(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "PRAGMA data_version") ?? 0
    }

    private static func extensions(_ db: Database) throws -> [PBXExtension] {
        try String.fetchAll(db, sql: "SELECT rule FROM pbx_extensions ORDER BY user").map { try decode($0) }
    }

    private static func groups(_ db: Database) throws -> [PBXGroup] {
        try String.fetchAll(db, sql: "SELECT rule FROM pbx_groups ORDER BY name").map { try decode($0) }
    }

    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    private static func decode<T: Decodable>(_ text: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}

/// Why a PBX rule could not be saved or found.
public enum PBXError: Error, Equatable, CustomStringConvertible {
    case databaseUnavailable(path: String, problem: String)
    /// The rule is refused; the text names the field and the problem.
    case invalid(String)
    /// An extension and a group may not share a name: a call to it could mean either.
    case nameTaken(String)
    case notFound(String)

    public var description: String {
        switch self {
        case .databaseUnavailable(let path, let problem): "cannot open the PBX database \(path): \(problem)"
        case .invalid(let problem): problem
        case .nameTaken(let name): "\(name) is already an extension or a group; delete it first"
        case .notFound(let what): "no \(what)"
        }
    }
}
