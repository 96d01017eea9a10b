import Logging
import ServiceLifecycle

/// Runs `service` in a service group for the length of `body`, then shuts it down gracefully
/// (also when `body` throws), and surfaces the service's own error.
func running(_ service: some Service, _ body: () async throws -> Void) async throws {
    var logger = Logger(label: "test.service")
    logger.logLevel = .critical
    let group = ServiceGroup(configuration: .init(services: [service], logger: logger))
    let run = Task { try await group.run() }
    do {
        try await body()
    } catch {
        await group.triggerGracefulShutdown()
        _ = try? await run.value
        throw error
    }
    await group.triggerGracefulShutdown()
    try await run.value
}
