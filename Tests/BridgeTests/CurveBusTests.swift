import BusSchema
import Foundation
import Logging
import Testing
import WorkerSDK
import ZeroMQ
@testable import Bridge

/// CURVE on the bridge's bus: only listed worker keys get to decide.
@Suite(.serialized) struct CurveBusTests {
    static func configuration(admitting clients: Set<CurvePublicKey>, bridgeKeys: CurveKeyPair) -> BridgeConfiguration {
        var configuration = BridgeFixture.configuration()
        configuration.curve = .init(keyPair: bridgeKeys, keys: BusKeys(everySocket: clients))
        return configuration
    }

    /// A command client of the bridge, quiet in the test log.
    static func commandClient(_ bound: BoundAddresses, _ curve: WorkerConfiguration.Curve) throws -> CommandClient {
        var logger = Logger(label: "test.commands")
        logger.logLevel = .critical
        return try CommandClient(endpoint: bound.commands, curve: curve, logger: logger)
    }

    @Test func anAdmittedWorkerRoutesCalls() async throws {
        let bridgeKeys = try CurveKeyPair.generate()
        let workerKeys = try CurveKeyPair.generate()
        try await BridgeFixture.with(Self.configuration(admitting: [workerKeys.publicKey], bridgeKeys: bridgeKeys),
                                     handler: { _ in .reject(status: 486, reason: "Busy Here") },
                                     workerCurve: .init(keyPair: workerKeys, bridgeKey: bridgeKeys.publicKey)) { bridge, bound in
            #expect(bridge.workerCount == 1)
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            phone.send(phone.request("INVITE", branch: "curve1"))
            #expect(await phone.receiveFinal()?.status == 486)
        }
    }

    @Test func aWorkerWithAnUnlistedKeyNeverJoins() async throws {
        let bridgeKeys = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        let listed = try CurveKeyPair.generate()
        try await BridgeFixture.with(Self.configuration(admitting: [listed.publicKey], bridgeKeys: bridgeKeys),
                                     handler: { _ in .redirect([Target(uri: "sip:fraud@premium.example")]) },
                                     workerCurve: .init(keyPair: stranger, bridgeKey: bridgeKeys.publicKey)) { bridge, bound in
            #expect(bridge.workerCount == 0)
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            phone.send(phone.request("INVITE", branch: "curve2"))
            // No worker could join, so the fallback answers; the stranger's redirect never happens.
            #expect(await phone.receiveFinal()?.status == 503)
        }
    }

    @Test func aPlainWorkerCannotTalkToACurveBridge() async throws {
        let bridgeKeys = try CurveKeyPair.generate()
        let listed = try CurveKeyPair.generate()
        try await BridgeFixture.with(Self.configuration(admitting: [listed.publicKey], bridgeKeys: bridgeKeys),
                                     handler: { _ in .reject(status: 486) }) { bridge, _ in
            #expect(bridge.workerCount == 0)
        }
    }

    @Test func aKeyAdmittedForOneRoleIsRefusedOnTheOthers() async throws {
        let bridgeKeys = try CurveKeyPair.generate()
        let workerKeys = try CurveKeyPair.generate()
        let crmKeys = try CurveKeyPair.generate()
        var configuration = BridgeFixture.configuration()
        configuration.curve = .init(keyPair: bridgeKeys,
                                    keys: BusKeys(everySocket: [], byRole: [.workers: [workerKeys.publicKey], .commanders: [crmKeys.publicKey]]))
        let curve = WorkerConfiguration.Curve(keyPair: workerKeys, bridgeKey: bridgeKeys.publicKey)
        try await BridgeFixture.with(configuration, handler: { _ in .reject(status: 486, reason: "Busy Here") },
                                     workerCurve: curve) { bridge, bound in
            // On the decisions socket the worker's key is admitted: it routes the call.
            #expect(bridge.workerCount == 1)
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            phone.send(phone.request("INVITE", branch: "role1"))
            #expect(await phone.receiveFinal()?.status == 486)
            // On the commands socket the same key is refused: a worker cannot place or end calls.
            let worker = try Self.commandClient(bound, curve)
            defer { worker.close() }
            await #expect(throws: CommandClientError.self) { try await worker.send(.list, timeout: .milliseconds(700)) }
            // A key admitted for commands gets its answer there.
            let crm = try Self.commandClient(bound, .init(keyPair: crmKeys, bridgeKey: bridgeKeys.publicKey))
            defer { crm.close() }
            guard case .calls = try await crm.send(.list, timeout: .seconds(5)) else {
                Issue.record("no call list for the commands key")
                return
            }
        }
    }

