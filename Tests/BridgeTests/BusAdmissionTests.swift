import Foundation
import Logging
import Synchronization
import Testing
import ZeroMQ
@testable import Bridge

/// Key directories read again while the bridge runs: what a removed key, an edited `.accounts` file and a
/// broken file do to the keys admitted.
@Suite struct BusAdmissionTests {
    final class Changes: Sendable {
        let keys = Mutex<[BusKeys]>([])
    }

    static let logger: Logger = {
        var logger = Logger(label: "test.admission")
        logger.logLevel = .critical
        return logger
    }()

    @Test func aReloadAppliesRemovedKeysAndEditedAccounts() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let (workers, commanders) = (root.appendingPathComponent("workers").path, root.appendingPathComponent("commanders").path)
        for directory in [workers, commanders] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let (router, crm) = (try CurveKeyPair.generate().publicKey, try CurveKeyPair.generate().publicKey)
        try CurveKeyFile.savePublic(router, to: workers + "/router.pub")
        try CurveKeyFile.savePublic(crm, to: commanders + "/crm.pub")
        try "acme\n".write(toFile: commanders + "/crm.accounts", atomically: true, encoding: .utf8)

        let directories = BusKeys.Directories(byRole: [.workers: workers, .commanders: commanders])
        let changes = Changes()
        let admission = BusAdmission(keys: try directories.read(), directories: directories, reloadInterval: .seconds(1),
                                     logger: Self.logger) { keys in changes.keys.withLock { $0.append(keys) } }
        #expect(admission.admits(userId: router.z85, on: .workers, connection: nil, identity: nil))
        #expect(!admission.admits(userId: router.z85, on: .commanders, connection: nil, identity: nil))
        #expect(!admission.admits(userId: nil, on: .workers, connection: nil, identity: nil))
        #expect(admission.scope(of: crm.z85) == .accounts(["acme"]))

        let start = ContinuousClock.now
        try FileManager.default.removeItem(atPath: workers + "/router.pub")
        try "globex\n".write(toFile: commanders + "/crm.accounts", atomically: true, encoding: .utf8)
        // Not due yet: nothing read.
        #expect(admission.reloadIfDue(now: start).next != nil)
        #expect(admission.admits(userId: router.z85, on: .workers, connection: nil, identity: nil))

        let due = start + .seconds(2)
        #expect(admission.reloadIfDue(now: due).next == due + .seconds(1))
        #expect(!admission.admits(userId: router.z85, on: .workers, connection: nil, identity: nil))
        #expect(admission.scope(of: crm.z85) == .accounts(["globex"]))
        #expect(changes.keys.withLock { $0 } == [try directories.read()])

        // A file that cannot be read keeps the keys read before, rather than shutting everyone out.
        try "nonsense\n".write(toFile: commanders + "/half-written.pub", atomically: true, encoding: .utf8)
        _ = admission.reloadIfDue(now: due + .seconds(2))
        #expect(admission.admits(userId: crm.z85, on: .commanders, connection: nil, identity: nil))
        #expect(changes.keys.withLock { $0.count } == 1)

        // SIGHUP: due at once, not at the next interval.
        try FileManager.default.removeItem(atPath: commanders + "/half-written.pub")
        try FileManager.default.removeItem(atPath: commanders + "/crm.pub")
        try FileManager.default.removeItem(atPath: commanders + "/crm.accounts")
        #expect(admission.admits(userId: crm.z85, on: .commanders, connection: nil, identity: nil))
        admission.requestReload()
        _ = admission.reloadIfDue(now: .now)
        #expect(!admission.admits(userId: crm.z85, on: .commanders, connection: nil, identity: nil))
        #expect(changes.keys.withLock { $0.count } == 2)
    }

    @Test func keysGivenWithoutDirectoriesStayForTheRun() throws {
        let key = try CurveKeyPair.generate().publicKey
        let admission = BusAdmission(keys: BusKeys(everySocket: [key]), directories: nil, reloadInterval: .seconds(1),
                                     logger: Self.logger) { _ in Issue.record("no directory to change") }
        #expect(admission.reloadIfDue(now: .now + .seconds(10)).next == nil)
        for role in BusEndpoints.Role.allCases { #expect(admission.admits(userId: key.z85, on: role, connection: nil, identity: nil)) }
        #expect(admission.scope(of: key.z85) == .everyAccount)
    }
}
