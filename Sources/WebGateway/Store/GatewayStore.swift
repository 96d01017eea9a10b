import CallPolicy
import Foundation
import GRDB
import SQLiteStore

/// What a key or a user may do: where it may call, how fast, how many calls at once.
struct AccessPolicy: Codable, Equatable, Sendable {
    /// ``DialPattern``s; empty: anything the default rules allow.
    var allow: [String] = []
    var deny: [String] = []
    /// Live originated calls at once (Telnyx starts new accounts at 2).
    var maxConcurrent: Int = 2
    /// Sustained requests per second, and the burst above it.
    var ratePerSecond: Double = 5
    var burst: Int = 10
    /// Sees every call and the CDRs, not only its own calls.
    var admin: Bool = false
    /// ``DialPattern``s of the numbers and SIP accounts this principal owns: what `from` may be. A
    /// user also owns the account of its own name.
    var numbers: [String] = []
    /// ``DialPattern``s a `caller_id` may match; empty: the principal's numbers.
    var callerIds: [String] = []

    enum CodingKeys: String, CodingKey {
        case allow, deny, maxConcurrent = "max_concurrent", ratePerSecond = "rate_per_second", burst, admin, numbers,
             callerIds = "caller_ids"
    }

    init(allow: [String] = [], deny: [String] = [], maxConcurrent: Int = 2, ratePerSecond: Double = 5, burst: Int = 10,
         admin: Bool = false, numbers: [String] = [], callerIds: [String] = []) {
        self.allow = allow
        self.deny = deny
        self.maxConcurrent = maxConcurrent
        self.ratePerSecond = ratePerSecond
        self.burst = burst
        self.admin = admin
        self.numbers = numbers
        self.callerIds = callerIds
    }

    // Rows written before `numbers` and `caller_ids` existed lack them: they read as owning nothing.
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(allow: try container.decode([String].self, forKey: .allow), deny: try container.decode([String].self, forKey: .deny),
                  maxConcurrent: try container.decode(Int.self, forKey: .maxConcurrent),
                  ratePerSecond: try container.decode(Double.self, forKey: .ratePerSecond),
                  burst: try container.decode(Int.self, forKey: .burst), admin: try container.decode(Bool.self, forKey: .admin),
                  numbers: try container.decodeIfPresent([String].self, forKey: .numbers) ?? [],
                  callerIds: try container.decodeIfPresent([String].self, forKey: .callerIds) ?? [])
    }
}

/// An API key as stored: only the SHA-256 of the secret, never the secret.
struct APIKeyRecord: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "api_keys"
    enum CodingKeys: String, CodingKey {
        case id, name, secretHash = "secret_hash", createdAt = "created_at", revokedAt = "revoked_at", policy
    }

    /// The public part (`sbk_1a2b3c4d`), shown in lists and logs and carried as the bus `account`.
    var id: String
    var name: String
    var secretHash: String
    var createdAt: String
    var revokedAt: String?
    var policy: AccessPolicy
}

/// A person who logs in to the page; the password is a ``PasswordHash``.
struct UserRecord: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "users"
    enum CodingKeys: String, CodingKey {
        case name, passwordHash = "password_hash", createdAt = "created_at", policy
    }

    var name: String
    var passwordHash: String
    var createdAt: String
    var policy: AccessPolicy
}

/// A stored key or user: what ``GatewayStore`` changes the policy of.
protocol PrincipalRecord: FetchableRecord, PersistableRecord {
    var policy: AccessPolicy { get set }
}

extension APIKeyRecord: PrincipalRecord {}
extension UserRecord: PrincipalRecord {}

/// A login session; the cookie carries the id, the table only its SHA-256.
struct SessionRecord: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "sessions"
    enum CodingKeys: String, CodingKey {
        case idHash = "id_hash", user, csrfToken = "csrf_token", createdAt = "created_at", expiresAt = "expires_at"
    }

    var idHash: String
    var user: String
    /// The synchronizer token every state-changing request of this session must echo in `X-CSRF-Token`.
    var csrfToken: String
    var createdAt: String
    var expiresAt: String
}

/// Failures of the gateway's own database and its CLI.
enum GatewayStoreError: Error, Equatable, CustomStringConvertible {
    case unknownKey(String)
    case duplicateUser(String)
    case unknownUser(String)
    case invalidPattern(String)
    /// `--remove` named a number the key or user does not have (with the ones it has).
    case notANumberOf(String, numbers: [String])

    var description: String {
        switch self {
        case .unknownKey(let id): "no API key \(id) (see `keys list`)"
        case .duplicateUser(let name): "user \(name) exists already; use `users passwd`"
        case .unknownUser(let name): "no user \(name)"
        case .invalidPattern(let pattern): "invalid pattern \(pattern): use digits, +, x (any digit), a trailing *, or a SIP user name"
        case .notANumberOf(let number, let numbers):
            "\(number) is not among its numbers (\(numbers.isEmpty ? "it has none" : numbers.joined(separator: ", "))); nothing changed"
        }
    }
}

