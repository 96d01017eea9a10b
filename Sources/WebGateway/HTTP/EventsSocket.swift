import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOConcurrencyHelpers

/// The WebSocket request context: the upgrade request is authenticated before the upgrade.
struct EventsSocketContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
    }
}

/// `GET /api/v1/events` as a WebSocket: first `{"type":"snapshot","calls":[...]}` with the calls the
/// principal may see, then `{"type":"call","call":{...}}` for each change (`state` `ended` is the
/// last message about a call). Authenticated like the REST API (API key header or session cookie;
/// a browser cannot set headers on a WebSocket, so the page uses its cookie, which SameSite=Strict
/// keeps from other sites). Before the upgrade ``WebSocketOriginHandler`` refuses foreign origins.
/// A principal may hold `limit` sockets at once; one more is refused before the upgrade (400, the
/// WebSocket router's one refusal; a close frame sent right after the 101 can be lost on a client
/// still setting up its reader), or, when two upgrades race for the last place, closed at once
/// with 1008 (policy violation). Every `recheck` the socket's key or session is checked again, and the socket closed
/// with 1008 once it is revoked, logged out or expired.
struct EventsSocket: Sendable {
    let table: CallTable
    let authenticator: AuthenticationMiddleware
    let limit: Int
    let recheck: Duration
    let open = SocketCounter()

    /// How a socket ended, deciding how it is closed.
    private enum End: Sendable {
        case clientClosed
        case credentialsEnded
    }

    /// `GET /api/v1/events` without an upgrade reaches the HTTP router, not the WebSocket's: 426 Upgrade
    /// Required with `Upgrade: websocket` (RFC 9110 §15.5.22), rather than a 404 saying nothing is here.
    static func registerUpgradeRequired(on group: RouterGroup<GatewayContext>) {
        group.get("events") { _, _ -> Response in
            throw Problem(status: .upgradeRequired, kind: "upgrade-required", title: "Upgrade required",
                          detail: "/api/v1/events is a WebSocket: open it with an upgrade (Connection: Upgrade, Upgrade: websocket)",
                          headers: [.upgrade: "websocket"])
        }
    }

    /// A router holding only the WebSocket route, for the upgrade channel (`HTTP1WebSocketUpgradeChannel`).
    func router() -> Router<EventsSocketContext> {
        let router = Router(context: EventsSocketContext.self)
        router.ws("api/v1/events") { request, context in
            guard let principal = try? principal(request, context) else { return .dontUpgrade }
            guard open.hasRoom(principal.owner, limit: limit) else {
                context.logger.notice("events socket refused: over the cap", metadata: ["gateway.principal": "\(principal.owner)"])
                return .dontUpgrade
            }
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            guard let principal = try? principal(context.request, context.requestContext) else { return }
            guard open.reserve(principal.owner, limit: limit) else {
                context.logger.notice("events socket closed: another upgrade took the last place", metadata: ["gateway.principal": "\(principal.owner)"])
                try await outbound.close(.policyViolation, reason: "\(principal.owner) has \(limit) event sockets open, its cap")
                return
            }
            defer { open.release(principal.owner) }
            let visible: @Sendable (LiveCall) -> Bool = { call in principal.policy.admin || call.owner == principal.owner }
            let (snapshot, changes) = table.subscribe()
            try await outbound.write(.text(Self.encode(["type": "snapshot", "calls": snapshot.filter(visible)])))
            // Stream until the client closes, the credentials end (or the server shuts down): whichever ends first ends all.
            let end = try await withThrowingTaskGroup(of: End.self) { group in
                group.addTask {
                    for await change in changes where visible(change.call) {
                        try await outbound.write(.text(Self.encode(["type": "call", "call": change.call])))
                    }
                    return .clientClosed
                }
                group.addTask {
                    for try await _ in inbound {}
                    return .clientClosed
                }
                let (request, requestContext) = (context.request, context.requestContext)
                group.addTask {
                    while (try? authenticator.authenticate(request, logger: requestContext.logger)) != nil {
                        try await Task.sleep(for: recheck)
                    }
                    return .credentialsEnded
                }
                defer { group.cancelAll() }
                return try await group.next() ?? .clientClosed
            }
            if case .credentialsEnded = end {
                context.logger.info("events socket closed: key revoked or session ended")
                try await outbound.close(.policyViolation, reason: "the key was revoked or the session ended")
            }
        }
        return router
    }

    private func principal(_ request: Request, _ context: EventsSocketContext) throws -> Principal {
        try authenticator.authenticate(request, logger: context.logger)
    }

    private static func encode(_ message: [String: any Encodable]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var parts: [String] = []
        for (key, value) in message.sorted(by: { $0.key < $1.key }) {
            parts.append("\"\(key)\":" + String(decoding: try encoder.encode(value), as: UTF8.self))
        }
        return "{" + parts.joined(separator: ",") + "}"
    }
}

/// Open sockets per principal, for the cap.
final class SocketCounter: Sendable {
    private let counts = NIOLockedValueBox<[String: Int]>([:])

    func hasRoom(_ owner: String, limit: Int) -> Bool {
        counts.withLockedValue { $0[owner, default: 0] < limit }
    }

    func reserve(_ owner: String, limit: Int) -> Bool {
        counts.withLockedValue { counts in
            guard counts[owner, default: 0] < limit else { return false }
            counts[owner, default: 0] += 1
            return true
        }
    }

    func release(_ owner: String) {
        counts.withLockedValue { counts in
            counts[owner, default: 1] -= 1
            if counts[owner] == 0 { counts[owner] = nil }
        }
    }
}
