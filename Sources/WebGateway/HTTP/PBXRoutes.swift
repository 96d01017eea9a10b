import Foundation
import HTTPTypes
import Hummingbird
import PBX

/// `GET /pbx`, `GET/PUT/DELETE /pbx/extensions/{user}` and `/pbx/groups/{name}`: the PBX worker's rules, for admin
/// principals only, in the file `switchboard-worker pbx` reads (`pbx_database`); the worker picks edits up within
/// its reload interval.
struct PBXRoutes: Sendable {
    let store: PBXStore?

    /// Opens `pbx_database` when configured (creating and migrating it, as the worker and its CLI do).
    init(path: String?) throws {
        store = try path.map { try PBXStore(path: $0) }
    }

    func register(on group: RouterGroup<GatewayContext>) {
        group.get("pbx", use: list)
        group.get("pbx/extensions/{user}", use: showExtension)
        group.put("pbx/extensions/{user}", use: saveExtension)
        group.delete("pbx/extensions/{user}", use: deleteExtension)
        group.get("pbx/groups/{name}", use: showGroup)
        group.put("pbx/groups/{name}", use: saveGroup)
        group.delete("pbx/groups/{name}", use: deleteGroup)
    }

    @Sendable func list(_ request: Request, context: GatewayContext) async throws -> Response {
        let store = try admitted(context)
        return try json(PBXRules(extensions: try store.extensions(), groups: try store.groups()))
    }

    @Sendable func showExtension(_ request: Request, context: GatewayContext) async throws -> Response {
        let user = try context.parameters.require("user")
        guard let rule = try admitted(context).extension(user) else { throw Problem.notFound("no PBX extension \(user)") }
        return try json(rule)
    }

    /// The body is the rule; its `user`, when given, must be the path's.
    @Sendable func saveExtension(_ request: Request, context: GatewayContext) async throws -> Response {
        let store = try admitted(context)
        let user = try context.parameters.require("user")
        var rule = try await decode(PBXExtension.self, from: request, context: context)
        if !rule.user.isEmpty, rule.user != user { throw Problem.badRequest("`user` \(rule.user) is not the path's \(user)", field: "user") }
        rule.user = user
        try Self.saving { try store.save(rule) }
        context.logger.notice("PBX extension saved", metadata: ["pbx.user": "\(user)"])
        return try json(rule)
    }

    @Sendable func deleteExtension(_ request: Request, context: GatewayContext) async throws -> Response {
        let store = try admitted(context)
        let user = try context.parameters.require("user")
        try Self.saving { try store.deleteExtension(user) }
        context.logger.notice("PBX extension deleted", metadata: ["pbx.user": "\(user)"])
        return Response(status: .noContent)
    }

    @Sendable func showGroup(_ request: Request, context: GatewayContext) async throws -> Response {
        let name = try context.parameters.require("name")
        guard let group = try admitted(context).group(name) else { throw Problem.notFound("no PBX group \(name)") }
        return try json(group)
    }

    @Sendable func saveGroup(_ request: Request, context: GatewayContext) async throws -> Response {
        let store = try admitted(context)
        let name = try context.parameters.require("name")
        var group = try await decode(PBXGroup.self, from: request, context: context)
        if !group.name.isEmpty, group.name != name { throw Problem.badRequest("`name` \(group.name) is not the path's \(name)", field: "name") }
        group.name = name
        try Self.saving { try store.save(group) }
        context.logger.notice("PBX group saved", metadata: ["pbx.group": "\(name)"])
        return try json(group)
    }

    @Sendable func deleteGroup(_ request: Request, context: GatewayContext) async throws -> Response {
        let store = try admitted(context)
        let name = try context.parameters.require("name")
        try Self.saving { try store.deleteGroup(name) }
        context.logger.notice("PBX group deleted", metadata: ["pbx.group": "\(name)"])
        return Response(status: .noContent)
    }

    /// Admins only (403 for anyone else), and only with a PBX database configured (503).
    private func admitted(_ context: GatewayContext) throws -> PBXStore {
        let principal = try context.requirePrincipal()
        guard principal.policy.admin else {
            throw Problem.forbidden("PBX rules are edited by admin keys and users only", kind: "admin-required", title: "Admin required")
        }
        guard let store else {
            throw Problem(status: .serviceUnavailable, kind: "no-pbx-database", title: "No PBX database",
                          detail: "the gateway has no pbx_database configured")
        }
        return store
    }

    private static func saving(_ work: () throws -> Void) throws {
        do {
            try work()
        } catch let error as PBXError {
            switch error {
            case .invalid(let problem): throw Problem(status: .unprocessableContent, kind: "invalid-pbx-rule", title: "Invalid PBX rule", detail: problem)
            case .nameTaken: throw Problem(status: .conflict, kind: "pbx-name-taken", title: "Name taken", detail: error.description)
            case .notFound: throw Problem.notFound(error.description)
            case .databaseUnavailable: throw Problem(status: .serviceUnavailable, kind: "no-pbx-database", title: "PBX database unavailable",
                                                     detail: error.description)
            }
        }
    }
}