extension AccessPolicy {
    /// Adds the numbers in `adding` it does not have yet, then removes those in `removing`, each of which it must have
    /// (as written: a typo in a removal is an error, not a silent no-op).
    mutating func changeNumbers(adding: [String], removing: [String]) throws {
        for pattern in adding where !DialPattern.validate(pattern) { throw GatewayStoreError.invalidPattern(pattern) }
        for number in adding where !numbers.contains(number) { numbers.append(number) }
        for number in removing {
            guard let index = numbers.firstIndex(of: number) else { throw GatewayStoreError.notANumberOf(number, numbers: numbers) }
            numbers.remove(at: index)
        }
    }
}

/// The gateway's SQLite file (WAL): API keys, users, sessions, and the live-call table with the event
/// cursor it was built from, so a restarted gateway resumes from the bridge's journal.
///
/// ```swift
/// let store = try GatewayStore(path: "gateway.sqlite")
/// let (record, secret) = try store.createKey(name: "crm", policy: AccessPolicy())
/// print(secret)                       // shown once: sbk_1a2b3c4d_...
/// try store.authenticate(key: secret) // the record, or nil when unknown or revoked
/// ```
final class GatewayStore: Sendable {
    let path: String
    private let database: DatabasePool

    init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        // The gateway and its CLI (`keys create`, `users add`) may open a new file at once.
        database = try MigratedDatabase.open(migrator: Self.migrator) { try DatabasePool(path: path, configuration: configuration) }
        self.path = path
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: keys, users, sessions, live calls") { db in
            try db.create(table: "api_keys") { table in
                table.column("id", .text).primaryKey()
                table.column("name", .text).notNull()
                table.column("secret_hash", .text).notNull()
                table.column("created_at", .text).notNull()
                table.column("revoked_at", .text)
                table.column("policy", .jsonText).notNull()
            }
            try db.create(table: "users") { table in
                table.column("name", .text).primaryKey()
                table.column("password_hash", .text).notNull()
                table.column("created_at", .text).notNull()
                table.column("policy", .jsonText).notNull()
            }
            try db.create(table: "sessions") { table in
                table.column("id_hash", .text).primaryKey()
                table.column("user", .text).notNull().references("users", column: "name", onDelete: .cascade)
                table.column("csrf_token", .text).notNull()
                table.column("created_at", .text).notNull()
                table.column("expires_at", .text).notNull()
            }
            try db.create(table: "live_calls") { table in
                table.column("call_id", .text).primaryKey()
                table.column("bridge", .text).notNull()
                table.column("call", .jsonText).notNull()
            }
            try db.create(table: "cursors") { table in
                table.column("bridge", .text).primaryKey()
                table.column("last_seq", .integer).notNull()
            }
        }
        return migrator
    }

    // MARK: API keys

    /// Creates a key and returns its record and the full secret, which is stored nowhere.
    func createKey(name: String, policy: AccessPolicy) throws -> (APIKeyRecord, String) {
        for pattern in policy.allow + policy.deny + policy.numbers + policy.callerIds where !DialPattern.validate(pattern) {
            throw GatewayStoreError.invalidPattern(pattern)
        }
        let id = "sbk_" + (0..<4).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max)) }.joined()
        let secret = "\(id)_\(Secrets.randomToken(bytes: 32))"
        let record = APIKeyRecord(id: id, name: name, secretHash: Secrets.sha256Hex(secret), createdAt: Timestamp.now(),
                                  revokedAt: nil, policy: policy)
        try database.write { db in try record.insert(db) }
        return (record, secret)
    }

    func revokeKey(id: String) throws {
        let changed = try database.write { db in
            try db.execute(sql: "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                           arguments: [Timestamp.now(), id])
            return db.changesCount
        }
        if changed == 0, try key(id: id) == nil { throw GatewayStoreError.unknownKey(id) }
    }

    /// Adds and removes numbers the key owns (what `from` may be); returns the numbers it then owns. The key's next
    /// request sees them (every request reads the key's row).
    func changeNumbers(keyId id: String, adding: [String], removing: [String]) throws -> [String] {
        try changeNumbers(of: APIKeyRecord.self, id: id, unknown: .unknownKey(id), adding: adding, removing: removing)
    }

    func key(id: String) throws -> APIKeyRecord? {
        try database.read { db in try APIKeyRecord.fetchOne(db, key: id) }
    }

    func keys() throws -> [APIKeyRecord] {
        try database.read { db in try APIKeyRecord.order(Column("created_at")).fetchAll(db) }
    }

    /// The live record of `key` (`sbk_<id>_<secret>`); nil when unknown, wrong or revoked.
    func authenticate(key secret: String) throws -> APIKeyRecord? {
        let parts = secret.split(separator: "_", maxSplits: 2)
        guard parts.count == 3, parts[0] == "sbk" else { return nil }
        guard let record = try key(id: "sbk_\(parts[1])"), record.revokedAt == nil,
              Secrets.constantTimeEqual(record.secretHash, Secrets.sha256Hex(secret)) else { return nil }
        return record
    }

    // MARK: Users and sessions

    func addUser(name: String, password: String, policy: AccessPolicy, iterations: Int = PasswordHash.defaultIterations) throws {
        let record = UserRecord(name: name, passwordHash: try PasswordHash.make(password, iterations: iterations),
                                createdAt: Timestamp.now(), policy: policy)
        try database.write { db in
            if try UserRecord.exists(db, key: name) { throw GatewayStoreError.duplicateUser(name) }
            try record.insert(db)
        }
    }

    /// Sets a new password and ends the user's sessions.
    func setPassword(name: String, password: String, iterations: Int = PasswordHash.defaultIterations) throws {
        let hash = try PasswordHash.make(password, iterations: iterations)
        try database.write { db in
            guard var user = try UserRecord.fetchOne(db, key: name) else { throw GatewayStoreError.unknownUser(name) }
            user.passwordHash = hash
            try user.update(db)
            try SessionRecord.filter(Column("user") == name).deleteAll(db)
        }
    }

    /// Adds and removes numbers the user owns (besides its own SIP account); returns the numbers it then owns. Its
    /// sessions' next requests see them (every request reads the user's row).
    func changeNumbers(user name: String, adding: [String], removing: [String]) throws -> [String] {
        try changeNumbers(of: UserRecord.self, id: name, unknown: .unknownUser(name), adding: adding, removing: removing)
    }

    private func changeNumbers<Record: PrincipalRecord>(of type: Record.Type, id: String, unknown: GatewayStoreError, adding: [String],
                                                        removing: [String]) throws -> [String] {
        try database.write { db in
            guard var record = try Record.fetchOne(db, key: id) else { throw unknown }
            try record.policy.changeNumbers(adding: adding, removing: removing)
            try record.update(db)
            return record.policy.numbers
        }
    }

    func user(name: String) throws -> UserRecord? {
        try database.read { db in try UserRecord.fetchOne(db, key: name) }
    }

    /// Opens a session for `name`, whose password ``PasswordChecker`` has accepted; returns its cookie value and record.
    func openSession(user name: String, lifetime: Duration) throws -> (cookie: String, session: SessionRecord)? {
        guard let user = try user(name: name) else { return nil }
        let cookie = Secrets.randomToken()
        let seconds = TimeInterval(lifetime.components.seconds)
        let session = SessionRecord(idHash: Secrets.sha256Hex(cookie), user: user.name, csrfToken: Secrets.randomToken(),
                                    createdAt: Timestamp.now(), expiresAt: Timestamp.format(Date().addingTimeInterval(seconds)))
        try database.write { db in
            try db.execute(sql: "DELETE FROM sessions WHERE expires_at < ?", arguments: [Timestamp.now()])
            try session.insert(db)
        }
        return (cookie, session)
    }

    /// The session and its user for a cookie value; nil when unknown or expired.
    func session(cookie: String) throws -> (SessionRecord, UserRecord)? {
        try database.read { db in
            guard let session = try SessionRecord.fetchOne(db, key: Secrets.sha256Hex(cookie)),
                  session.expiresAt > Timestamp.now(),
                  let user = try UserRecord.fetchOne(db, key: session.user) else { return nil }
            return (session, user)
        }
    }

    func logout(cookie: String) throws {
        _ = try database.write { db in try SessionRecord.deleteOne(db, key: Secrets.sha256Hex(cookie)) }
    }

    // MARK: Live calls

    /// The saved live calls of every bridge and each bridge's cursor.
    func liveCalls() throws -> (calls: [LiveCall], cursors: [String: UInt64]) {
        try database.read { db in
            let calls = try String.fetchAll(db, sql: "SELECT call FROM live_calls").compactMap {
                try? JSONDecoder().decode(LiveCall.self, from: Data($0.utf8))
            }
            let rows = try Row.fetchAll(db, sql: "SELECT bridge, last_seq FROM cursors")
            let cursors = Dictionary(uniqueKeysWithValues: rows.map { ($0["bridge"] as String, UInt64($0["last_seq"] as Int64)) })
            return (calls, cursors)
        }
    }

    /// Saves what one event changed and moves the bridge's cursor, in one transaction.
    func saveLiveCalls(bridge: String, seq: UInt64, upserts: [LiveCall], removals: [String]) async throws {
        let encoded = try upserts.map { ($0.callId, String(decoding: try JSONEncoder().encode($0), as: UTF8.self)) }
        try await database.write { db in
            for (callId, json) in encoded {
                try db.execute(sql: "INSERT OR REPLACE INTO live_calls (call_id, bridge, call) VALUES (?, ?, ?)",
                               arguments: [callId, bridge, json])
            }
            for callId in removals { try db.execute(sql: "DELETE FROM live_calls WHERE call_id = ?", arguments: [callId]) }
            try db.execute(sql: """
                INSERT INTO cursors (bridge, last_seq) VALUES (?, ?) ON CONFLICT(bridge) DO UPDATE SET last_seq = excluded.last_seq
                """, arguments: [bridge, Int64(seq)])
        }
    }
}

/// ISO 8601 UTC with milliseconds, the bus's format, which sorts as text.
enum Timestamp {
    static func now() -> String { format(Date()) }

    static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    /// Parses with or without fractional seconds.
    static func parse(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}
