import Foundation
import GRDB
import Synchronization
import Testing
@testable import Provisioning

/// Kamailio's database as openser-cfg/make-db.sh makes it (the store's contract is that file, so the tests use
/// the script itself), in a temporary folder.
struct KamailioDatabase {
    let path: String

    init(users: [String] = []) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("provisioning-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        path = folder.appendingPathComponent("switchboard.db").path
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("openser-cfg/make-db.sh").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [script, path] + users
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw SIPAccountError.notProvisionable(path: path, reason: "make-db.sh failed") }
    }

    /// A fast stand-in for the gateway's PBKDF2 (its tests use the real one): a random salt per hash, so equal
    /// passwords give different hashes, as they must for the store's reuse check to be the one that matches them.
    static let hasher = PasswordHasher(hash: { "h:\(UUID().uuidString.prefix(8)):\($0)" },
                                       verify: { password, hash in hash.split(separator: ":", maxSplits: 2).last.map(String.init) == password })

    func store(historyDepth: Int = 5) throws -> SIPAccountStore {
        try SIPAccountStore(path: path, policy: PasswordPolicy(minimumLength: 12, historyDepth: historyDepth), hasher: Self.hasher)
    }

    /// What Kamailio reads: the subscriber row and the aliases, straight from the file.
    func row(_ user: String) throws -> Row? {
        try DatabaseQueue(path: path).read { db in try Row.fetchOne(db, sql: "SELECT * FROM subscriber WHERE username = ?", arguments: [user]) }
    }

    func aliases() throws -> [Row] {
        try DatabaseQueue(path: path).read { db in try Row.fetchAll(db, sql: "SELECT * FROM dbaliases ORDER BY alias_username") }
    }
}

