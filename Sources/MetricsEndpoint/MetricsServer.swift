import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// `GET /metrics` in the Prometheus text format, served by the HTTP stack the gateway runs on; the
/// bridge and the accounting worker each run one as a service of their `ServiceGroup`.
///
/// ```swift
/// let registry = PrometheusCollectorRegistry()
/// services.append(makeMetricsServer(registry: registry, host: "127.0.0.1", port: 9091, serverName: "switchboard-bridge", logger: logger))
/// ```
public func makeMetricsServer(registry: PrometheusCollectorRegistry, host: String, port: Int, serverName: String,
                              logger: Logger) -> any Service {
    let router = Router()
    router.get("metrics") { _, _ in
        var body: [UInt8] = []
        registry.emit(into: &body)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                        body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
    return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: serverName),
                       logger: logger)
}
