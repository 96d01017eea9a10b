import Foundation
import GRDB
import SQLiteStore

/// Makes and checks the slow salted hashes of the password history; the gateway passes its PBKDF2
/// (`PasswordHash`), so this library holds no second password-hashing scheme.
public struct PasswordHasher: Sendable {
    public var hash: @Sendable (_ password: String) throws -> String
    public var verify: @Sendable (_ password: String, _ hash: String) -> Bool

    public init(hash: @escaping @Sendable (String) throws -> String, verify: @escaping @Sendable (String, String) -> Bool) {
        self.hash = hash
        self.verify = verify
    }
}

/// SIP accounts in Kamailio's own SQLite database, the one openser-cfg's auth_db and alias_db read on every
/// request: so a change counts from the next REGISTER or call, without a restart.
///
/// - `subscriber`: one row per account; `ha1`/`ha1b` and never the password (the `password` column is left
///   empty), plus the columns make-db.sh adds: `disabled` (auth_db's `load_credentials`), `display_name`,
///   `billing_account`.
/// - `dbaliases`: an account's aliases (DIDs).
/// - `switchboard_password_history`: this store's own table, the last ``PasswordPolicy/historyDepth``
///   passwords of each account as ``PasswordHasher`` hashes, for the reuse rule.
///
/// The file is opened in WAL mode, so Kamailio's reads never wait for a write (its db_sqlite sets no busy
/// timeout: a locked file would fail an authentication); writes wait up to 5 s for another writer (the CLI).
/// User names are unique whatever the domain, because openser-cfg's auth_db matches the user name only.
///
/// ```swift
/// let store = try SIPAccountStore(path: "/var/lib/kamailio/switchboard.db", hasher: hasher)
/// try store.create(SIPAccount(user: "carol", domain: "switchboard.local", aliases: ["12025550123"]), password: "...")
/// try store.update(user: "carol", SIPAccountChange(enabled: false))   // its next REGISTER gets 403
/// ```
public final class SIPAccountStore: Sendable {
    public let path: String
    public let policy: PasswordPolicy
    private let hasher: PasswordHasher
    private let database: DatabasePool

