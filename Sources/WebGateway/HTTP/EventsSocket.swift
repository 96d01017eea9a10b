import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging

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
/// keeps from other sites).
struct EventsSocket: Sendable {
    let table: CallTable
    let authenticator: AuthenticationMiddleware

    /// A router holding only the WebSocket route, for `.http1WebSocketUpgrade(webSocketRouter:)`.
    func router() -> Router<EventsSocketContext> {
        let router = Router(context: EventsSocketContext.self)
        router.ws("api/v1/events") { request, context in
            guard (try? principal(request, context)) != nil else { return .dontUpgrade }
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            guard let principal = try? principal(context.request, context.requestContext) else { return }
            let visible: @Sendable (LiveCall) -> Bool = { call in principal.policy.admin || call.owner == principal.owner }
            let (snapshot, changes) = table.subscribe()
            try await outbound.write(.text(Self.encode(["type": "snapshot", "calls": snapshot.filter(visible)])))
            // Stream until the client closes (or the server shuts down): whichever ends first ends both.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await change in changes where visible(change.call) {
                        try await outbound.write(.text(Self.encode(["type": "call", "call": change.call])))
                    }
                }
                group.addTask {
                    for try await _ in inbound {}
                }
                try await group.next()
                group.cancelAll()
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
