import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The cookie that carries a login session id.
let sessionCookieName = "sb_session"

/// A token bucket per source address over every `/api` request, before authentication, so guessing
/// keys or passwords is as slow as everything else. Behind a trusted proxy the source is the client
/// it forwards for (``TrustedProxies``), not the proxy.
struct SourceRateLimitMiddleware: RouterMiddleware {
    let limiter: RateLimiter
    let ratePerSecond: Double
    let burst: Int
    let proxies: TrustedProxies
    let metrics: GatewayMetrics

    func handle(_ request: Request, context: GatewayContext, next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        let source = proxies.client(peer: context.sourceAddress, headers: request.headers)
        if case .limited(let wait) = limiter.take("source:" + source, capacity: Double(burst), ratePerSecond: ratePerSecond) {
            metrics.rateLimited(scope: "source")
            throw Problem.tooManyRequests("too many requests from \(source); slow down", retryAfter: wait)
        }
        return try await next(request, context)
    }
}

/// Authenticates every request of the protected routes: an API key (`Authorization: Bearer KEY` or
/// `X-API-Key: KEY`) or a session cookie. Session requests that change state must echo the session's
/// CSRF token in `X-CSRF-Token` (synchronizer token). Then the principal's own rate limit applies.
struct AuthenticationMiddleware: RouterMiddleware {
    let store: GatewayStore
    let limiter: RateLimiter
    let metrics: GatewayMetrics

    func handle(_ request: Request, context: GatewayContext, next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        var context = context
        let principal = try authenticate(request, logger: context.logger)
        if case .limited(let wait) = limiter.take("principal:" + principal.owner, capacity: Double(principal.policy.burst),
                                                  ratePerSecond: principal.policy.ratePerSecond) {
            metrics.rateLimited(scope: "key")
            throw Problem.tooManyRequests("\(principal.owner) is over its rate of \(principal.policy.ratePerSecond) requests/s",
                                          retryAfter: wait)
        }
        context.principal = principal
        context.logger[metadataKey: "gateway.principal"] = .string(principal.owner)
        return try await next(request, context)
    }

    func authenticate(_ request: Request, logger: Logger) throws -> Principal {
        if let key = Self.apiKey(in: request.headers) {
            guard let record = try store.authenticate(key: key) else {
                metrics.authenticationFailed(reason: "bad_key")
                logger.notice("refused an unknown or revoked API key", metadata: ["gateway.key_id": "\(key.prefix(12))"])
                throw Problem.unauthorized("the API key is unknown or revoked")
            }
            return Principal(kind: .apiKey, owner: record.id, name: record.name, policy: record.policy)
        }
        if let cookie = request.cookies[sessionCookieName]?.value {
            guard let (session, user) = try store.session(cookie: cookie) else {
                metrics.authenticationFailed(reason: "bad_session")
                throw Problem.unauthorized("the session has expired or ended; log in again")
            }
            if ![.get, .head, .options].contains(request.method) {
                guard let token = request.headers[.csrfToken], Secrets.constantTimeEqual(token, session.csrfToken) else {
                    metrics.authenticationFailed(reason: "csrf")
                    throw Problem.forbidden("a session request that changes state needs the session's CSRF token in X-CSRF-Token",
                                            kind: "csrf", title: "CSRF token missing or wrong")
                }
            }
            return Principal(kind: .session(csrfToken: session.csrfToken), owner: "user:" + user.name, name: user.name,
                             policy: user.policy)
        }
        metrics.authenticationFailed(reason: "missing")
        throw Problem.unauthorized("an API key (Authorization: Bearer KEY, or X-API-Key) or a login session is required")
    }

    static func apiKey(in headers: HTTPFields) -> String? {
        if let value = headers[.authorization], value.lowercased().hasPrefix("bearer ") {
            return String(value.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        }
        return headers[.apiKey]
    }
}

/// Counts responses, logs each with structured metadata, and sets headers every response should have.
struct AccessLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: GatewayMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        func log(_ status: HTTPResponse.Status) {
            metrics.request(method: request.method.rawValue, status: status.code)
            context.logger.debug("request", metadata: [
                "http.method": "\(request.method)", "http.path": "\(request.uri.path)", "http.status": "\(status.code)",
                "http.duration_ms": "\((ContinuousClock.now - start) / .milliseconds(1))",
            ])
        }
        do {
            var response = try await next(request, context)
            response.headers[.xContentTypeOptions] = "nosniff"
            response.headers[.cacheControl] = response.headers[.cacheControl] ?? "no-store"
            log(response.status)
            return response
        } catch let error as HTTPResponseError {
            log(error.status)
            throw error
        }
    }
}

/// Answers a request for a route's path with a method the route does not serve: 405 with `Allow`
/// (RFC 9110 §15.5.6), not the router's 404, which would say the resource does not exist. Add it to the
/// router after every route: a router middleware wraps only the routes added after it, and the router's
/// not-found responder, which is what this one is for.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Each route's path and the methods it serves.
    let routes: [(path: RouterPath, methods: [HTTPRequest.Method])]

    init(routes: [Router<Context>.RouteDescription]) {
        self.routes = Dictionary(grouping: routes, by: \.path.description).values.compactMap { routes in
            routes.first.map { ($0.path, routes.map(\.method)) }
        }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let allowed = methods(path: request.uri.path)
            guard !allowed.isEmpty else { throw error }
            let list = allowed.map(\.rawValue).sorted().joined(separator: ", ")
            throw Problem(status: .methodNotAllowed, kind: "method-not-allowed", title: "Method not allowed",
                          detail: "\(request.uri.path) does not answer \(request.method); it answers \(list)", headers: [.allow: list])
        }
    }

    /// The methods of the routes whose path matches `path`; none: no route has it.
    func methods(path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        return routes.filter { route in
            route.path.components.count == segments.count && zip(route.path.components, segments).allSatisfy { $0 ~= $1 }
        }.flatMap(\.methods)
    }
}

extension HTTPField.Name {
    static let csrfToken = Self("X-CSRF-Token")!
    static let apiKey = Self("X-API-Key")!
    static let idempotencyKey = Self("Idempotency-Key")!
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
}
