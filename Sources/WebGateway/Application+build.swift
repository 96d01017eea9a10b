import Hummingbird
import Logging

/// What the gateway needs to start; `switchboard-gateway` fills it from the command line.
///
/// ```swift
/// let configuration = GatewayConfiguration(host: "127.0.0.1", port: 0)
/// ```
struct GatewayConfiguration: Sendable {
    var host: String
    var port: Int
    var logLevel: Logger.Level = .info
}

/// Builds the gateway's HTTP application. Tests call it with port 0.
///
/// Routes:
/// - `GET /health` → `200 {"status":"ok"}`, for load balancers and probes.
///
/// ```swift
/// let app = buildApplication(configuration: GatewayConfiguration(host: "127.0.0.1", port: 8080))
/// try await app.runService()
/// ```
func buildApplication(configuration: GatewayConfiguration) -> some ApplicationProtocol {
    var logger = Logger(label: "switchboard.gateway") { label in StreamLogHandler.standardError(label: label) }
    logger.logLevel = configuration.logLevel
    let router = Router()
    router.get("health") { _, _ in Health(status: "ok") }
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "switchboard-gateway"),
        logger: logger
    )
}

/// The body of `GET /health`.
struct Health: ResponseEncodable {
    var status: String
}