    public init(path: String, policy: PasswordPolicy = PasswordPolicy(), hasher: PasswordHasher) throws {
        // A missing file would be created empty, and Kamailio would never see it: make-db.sh makes the real one.
        guard FileManager.default.fileExists(atPath: path) else {
            throw SIPAccountError.notProvisionable(path: path, reason: "no such file")
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        database = try MigratedDatabase.open(migrator: Self.migrator) { try DatabasePool(path: path, configuration: configuration) }
        self.path = path
        self.policy = policy
        self.hasher = hasher
        try database.read { db in
            guard try db.tableExists("subscriber"), try db.tableExists("dbaliases") else {
                throw SIPAccountError.notProvisionable(path: path, reason: "no subscriber or dbaliases table")
            }
            let columns = Set(try db.columns(in: "subscriber").map(\.name))
            let missing = ["ha1", "ha1b", "disabled", "display_name", "billing_account"].filter { !columns.contains($0) }
            if !missing.isEmpty {
                throw SIPAccountError.notProvisionable(path: path, reason: "subscriber lacks \(missing.joined(separator: ", "))")
            }
        }
    }

    /// Only the store's own table: Kamailio's tables belong to make-db.sh (one schema, one place).
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("switchboard v1: password history") { db in
            try db.create(table: "switchboard_password_history") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("username", .text).notNull().indexed()
                table.column("hash", .text).notNull()
                table.column("created_at", .text).notNull()
            }
        }
        return migrator
    }

    // MARK: Reading

    public func accounts() throws -> [SIPAccount] {
        try database.read { db in
            let aliases = try Self.aliasesByUser(db)
            return try Row.fetchAll(db, sql: "\(Self.select) ORDER BY username").map { Self.account($0, aliases: aliases) }
        }
    }

    public func account(user: String) throws -> SIPAccount? {
        try database.read { db in try Self.account(db, user: user) }
    }

    // MARK: Changing

    /// Adds `account` with `password` (checked against ``policy``); fails if the user or an alias is taken.
    @discardableResult
    public func create(_ account: SIPAccount, password: String) throws -> SIPAccount {
        try SIPAccountFields.checkUser(account.user)
        try SIPAccountFields.checkDomain(account.domain)
        try Self.checkOptional(account)
        try SIPAccountFields.checkAliases(account.aliases)
        if let refusal = policy.refusal(of: password, user: account.user) { throw SIPAccountError.passwordRefused(refusal) }
        let credentials = DigestCredentials(user: account.user, domain: account.domain, password: password)
        let hash = try hasher.hash(password)
        return try database.write { db in
            if try Self.account(db, user: account.user) != nil { throw SIPAccountError.duplicateUser(account.user) }
            if let owner = try String.fetchOne(db, sql: "SELECT username FROM dbaliases WHERE alias_username = ?", arguments: [account.user]) {
                throw SIPAccountError.aliasTaken(alias: account.user, owner: owner)
            }
            try db.execute(sql: """
                INSERT INTO subscriber (username, domain, password, ha1, ha1b, disabled, display_name, billing_account)
                VALUES (?, ?, '', ?, ?, ?, ?, ?)
                """, arguments: [account.user, account.domain, credentials.ha1, credentials.ha1b, account.enabled ? 0 : 1,
                                 account.displayName ?? "", account.billingAccount ?? ""])
            try Self.replaceAliases(db, of: account.user, domain: account.domain, with: account.aliases)
            try self.remember(db, user: account.user, hash: hash)
            guard let created = try Self.account(db, user: account.user) else { throw SIPAccountError.unknownUser(account.user) }
            return created
        }
    }

    /// Applies `change`; a new password must pass ``policy`` and differ from the last ``PasswordPolicy/historyDepth``.
    @discardableResult
    public func update(user: String, _ change: SIPAccountChange) throws -> SIPAccount {
        guard let current = try account(user: user) else { throw SIPAccountError.unknownUser(user) }
        var updated = current
        if let name = change.displayName { updated.displayName = name.isEmpty ? nil : name }
        if let billing = change.billingAccount { updated.billingAccount = billing.isEmpty ? nil : billing }
        if let aliases = change.aliases { updated.aliases = aliases }
        if let enabled = change.enabled { updated.enabled = enabled }
        try Self.checkOptional(updated)
        try SIPAccountFields.checkAliases(updated.aliases)

        var newPassword: (DigestCredentials, hash: String)?
        if let password = change.password {
            if let refusal = policy.refusal(of: password, user: user) { throw SIPAccountError.passwordRefused(refusal) }
            // The slow part (one PBKDF2 per remembered password) runs outside the write transaction.
            let previous = try database.read { db in
                try String.fetchAll(db, sql: "SELECT hash FROM switchboard_password_history WHERE username = ?", arguments: [user])
            }
            if previous.contains(where: { hasher.verify(password, $0) }) {
                throw SIPAccountError.passwordRefused(PasswordRefusal(
                    rule: .reused, detail: "the password is one of this account's last \(policy.historyDepth) passwords"))
            }
            newPassword = (DigestCredentials(user: user, domain: current.domain, password: password), try hasher.hash(password))
        }
        return try database.write { db in
            guard try Self.account(db, user: user) != nil else { throw SIPAccountError.unknownUser(user) }
            try db.execute(sql: """
                UPDATE subscriber SET disabled = ?, display_name = ?, billing_account = ? WHERE username = ?
                """, arguments: [updated.enabled ? 0 : 1, updated.displayName ?? "", updated.billingAccount ?? "", user])
            if let (credentials, hash) = newPassword {
                try db.execute(sql: "UPDATE subscriber SET password = '', ha1 = ?, ha1b = ? WHERE username = ?",
                               arguments: [credentials.ha1, credentials.ha1b, user])
                try self.remember(db, user: user, hash: hash)
            }
            if change.aliases != nil { try Self.replaceAliases(db, of: user, domain: current.domain, with: updated.aliases) }
            guard let result = try Self.account(db, user: user) else { throw SIPAccountError.unknownUser(user) }
            return result
        }
    }

    /// Removes the account, its aliases and its password history; its next request is challenged and fails.
    public func delete(user: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM subscriber WHERE username = ?", arguments: [user])
            guard db.changesCount > 0 else { throw SIPAccountError.unknownUser(user) }
            try db.execute(sql: "DELETE FROM dbaliases WHERE username = ?", arguments: [user])
            try db.execute(sql: "DELETE FROM switchboard_password_history WHERE username = ?", arguments: [user])
        }
    }

    // MARK: Rows

    private static let select = "SELECT username, domain, disabled, display_name, billing_account FROM subscriber"

    private static func account(_ db: Database, user: String) throws -> SIPAccount? {
        guard let row = try Row.fetchOne(db, sql: "\(select) WHERE username = ?", arguments: [user]) else { return nil }
        let aliases = try String.fetchAll(db, sql: "SELECT alias_username FROM dbaliases WHERE username = ? ORDER BY alias_username",
                                          arguments: [user])
        return account(row, aliases: [user: aliases])
    }

    private static func account(_ row: Row, aliases: [String: [String]]) -> SIPAccount {
        let user: String = row["username"]
        let displayName: String = row["display_name"]
        let billing: String = row["billing_account"]
        return SIPAccount(user: user, domain: row["domain"], displayName: displayName.isEmpty ? nil : displayName,
                          aliases: aliases[user] ?? [], billingAccount: billing.isEmpty ? nil : billing,
                          enabled: (row["disabled"] as Int) == 0)
    }

    private static func aliasesByUser(_ db: Database) throws -> [String: [String]] {
        let rows = try Row.fetchAll(db, sql: "SELECT username, alias_username FROM dbaliases ORDER BY alias_username")
        return Dictionary(grouping: rows, by: { $0["username"] as String }).mapValues { $0.map { $0["alias_username"] as String } }
    }

    private static func checkOptional(_ account: SIPAccount) throws {
        if let name = account.displayName { try SIPAccountFields.checkDisplayName(name) }
        if let billing = account.billingAccount { try SIPAccountFields.checkBillingAccount(billing) }
    }

    /// An alias may not shadow a user (alias_db runs before the location lookup) nor point at two accounts.
    private static func replaceAliases(_ db: Database, of user: String, domain: String, with aliases: [String]) throws {
        for alias in aliases {
            if try String.fetchOne(db, sql: "SELECT username FROM subscriber WHERE username = ?", arguments: [alias]) != nil {
                throw SIPAccountError.aliasTaken(alias: alias, owner: alias)
            }
            if let owner = try String.fetchOne(db, sql: "SELECT username FROM dbaliases WHERE alias_username = ? AND username != ?",
                                               arguments: [alias, user]) {
                throw SIPAccountError.aliasTaken(alias: alias, owner: owner)
            }
        }
        try db.execute(sql: "DELETE FROM dbaliases WHERE username = ?", arguments: [user])
        for alias in aliases {
            try db.execute(sql: "INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES (?, ?, ?, ?)",
                           arguments: [alias, domain, user, domain])
        }
    }

    /// Adds a hash and keeps the newest `historyDepth`.
    private func remember(_ db: Database, user: String, hash: String) throws {
        try db.execute(sql: "INSERT INTO switchboard_password_history (username, hash, created_at) VALUES (?, ?, ?)",
                       arguments: [user, hash, Date().ISO8601Format()])
        try db.execute(sql: """
            DELETE FROM switchboard_password_history WHERE username = ? AND id NOT IN
              (SELECT id FROM switchboard_password_history WHERE username = ? ORDER BY id DESC LIMIT ?)
            """, arguments: [user, user, policy.historyDepth])
    }
}
