import Foundation
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// Which pages may open the events WebSocket with the session cookie. A browser attaches the cookie
/// whatever page opens the socket and sends that page's `Origin`, so this is what keeps another
/// site's page from reading a logged-in operator's calls (cross-site WebSocket hijacking). Allowed:
/// the gateway's own origin (its host and port equal the request's `Host`, whatever the scheme, so
/// it holds behind a TLS proxy that keeps `Host`) and the configured origins; no `Origin` (no
/// browser) is refused. A request with an API key header is not checked: a browser's WebSocket
/// cannot send one, so its sender holds the key and chose to use it (WebSocket clients send all
/// kinds of `Origin`, or none).
///
/// ```swift
/// let policy = OriginPolicy(allowed: ["https://crm.example.com"])
/// policy.refusal(origin: "http://127.0.0.1:8080", host: "127.0.0.1:8080", hasAPIKey: false)   // nil: allowed
/// policy.refusal(origin: "https://evil.example", host: "127.0.0.1:8080", hasAPIKey: false)    // why not
/// ```
struct OriginPolicy: Sendable {
    let allowed: Set<String>

    init(allowed: [String]) {
        self.allowed = Set(allowed.map(Self.normalize))
    }

    /// Why the upgrade is refused; nil: allowed.
    func refusal(origin: String?, host: String?, hasAPIKey: Bool) -> String? {
        if hasAPIKey { return nil }
        guard let origin else { return "a WebSocket without Origin needs an API key (a browser always sends Origin)" }
        let normalized = Self.normalize(origin)
        if allowed.contains(normalized) { return nil }
        if let host, let separator = normalized.range(of: "://"), normalized[separator.upperBound...] == host.lowercased() {
            return nil
        }
        return "origin \(origin) may not open this WebSocket (see websocket.allowed_origins)"
    }

    private static func normalize(_ origin: String) -> String {
        var text = origin.trimmingCharacters(in: .whitespaces).lowercased()
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }
}

/// Answers a WebSocket upgrade from a refused origin with 403 problem+json before Hummingbird's
/// upgrader sees it (which can only answer a refusal with a bare 400). It reads the first request
/// head of a connection, then steps out of the pipeline.
///
/// Until then it also answers a request that does not parse (a control character in a header, a broken
/// request line, a head over the decoder's limits) with 400 problem+json and closes the connection:
/// the upgrader waits for a head that will never come and Hummingbird answers parse errors only from the
/// second request on, so without it such a connection stayed open, unanswered, for as long as the client
/// liked.
///
/// And it closes a connection whose first head is not complete within `headTimeout`: Hummingbird's idle
/// timeout (`listen.idle_timeout_ms`) starts only once that head is read, so a client sending nothing, or a
/// head a byte at a time (slowloris), held its connection for ever.
final class WebSocketOriginHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let policy: OriginPolicy
    private let headTimeout: TimeAmount
    private var headDeadline: Scheduled<Void>?
    private var refused = false

    init(policy: OriginPolicy, headTimeout: TimeAmount) {
        self.policy = policy
        self.headTimeout = headTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        headDeadline = context.eventLoop.scheduleTask(in: headTimeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        headDeadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        headDeadline?.cancel()
        // The refused request's body and end, if any, go nowhere: the connection is closing.
        guard !refused else { return }
        guard case .head(let head) = unwrapInboundIn(data),
              head.headers[canonicalForm: "upgrade"].contains(where: { $0.lowercased() == "websocket" }),
              let reason = policy.refusal(origin: head.headers.first(name: "origin"), host: head.headers.first(name: "host"),
                                          hasAPIKey: head.headers.contains(name: "x-api-key")
                                              || head.headers.first(name: "authorization")?.lowercased().hasPrefix("bearer ") == true)
        else {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        refuse(context: context, version: head.version, status: .forbidden, kind: "origin-denied", title: "Origin not allowed",
               detail: reason, instance: head.uri)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? HTTPParserError, !refused else {
            context.fireErrorCaught(error)
            return
        }
        refuse(context: context, version: .http1_1, status: .badRequest, kind: "malformed-request", title: "Malformed request",
               detail: "the request is not valid HTTP/1.1 (\(error))", instance: nil)
    }

    /// Writes a problem+json response and closes the connection.
    private func refuse(context: ChannelHandlerContext, version: HTTPVersion, status: HTTPResponseStatus, kind: String, title: String,
                        detail: String, instance: String?) {
        refused = true
        var problem: [String: Any] = ["type": Problem.typeBase + kind, "title": title, "status": Int(status.code), "detail": detail]
        problem["instance"] = instance
        let body = try? JSONSerialization.data(withJSONObject: problem, options: [.sortedKeys])
        let buffer = context.channel.allocator.buffer(bytes: body ?? Data())
        let headers = HTTPHeaders([("Content-Type", "application/problem+json"), ("Content-Length", "\(buffer.readableBytes)"),
                                   ("Connection", "close")])
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// The HTTP/1 + WebSocket child channel with ``WebSocketOriginHandler`` right after the request decoder.
struct OriginCheckedChannel<Base: ServerChildChannel>: ServerChildChannel {
    let base: Base
    let policy: OriginPolicy
    let headTimeout: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Base.Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(WebSocketOriginHandler(policy: policy, headTimeout: headTimeout),
                                                           position: .after(decoder))
            return value
        }
    }

    func handle(value: Base.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
