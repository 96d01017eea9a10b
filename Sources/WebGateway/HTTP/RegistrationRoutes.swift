import BusSchema
import CallPolicy
import Foundation
import Hummingbird
import WorkerSDK

/// `GET /registrations`: who is online, as the bridges' `registration.*` events tell it (the
/// ``RegistrationTable`` follows them, replaying the journals at start). An admin sees every binding;
/// any other principal only those of the SIP accounts it owns (its user name, its `numbers`), by the
/// same rule as an originate's `from` (``CallerPolicy``).
struct RegistrationRoutes: Sendable {
    let table: RegistrationTable
    let sipDomain: String
    let rules: DestinationRules

    struct Listing: Encodable {
        /// Each binding as WorkerSDK encodes it (the event's fields, `expires` counted down to now), so the
        /// API and `switchboard-worker registrations --json` print the same objects.
        var registrations: [RegistrationState.Binding]
    }

    func register(on group: RouterGroup<GatewayContext>) {
        group.get("registrations", use: list)
    }

    @Sendable func list(_ request: Request, context: GatewayContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        var bindings = table.online()
        if !principal.policy.admin {
            let user: String? = if case .session = principal.kind { principal.name } else { nil }
            let owned = CallerPolicy(policy: principal.policy, user: user, sipDomain: sipDomain, rules: rules)
            bindings = bindings.filter { owned.check(from: $0.registration.aor, callerId: nil) == nil }
        }
        return try json(Listing(registrations: bindings))
    }
}