    @Test func aCommandKeyActsForItsAccountsOnly() async throws {
        let bridgeKeys = try CurveKeyPair.generate()
        let crmKeys = try CurveKeyPair.generate()
        var configuration = BridgeFixture.configuration()
        configuration.curve = .init(keyPair: bridgeKeys, keys: BusKeys(everySocket: [], byRole: [.commanders: [crmKeys.publicKey]],
                                                                      commandAccounts: [crmKeys.publicKey: ["acme"]]))
        try await BridgeFixture.with(configuration, handler: { _ in .reject(status: 486) }) { _, bound in
            let crm = try Self.commandClient(bound, .init(keyPair: crmKeys, bridgeKey: bridgeKeys.publicKey))
            defer { crm.close() }
            // The bridge knows the sender by the key it presented (ZAP's User-Id), not by anything it says.
            let other = Command.originate(Originate(a: Party(uri: "sip:alice@127.0.0.1"), b: Party(uri: "sip:bob@127.0.0.1"),
                                                    account: "globex"))
            guard case .failed(let error) = try await crm.send(other, timeout: .seconds(5)) else {
                Issue.record("an originate for another account was carried out")
                return
            }
            #expect(error.code == .accountDenied)
        }
    }

    /// Removing a key file ends what that key does, with no restart: the worker leaves the pool (its
    /// connection closed at the next reload), its calls get the fallback, the command client is not answered.
    @Test func removingAKeyFileEndsItsSessions() async throws {
        let bridgeKeys = try CurveKeyPair.generate()
        let (workerKeys, crmKeys) = (try CurveKeyPair.generate(), try CurveKeyPair.generate())
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let (workers, commanders) = (root.appendingPathComponent("workers").path, root.appendingPathComponent("commanders").path)
        for directory in [workers, commanders] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        try CurveKeyFile.savePublic(workerKeys.publicKey, to: workers + "/router.pub")
        try CurveKeyFile.savePublic(crmKeys.publicKey, to: commanders + "/crm.pub")
        var configuration = BridgeFixture.configuration(decisionTimeout: .milliseconds(500))
        let directories = BusKeys.Directories(byRole: [.workers: workers, .commanders: commanders])
        configuration.curve = .init(keyPair: bridgeKeys, keys: try directories.read(), directories: directories,
                                    reloadInterval: .milliseconds(200))
        try await BridgeFixture.with(configuration, handler: { _ in .reject(status: 486, reason: "Busy Here") },
                                     workerCurve: .init(keyPair: workerKeys, bridgeKey: bridgeKeys.publicKey)) { bridge, bound in
            #expect(bridge.workerCount == 1)
            let crm = try Self.commandClient(bound, .init(keyPair: crmKeys, bridgeKey: bridgeKeys.publicKey))
            defer { crm.close() }
            guard case .calls = try await crm.send(.list, timeout: .seconds(5)) else {
                Issue.record("no call list before the key was removed")
                return
            }

            try FileManager.default.removeItem(atPath: workers + "/router.pub")
            try FileManager.default.removeItem(atPath: commanders + "/crm.pub")
            let deadline = ContinuousClock.now + .seconds(5)
            while bridge.workerCount > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(bridge.workerCount == 0)
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            phone.send(phone.request("INVITE", branch: "revoked1"))
            #expect(await phone.receiveFinal()?.status == 503)
            await #expect(throws: CommandClientError.self) { try await crm.send(.list, timeout: .milliseconds(1500)) }
        }
    }

    @Test(arguments: [
        ("tcp://127.0.0.1:5571", true), ("tcp://localhost:5571", true), ("tcp://[::1]:5571", true), ("ipc:///run/sb", true),
        ("tcp://0.0.0.0:5571", false), ("tcp://*:5571", false), ("tcp://10.1.2.3:5571", false),
    ])
    func loopbackEndpointsAreLocal(endpoint: String, local: Bool) {
        #expect(BusEndpoints.isLocal(endpoint) == local)
    }
}
