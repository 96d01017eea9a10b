import Foundation
import Hummingbird
import NIOCore
import Prometheus

/// `GET /health` (the process answers), `GET /api/v1/health` (each bridge's reachability),
/// `GET /metrics` (Prometheus) and `GET /api/v1/openapi.yaml` (the API's contract).
struct SystemRoutes: Sendable {
    let bridges: BridgeDirectory
    let table: CallTable
    let metrics: GatewayMetrics
    /// Tells an admin, who gets the health detail, from anyone else, who gets only the status.
    let authenticator: AuthenticationMiddleware
    /// The OpenAPI document's bytes, read once at start.
    let openAPI: ByteBuffer?

    struct BridgeStatus: Encodable {
        var id: String
        var reachable: Bool?
        var checkedAt: String?
        var error: String?
        var liveCalls: Int?

        enum CodingKeys: String, CodingKey { case id, reachable, checkedAt = "checked_at", error, liveCalls = "live_calls" }
    }

    struct HealthBody: Encodable {
        /// `ok`: every bridge answered its last check; `degraded`: some did not; `down`: none did.
        var status: String
        /// Admins only: every tenant's calls and the bridges' errors are not for anyone who can reach the port.
        var liveCalls: Int?
        var bridges: [BridgeStatus]?

        enum CodingKeys: String, CodingKey { case status, liveCalls = "live_calls", bridges }
    }

    func register(root: Router<GatewayContext>, api: RouterGroup<GatewayContext>) {
        root.get("health") { _, _ in try json(["status": "ok"]) }
        root.get("metrics") { _, _ in
            var body: [UInt8] = []
            metrics.registry.emit(into: &body)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        api.get("health") { request, context in
            let statuses = bridges.status().map { id, health in
                BridgeStatus(id: id, reachable: health.reachable, checkedAt: health.checkedAt, error: health.error,
                             liveCalls: health.liveCalls)
            }
            let down = statuses.filter { $0.reachable == false }.count
            let status = down == 0 ? "ok" : down == statuses.count ? "down" : "degraded"
            // Anonymous polls are the normal case here, not failed authentications: only credentials are checked.
            let hasCredentials = AuthenticationMiddleware.apiKey(in: request.headers) != nil || request.cookies[sessionCookieName] != nil
            let admin = hasCredentials && (try? authenticator.authenticate(request, logger: context.logger))?.policy.admin == true
            let body = admin ? HealthBody(status: status, liveCalls: table.liveCalls().count, bridges: statuses) : HealthBody(status: status)
            return try json(body, status: status == "down" ? .serviceUnavailable : .ok)
        }
        api.get("openapi.yaml") { _, _ in
            guard let openAPI else { throw Problem.notFound("the OpenAPI document is not bundled with this build") }
            return Response(status: .ok, headers: [.contentType: "application/yaml", .cacheControl: "max-age=300"],
                            body: .init(byteBuffer: openAPI))
        }
    }
}
