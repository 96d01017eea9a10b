import BusSchema
import Foundation
import Logging
import ServiceLifecycle
import WorkerSDK
@testable import Bridge

/// A real bridge on loopback with ephemeral ports, optionally with a real SDK worker attached.
struct BridgeFixture {
    static let logger: Logger = {
        var logger = Logger(label: "test.bridge")
        logger.logLevel = .warning
        return logger
    }()

    static func configuration(decisionTimeout: Duration = .seconds(3)) -> BridgeConfiguration {
        var configuration = BridgeConfiguration()
        configuration.sipPort = 0
        configuration.eventsEndpoint = "tcp://127.0.0.1:*"
        configuration.decisionsEndpoint = "tcp://127.0.0.1:*"
        configuration.replayEndpoint = "tcp://127.0.0.1:*"
        configuration.commandsEndpoint = "tcp://127.0.0.1:*"
        configuration.journalPath = temporaryJournalPath()
        configuration.dialogStorePath = temporaryJournalPath().replacingOccurrences(of: ".journal.", with: ".dialogs.")
        configuration.outboundProxy = nil
        // The tests' peers are all on loopback; the harness' callee is 127.0.0.2.
        configuration.trustedSources = try! TrustedSources(parsing: "127.0.0.0/8, ::1")
        configuration.decisionTimeout = decisionTimeout
        configuration.tryingDelay = .milliseconds(100)
        configuration.heartbeatInterval = .milliseconds(200)
        // The hosts the tests' workers route to are this deployment's trunks.
        configuration.destinationRules.trunkHosts = ["127.0.0.2", "gw1.example.com", "gw2.example.com"]
        return configuration
    }

    /// A fresh journal file per bridge, so tests never see each other's events.
    static func temporaryJournalPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-test-\(UUID().uuidString).journal.sqlite").path
    }

    /// Runs `body` against a started bridge; with a `handler`, a worker is connected and joined first.
    static func with(_ configuration: BridgeConfiguration = configuration(),
                     handler: Worker.OfferHandler? = nil,
                     workerCurve: WorkerConfiguration.Curve? = nil,
                     _ body: (Bridge, BoundAddresses) async throws -> Void) async throws {
        let bridge = buildBridge(configuration: configuration, logger: logger)
        let bound = try await bridge.start()
        var workerGroup: ServiceGroup?
        var workerRun: Task<Void, Error>?
        if let handler {
            let worker = Worker(configuration: .init(bridges: [bound.decisions], workerId: "test-worker",
                                                     heartbeatInterval: .milliseconds(200), curve: workerCurve), logger: logger)
            worker.onOffer(handler)
            let group = ServiceGroup(configuration: .init(services: [worker], logger: logger))
            workerGroup = group
            workerRun = Task { try await group.run() }
            let deadline = ContinuousClock.now + .seconds(5)
            while bridge.workerCount == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        }
        do {
            try await body(bridge, bound)
        } catch {
            await workerGroup?.triggerGracefulShutdown()
            _ = try? await workerRun?.value
            await bridge.stop()
            throw error
        }
        await workerGroup?.triggerGracefulShutdown()
        _ = try? await workerRun?.value
        await bridge.stop()
    }
}
