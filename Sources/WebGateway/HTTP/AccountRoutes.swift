import Foundation
import HTTPTypes
import Hummingbird

/// `GET /cdrs`: the accounting worker's CDRs, paged and filtered. Admin principals see every CDR,
/// others only those whose account is theirs.
struct CDRRoutes: Sendable {
    let reader: CDRReader?

    func register(on group: RouterGroup<GatewayContext>) {
        group.get("cdrs", use: list)
    }

    @Sendable func list(_ request: Request, context: GatewayContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        guard let reader else {
            throw Problem(status: .serviceUnavailable, kind: "no-cdrs", title: "No CDR database",
                          detail: "the gateway has no cdr_database configured")
        }
        let parameters = request.uri.queryParameters
        // An empty prefix filters nothing; an empty number or time is no number or time (400), as the document says.
        func text(_ name: String) -> String? { parameters.get(name).flatMap { $0.isEmpty ? nil : $0 } }
        func number(_ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
            guard let raw = parameters.get(name) else { return value }
            guard let parsed = Int(raw), range.contains(parsed) else {
                throw Problem.badRequest("`\(name)` must be a whole number in \(range.lowerBound)...\(range.upperBound)", field: name)
            }
            return parsed
        }
        func time(_ name: String) throws -> String? {
            guard let raw = parameters.get(name) else { return nil }
            guard let date = Timestamp.parse(raw) else {
                throw Problem.badRequest("`\(name)` must be an ISO 8601 time such as 2026-11-26T20:00:00Z", field: name)
            }
            return Timestamp.format(date)
        }
        let query = CDRQuery(page: try number("page", default: 1, range: 1...1_000_000),
                             perPage: try number("per_page", default: 50, range: 1...500),
                             from: text("from"), to: text("to"), status: text("status"),
                             since: try time("since"), until: try time("until"),
                             account: principal.policy.admin ? nil : principal.owner)
        let page: CDRReader.Page
        do {
            page = try await reader.list(query)
        } catch {
            context.logger.error("CDR database unreadable", metadata: ["gateway.error": "\(error)"])
            throw Problem(status: .serviceUnavailable, kind: "no-cdrs", title: "CDR database unavailable",
                          detail: "the CDR database could not be read")
        }
        let body: [String: Any] = ["cdrs": page.records, "page": query.page, "per_page": query.perPage, "total": page.total]
        let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Page login: `POST /session` (JSON username + password) sets an HttpOnly, SameSite=Strict cookie
/// (Secure per `session.secure_cookies`) and returns the CSRF token; `GET /session` returns it again;
/// `DELETE /session` logs out (with the token). Passwords go through the ``PasswordChecker``.
struct SessionRoutes: Sendable {
    let store: GatewayStore
    let lifetime: Duration
    let secureCookies: Bool
    let checker: PasswordChecker
    let metrics: GatewayMetrics

    struct Login: Decodable {
        var username: String
        var password: String
    }

    struct SessionInfo: Encodable {
        var user: String
        var csrfToken: String
        var expiresAt: String

        enum CodingKeys: String, CodingKey { case user, csrfToken = "csrf_token", expiresAt = "expires_at" }
    }

    func register(public group: RouterGroup<GatewayContext>, authenticated: RouterGroup<GatewayContext>) {
        group.post("session", use: login)
        authenticated.get("session", use: current)
        authenticated.delete("session", use: logout)
    }

    @Sendable func login(_ request: Request, context: GatewayContext) async throws -> Response {
        // A cross-site form cannot send application/json without a CORS preflight: no login CSRF.
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true else {
            throw Problem(status: .unsupportedMediaType, kind: "unsupported-media-type", title: "JSON required",
                          detail: "log in with a JSON body {\"username\":...,\"password\":...}")
        }
        let body = try await decode(Login.self, from: request, context: context)
        let name = body.username
        let store = store
        switch try await checker.check(name: name, password: body.password, storedHash: { try store.user(name: name)?.passwordHash }) {
        case .accepted:
            break
        case .refused:
            metrics.authenticationFailed(reason: "bad_password")
            context.logger.notice("login refused", metadata: ["gateway.user": "\(name)"])
            throw Problem.unauthorized("wrong user name or password")
        case .locked(let wait):
            metrics.authenticationFailed(reason: "login_locked")
            context.logger.notice("login locked out", metadata: ["gateway.user": "\(name)"])
            throw Problem.tooManyRequests("too many failed logins for this user name; try again later", kind: "login-locked",
                                          retryAfter: wait)
        case .busy:
            metrics.rateLimited(scope: "login")
            throw Problem(status: .serviceUnavailable, kind: "login-busy", title: "Login busy",
                          detail: "the gateway is checking as many passwords as it may at once; try again shortly",
                          headers: [.retryAfter: "1"])
        }
        guard let (cookie, session) = try store.openSession(user: name, lifetime: lifetime) else {
            throw Problem.unauthorized("wrong user name or password")
        }
        context.logger.info("logged in", metadata: ["gateway.user": "\(session.user)"])
        var response = try json(SessionInfo(user: session.user, csrfToken: session.csrfToken, expiresAt: session.expiresAt))
        response.setCookie(Cookie(name: sessionCookieName, value: cookie, maxAge: Int(lifetime.components.seconds), path: "/",
                                  secure: secureCookies, httpOnly: true, sameSite: .strict))
        return response
    }

    @Sendable func current(_ request: Request, context: GatewayContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        guard case .session = principal.kind, let cookie = request.cookies[sessionCookieName]?.value,
              let (session, _) = try store.session(cookie: cookie) else {
            throw Problem.notFound("this request is not made with a login session")
        }
        return try json(SessionInfo(user: session.user, csrfToken: session.csrfToken, expiresAt: session.expiresAt))
    }

    @Sendable func logout(_ request: Request, context: GatewayContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        guard case .session = principal.kind, let cookie = request.cookies[sessionCookieName]?.value else {
            throw Problem.notFound("this request is not made with a login session")
        }
        try store.logout(cookie: cookie)
        var response = Response(status: .noContent)
        response.setCookie(Cookie(name: sessionCookieName, value: "", maxAge: 0, path: "/", secure: secureCookies, httpOnly: true,
                                  sameSite: .strict))
        return response
    }
}
