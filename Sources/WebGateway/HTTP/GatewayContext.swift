import Hummingbird
import NIOCore

/// Who is calling: an API key, or a user logged in to the page.
struct Principal: Equatable, Sendable {
    enum Kind: Equatable, Sendable {
        case apiKey
        /// Cookie-authenticated: state-changing requests must carry the CSRF token.
        case session(csrfToken: String)
    }

    var kind: Kind
    /// `sbk_1a2b3c4d` or `user:alice`: owns the calls it originates (the bus `account`).
    var owner: String
    /// The key's or user's name, for logs.
    var name: String
    var policy: AccessPolicy
}

/// The request context of every gateway route: the peer's address and, after authentication, the principal.
struct GatewayContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    var principal: Principal?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The source-address key for rate limits (`unknown` when the channel has none, as in router tests).
    var sourceAddress: String {
        remoteAddress?.ipAddress ?? "unknown"
    }

    /// The authenticated principal; only routes behind ``AuthenticationMiddleware`` call this.
    func requirePrincipal() throws -> Principal {
        guard let principal else { throw Problem.unauthorized("authentication is required") }
        return principal
    }
}
