import Foundation
import HTTPTypes
import Hummingbird
import Provisioning

extension SIPAccountStore {
    /// The store over Kamailio's file with the gateway's PBKDF2 for the password history.
    static func open(path: String, minimumPasswordLength: Int, iterations: Int = PasswordHash.defaultIterations) throws -> SIPAccountStore {
        try SIPAccountStore(path: path, policy: PasswordPolicy(minimumLength: minimumPasswordLength),
                            hasher: PasswordHasher(hash: { try PasswordHash.make($0, iterations: iterations) },
                                                   verify: { PasswordHash.verify($0, against: $1) }))
    }
}

/// The body of `POST /api/v1/sip-accounts`.
struct NewSIPAccountRequest: Decodable, Sendable {
    var user: String
    var password: String
    var domain: String?
    var displayName: String?
    var aliases: [String]?
    var billingAccount: String?
    var enabled: Bool?

    enum CodingKeys: String, CodingKey {
        case user, password, domain, displayName = "display_name", aliases, billingAccount = "billing_account", enabled
    }
}

/// The body of `PATCH /api/v1/sip-accounts/{user}`: what is present changes; `""` clears a display name or billing account.
struct SIPAccountPatchRequest: Decodable, Sendable {
    var password: String?
    var displayName: String?
    var aliases: [String]?
    var billingAccount: String?
    var enabled: Bool?

    enum CodingKeys: String, CodingKey {
        case password, displayName = "display_name", aliases, billingAccount = "billing_account", enabled
    }
}

/// `POST/GET /sip-accounts`, `GET/PATCH/DELETE /sip-accounts/{user}`: the SIP accounts Kamailio authenticates,
/// for admin principals only. Writes go through the ``PasswordChecker``'s hashing pool: a new password costs
/// one PBKDF2 for its history entry and one per remembered password for the reuse rule.
struct SIPAccountRoutes: Sendable {
    let store: SIPAccountStore?
    let sipDomain: String
    let checker: PasswordChecker

    /// Opens `kamailio_database` when configured; a file make-db.sh has not made (or upgraded) stops the gateway here.
    init(configuration: GatewayConfiguration, checker: PasswordChecker) throws {
        store = try configuration.kamailioDatabase.map {
            try SIPAccountStore.open(path: $0, minimumPasswordLength: configuration.sipPasswordMinimumLength)
        }
        sipDomain = configuration.sipDomain
        self.checker = checker
    }

    func register(on group: RouterGroup<GatewayContext>) {
        group.post("sip-accounts", use: create)
        group.get("sip-accounts", use: list)
        group.get("sip-accounts/{user}", use: show)
        group.patch("sip-accounts/{user}", use: update)
        group.delete("sip-accounts/{user}", use: remove)
    }

    @Sendable func create(_ request: Request, context: GatewayContext) async throws -> Response {
        let store = try admitted(context)
        let body = try await decode(NewSIPAccountRequest.self, from: request, context: context)
        let account = SIPAccount(user: body.user, domain: body.domain ?? sipDomain, displayName: body.displayName,
                                 aliases: body.aliases ?? [], billingAccount: body.billingAccount, enabled: body.enabled ?? true)
        let created = try await run(context) { try store.create(account, password: body.password) }
        context.logger.notice("SIP account created", metadata: ["sip.user": "\(created.user)"])
        return try json(created, status: .created, headers: [.location: "/api/v1/sip-accounts/\(created.user)"])
    }

    @Sendable func list(_ request: Request, context: GatewayContext) async throws -> Response {
        let store = try admitted(context)
        return try json(["accounts": try store.accounts()])
    }

    @Sendable func show(_ request: Request, context: GatewayContext) async throws -> Response {
        let store = try admitted(context)
        let user = try context.parameters.require("user")
        guard let account = try store.account(user: user) else { throw Self.problem(.unknownUser(user)) }
        return try json(account)
    }

    @Sendable func update(_ request: Request, context: GatewayContext) async throws -> Response {
        let store = try admitted(context)
        let user = try context.parameters.require("user")
        let body = try await decode(SIPAccountPatchRequest.self, from: request, context: context)
        let change = SIPAccountChange(password: body.password, displayName: body.displayName, aliases: body.aliases,
                                      billingAccount: body.billingAccount, enabled: body.enabled)
        let updated = try await run(context) { try store.update(user: user, change) }
        context.logger.notice("SIP account changed", metadata: [
            "sip.user": "\(user)", "sip.password_changed": "\(body.password != nil)", "sip.enabled": "\(updated.enabled)",
        ])
        return try json(updated)
    }

    @Sendable func remove(_ request: Request, context: GatewayContext) async throws -> Response {
        let store = try admitted(context)
        let user = try context.parameters.require("user")
        try await run(context) { try store.delete(user: user) }
        context.logger.notice("SIP account deleted", metadata: ["sip.user": "\(user)"])
        return Response(status: .noContent)
    }

    /// Admins only (403 for anyone else), and only with a Kamailio database configured (503).
    private func admitted(_ context: GatewayContext) throws -> SIPAccountStore {
        let principal = try context.requirePrincipal()
        guard principal.policy.admin else {
            throw Problem.forbidden("SIP accounts are provisioned by admin keys and users only", kind: "admin-required",
                                    title: "Admin required")
        }
        guard let store else {
            throw Problem(status: .serviceUnavailable, kind: "no-kamailio-database", title: "No Kamailio database",
                          detail: "the gateway has no kamailio_database configured")
        }
        return store
    }

    /// Runs a store call on the hashing pool, its errors as problems.
    @discardableResult
    private func run<Result: Sendable>(_ context: GatewayContext, _ work: @escaping @Sendable () throws -> Result) async throws -> Result {
        do {
            guard let result = try await checker.hashing(work) else {
                throw Problem(status: .serviceUnavailable, kind: "password-busy", title: "Password hashing busy",
                              detail: "the gateway is hashing as many passwords as it may at once; try again shortly",
                              headers: [.retryAfter: "1"])
            }
            return result
        } catch let error as SIPAccountError {
            throw Self.problem(error)
        }
    }

    static func problem(_ error: SIPAccountError) -> Problem {
        switch error {
        case .invalid(let field, let reason):
            return .badRequest("`\(field)`: \(reason)", field: field)
        case .passwordRefused(let refusal):
            return Problem(status: .unprocessableContent, kind: "password-refused", title: "Password refused", detail: refusal.detail,
                           invalidParams: [.init(name: "password", reason: refusal.rule.rawValue)], extensions: ["rule": refusal.rule.rawValue])
        case .duplicateUser:
            return Problem(status: .conflict, kind: "sip-account-exists", title: "SIP account exists", detail: error.description)
        case .aliasTaken(let alias, _):
            return Problem(status: .conflict, kind: "alias-taken", title: "Alias taken", detail: error.description,
                           invalidParams: [.init(name: "aliases", reason: "\(alias) is taken")])
        case .unknownUser:
            return .notFound(error.description)
        case .notProvisionable:
            return Problem(status: .serviceUnavailable, kind: "no-kamailio-database", title: "Kamailio database unusable",
                           detail: error.description)
        }
    }
}