@Suite struct SIPAccountStoreTests {
    @Test func createWritesOnlyHA1AndTheColumnsKamailioReads() throws {
        let kamailio = try KamailioDatabase()
        let store = try kamailio.store()
        let created = try store.create(SIPAccount(user: "carol", domain: "switchboard.local", displayName: "Carol C",
                                                  aliases: ["12025550123", "+12025550123"], billingAccount: "acme"),
                                       password: "kx9-Tm2v-Qa7p")
        #expect(created == SIPAccount(user: "carol", domain: "switchboard.local", displayName: "Carol C",
                                      aliases: ["+12025550123", "12025550123"], billingAccount: "acme", enabled: true))
        let row = try #require(try kamailio.row("carol"))
        let credentials = DigestCredentials(user: "carol", domain: "switchboard.local", password: "kx9-Tm2v-Qa7p")
        #expect(row["password"] as String == "")
        #expect(row["ha1"] as String == credentials.ha1)
        #expect(row["ha1b"] as String == credentials.ha1b)
        #expect(row["disabled"] as Int == 0)
        #expect(row["billing_account"] as String == "acme")
        #expect(try kamailio.aliases().map { [$0["alias_username"], $0["alias_domain"], $0["username"], $0["domain"]] as [String] }
            == [["+12025550123", "switchboard.local", "carol", "switchboard.local"],
                ["12025550123", "switchboard.local", "carol", "switchboard.local"]])
        #expect(try store.accounts() == [created])
    }

    @Test func disableEnableAndChangeOnlyWhatIsGiven() throws {
        let kamailio = try KamailioDatabase()
        let store = try kamailio.store()
        try store.create(SIPAccount(user: "carol", domain: "switchboard.local", displayName: "Carol", aliases: ["555"]), password: "kx9-Tm2v-Qa7p")
        let ha1 = try #require(try kamailio.row("carol"))["ha1"] as String
        let disabled = try store.update(user: "carol", SIPAccountChange(enabled: false))
        #expect(!disabled.enabled && disabled.displayName == "Carol" && disabled.aliases == ["555"])
        #expect(try kamailio.row("carol")?["disabled"] as Int? == 1)
        #expect(try kamailio.row("carol")?["ha1"] as String? == ha1)
        let changed = try store.update(user: "carol", SIPAccountChange(displayName: "", aliases: ["556"], billingAccount: "sbk_1a2b3c4d", enabled: true))
        #expect(changed == SIPAccount(user: "carol", domain: "switchboard.local", aliases: ["556"], billingAccount: "sbk_1a2b3c4d"))
        #expect(try kamailio.row("carol")?["disabled"] as Int? == 0)
    }

    @Test func aNewPasswordReplacesBothHashesAndTheOldOnesAreRefused() throws {
        let kamailio = try KamailioDatabase()
        let store = try kamailio.store(historyDepth: 3)
        let passwords = ["first-long-pass-1", "second-long-pass-2", "third-long-pass-3", "fourth-long-pass-4"]
        try store.create(SIPAccount(user: "carol", domain: "switchboard.local"), password: passwords[0])
        // The current password is in the history too.
        #expect(throws: SIPAccountError.passwordRefused(PasswordRefusal(rule: .reused, detail: "the password is one of this account's last 3 passwords"))) {
            try store.update(user: "carol", SIPAccountChange(password: passwords[0]))
        }
        for password in passwords.dropFirst() { try store.update(user: "carol", SIPAccountChange(password: password)) }
        let row = try #require(try kamailio.row("carol"))
        #expect(row["ha1"] as String == DigestCredentials(user: "carol", domain: "switchboard.local", password: passwords[3]).ha1)
        #expect(row["ha1b"] as String == DigestCredentials(user: "carol", domain: "switchboard.local", password: passwords[3]).ha1b)
        // Three remembered: the first has aged out, the third has not.
        try store.update(user: "carol", SIPAccountChange(password: passwords[0]))
        #expect(throws: SIPAccountError.self) { try store.update(user: "carol", SIPAccountChange(password: passwords[2])) }
    }

    @Test func weakPasswordsAreRefusedByNameAndNothingIsWritten() throws {
        let kamailio = try KamailioDatabase()
        let store = try kamailio.store()
        for (password, rule) in [("short", PasswordRule.tooShort), ("Password2024!", .common), ("carol-is-my-name", .containsUser)] {
            do {
                try store.create(SIPAccount(user: "carol", domain: "switchboard.local"), password: password)
                Issue.record("\(password) was accepted")
            } catch SIPAccountError.passwordRefused(let refusal) {
                #expect(refusal.rule == rule)
            }
        }
        #expect(try kamailio.row("carol") == nil)
    }

    @Test func userNamesAndAliasesAreUniqueAcrossBoth() throws {
        let kamailio = try KamailioDatabase(users: ["alice", "secret"])
        let store = try kamailio.store()
        // make-db.sh's users are accounts too.
        #expect(try store.account(user: "alice")?.enabled == true)
        #expect(throws: SIPAccountError.duplicateUser("alice")) {
            try store.create(SIPAccount(user: "alice", domain: "switchboard.local"), password: "kx9-Tm2v-Qa7p")
        }
        #expect(throws: SIPAccountError.aliasTaken(alias: "alice", owner: "alice")) {
            try store.create(SIPAccount(user: "carol", domain: "switchboard.local", aliases: ["alice"]), password: "kx9-Tm2v-Qa7p")
        }
        #expect(throws: SIPAccountError.aliasTaken(alias: "carol", owner: "carol")) {
            try store.create(SIPAccount(user: "carol", domain: "switchboard.local", aliases: ["carol"]), password: "kx9-Tm2v-Qa7p")
        }
        try store.create(SIPAccount(user: "carol", domain: "switchboard.local", aliases: ["2000"]), password: "kx9-Tm2v-Qa7p")
        #expect(throws: SIPAccountError.aliasTaken(alias: "2000", owner: "carol")) {
            try store.create(SIPAccount(user: "dave", domain: "switchboard.local", aliases: ["2000"]), password: "kx9-Tm2v-Qa7p")
        }
        #expect(throws: SIPAccountError.aliasTaken(alias: "2000", owner: "carol")) {
            try store.create(SIPAccount(user: "2000", domain: "switchboard.local"), password: "kx9-Tm2v-Qa7p")
        }
        // A failed create leaves nothing behind: dave does not exist.
        #expect(try store.account(user: "dave") == nil)
    }

    @Test(arguments: [
        (SIPAccount(user: "bad user", domain: "switchboard.local"), "user"),
        (SIPAccount(user: "-carol", domain: "switchboard.local"), "user"),
        (SIPAccount(user: "carol", domain: "bad_domain"), "domain"),
        (SIPAccount(user: "carol", domain: "switchboard.local", aliases: ["1", "1"]), "aliases"),
        (SIPAccount(user: "carol", domain: "switchboard.local", billingAccount: "acme\r\nX-Evil: 1"), "billing_account"),
        (SIPAccount(user: "carol", domain: "switchboard.local", displayName: "Carol\u{7}"), "display_name"),
    ])
    func invalidFieldsAreNamed(account: SIPAccount, field: String) throws {
        let store = try KamailioDatabase().store()
        do {
            try store.create(account, password: "kx9-Tm2v-Qa7p")
            Issue.record("\(account) was accepted")
        } catch SIPAccountError.invalid(let named, _) {
            #expect(named == field)
        }
    }

    @Test func deleteRemovesTheAccountItsAliasesAndItsHistory() throws {
        let kamailio = try KamailioDatabase()
        let store = try kamailio.store()
        try store.create(SIPAccount(user: "carol", domain: "switchboard.local", aliases: ["2000"]), password: "kx9-Tm2v-Qa7p")
        try store.delete(user: "carol")
        #expect(try kamailio.row("carol") == nil)
        #expect(try kamailio.aliases().isEmpty)
        #expect(throws: SIPAccountError.unknownUser("carol")) { try store.delete(user: "carol") }
        #expect(throws: SIPAccountError.unknownUser("carol")) { try store.update(user: "carol", SIPAccountChange(enabled: false)) }
        // A new carol starts with no history: the old password is hers to use again.
        try store.create(SIPAccount(user: "carol", domain: "switchboard.local"), password: "kx9-Tm2v-Qa7p")
    }

    @Test func refusesAFileMakeDBHasNotMade() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString).db").path
        #expect(throws: SIPAccountError.notProvisionable(path: missing, reason: "no such file")) {
            try SIPAccountStore(path: missing, hasher: KamailioDatabase.hasher)
        }
        #expect(!FileManager.default.fileExists(atPath: missing))
        // Kamailio's schema of before (no disabled column): named, with the fix.
        let old = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString).db").path
        try DatabaseQueue(path: old).write { db in
            try db.execute(sql: """
                CREATE TABLE subscriber (id INTEGER PRIMARY KEY, username TEXT, domain TEXT, password TEXT, ha1 TEXT, ha1b TEXT);
                CREATE TABLE dbaliases (id INTEGER PRIMARY KEY, alias_username TEXT, alias_domain TEXT, username TEXT, domain TEXT);
                """)
        }
        #expect(throws: SIPAccountError.notProvisionable(path: old, reason: "subscriber lacks disabled, display_name, billing_account")) {
            try SIPAccountStore(path: old, hasher: KamailioDatabase.hasher)
        }
    }

    /// Kamailio reads while the store writes: with WAL a reader never sees SQLITE_BUSY (db_sqlite has no busy timeout).
    @Test func aReaderWithoutBusyTimeoutIsNeverRefusedDuringWrites() async throws {
        let kamailio = try KamailioDatabase()
        let store = try kamailio.store()
        try store.create(SIPAccount(user: "carol", domain: "switchboard.local"), password: "kx9-Tm2v-Qa7p")
        var configuration = Configuration()
        configuration.busyMode = .immediateError
        let reader = try DatabaseQueue(path: kamailio.path, configuration: configuration)
        let done = Flag()
        let writes = Task.detached {
            defer { done.value.store(true, ordering: .releasing) }
            for index in 0..<200 { try store.update(user: "carol", SIPAccountChange(displayName: "Carol \(index)", enabled: index % 2 == 0)) }
        }
        var reads = 0
        while !done.value.load(ordering: .acquiring) {
            _ = try reader.read { db in try Row.fetchOne(db, sql: "SELECT ha1, disabled FROM subscriber WHERE username = 'carol'") }
            reads += 1
        }
        try await writes.value
        #expect(reads > 0)
        #expect(try kamailio.row("carol")?["display_name"] as String? == "Carol 199")
    }
}

final class Flag: Sendable {
    let value = Atomic(false)
}
