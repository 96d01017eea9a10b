import ArgumentParser
import Logging

/// `switchboard-gateway`: the web gateway's HTTP server.
///
/// ```sh
/// switchboard-gateway --host 127.0.0.1 --port 8080
/// curl http://127.0.0.1:8080/health   # {"status":"ok"}
/// ```
@main
struct SwitchboardGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard-gateway",
        abstract: "Switchboard web gateway (HTTP)."
    )

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8080
    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func run() async throws {
        let app = buildApplication(configuration: GatewayConfiguration(host: host, port: port, logLevel: logLevel))
        // runService wraps the application in a ServiceGroup that shuts down gracefully on SIGTERM/SIGINT.
        try await app.runService()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
