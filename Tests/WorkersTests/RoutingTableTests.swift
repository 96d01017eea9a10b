import BusSchema
import Testing
@testable import Workers

@Suite struct RoutingTableTests {
    private func table(_ routes: [Route], blocks: [Block] = []) -> RoutingTable {
        RoutingTable(routes: routes, blocks: blocks)
    }

    @Test func longestMatchingPrefixWins() throws {
        let table = table([
            try Route(id: 1, prefix: "1", target: "sip:north-america.example.com"),
            try Route(id: 2, prefix: "1202", target: "sip:dc.example.com"),
            try Route(id: 3, prefix: "12025", target: "sip:dc-5.example.com"),
            try Route(id: 4, prefix: "120255501000", target: "sip:too-long.example.com"),
        ])
        #expect(table.route(offer(to: "12025550100")) ==
            .routed(number: "12025550100", prefix: "12025", targets: [Target(uri: "sip:12025550100@dc-5.example.com", q: 1.0)]))
        #expect(table.route(offer(to: "12035550100")).decision ==
            .redirect([Target(uri: "sip:12035550100@north-america.example.com", q: 1.0)]))
    }

    @Test func emptyPrefixIsTheDefaultRoute() throws {
        let table = table([try Route(id: 1, prefix: "", target: "sip:pstn.example.com"), try Route(id: 2, prefix: "44", target: "sip:uk.example.com")])
        #expect(table.route(offer(to: "3312345678")).decision == .redirect([Target(uri: "sip:3312345678@pstn.example.com", q: 1.0)]))
        #expect(table.route(offer(to: "4420")).decision == .redirect([Target(uri: "sip:4420@uk.example.com", q: 1.0)]))
    }

    @Test func routesOfThePrefixAreOfferedCheapestFirstThenByPriority() throws {
        let table = table([
            try Route(id: 1, prefix: "44", target: "sip:expensive.example.com", cost: 0.05, priority: 0),
            try Route(id: 2, prefix: "44", target: "sip:cheap-backup.example.com", cost: 0.01, priority: 20),
            try Route(id: 3, prefix: "44", target: "sip:cheap.example.com", cost: 0.01, priority: 10),
            try Route(id: 4, prefix: "4", target: "sip:shorter-prefix-ignored.example.com", cost: 0),
        ])
        #expect(table.route(offer(to: "4420")).decision == .redirect([
            Target(uri: "sip:4420@cheap.example.com", q: 1.0),
            Target(uri: "sip:4420@cheap-backup.example.com", q: 0.9),
            Target(uri: "sip:4420@expensive.example.com", q: 0.8),
        ]))
    }

    @Test func equalCostAndPriorityKeepTheOlderRouteFirst() throws {
        let table = table([
            try Route(id: 7, prefix: "44", target: "sip:newer.example.com"),
            try Route(id: 3, prefix: "44", target: "sip:older.example.com"),
        ])
        #expect(table.route(offer(to: "44")).decision == .redirect([
            Target(uri: "sip:44@older.example.com", q: 1.0), Target(uri: "sip:44@newer.example.com", q: 0.9),
        ]))
    }

    @Test func qValuesStepDownByATenthAndStopAtOneTenth() throws {
        let routes = try (0..<12).map { try Route(id: Int64($0), prefix: "1", target: "sip:gw\($0).example.com", cost: Double($0)) }
        guard case .redirect(let targets) = table(routes).route(offer(to: "1")).decision else {
            Issue.record("expected a redirect")
            return
        }
        #expect(targets.map(\.q) == [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1])
        #expect(targets.map(\.uri).first == "sip:1@gw0.example.com")
    }

    @Test func plusAndSeparatorsInTheDialledNumberAreIgnored() throws {
        let table = table([try Route(id: 1, prefix: "+1 202", target: "sip:{number}@dc.example.com")])
        #expect(table.route(offer(to: "+1-202-555-0100")).decision == .redirect([Target(uri: "sip:12025550100@dc.example.com", q: 1.0)]))
    }

    @Test func noMatchingPrefixIsNotFound() throws {
        let result = table([try Route(id: 1, prefix: "44", target: "sip:uk.example.com")]).route(offer(to: "33123"))
        #expect(result == .noRoute(number: "33123"))
        #expect(result.decision == .reject(status: 404, reason: "Not Found"))
    }

    @Test(arguments: [nil, "alice", "*69"])
    func aRequestURIWithoutANumberIsNotFound(user: String?) throws {
        let result = table([try Route(id: 1, prefix: "", target: "sip:pstn.example.com")]).route(offer(to: user))
        #expect(result == .notANumber(user))
        #expect(result.decision == .reject(status: 404, reason: "Not Found"))
    }

    @Test func blockedDestinationPrefixIsForbidden() throws {
        let block = try Block(id: 1, kind: .destination, pattern: "1900")
        let table = table([try Route(id: 1, prefix: "1", target: "sip:na.example.com")], blocks: [block])
        #expect(table.route(offer(to: "+1 900 555 0100")) == .blocked(block))
        #expect(table.route(offer(to: "+1 900 555 0100")).decision == .reject(status: 403, reason: "Forbidden"))
        #expect(table.route(offer(to: "12025550100")).decision != .reject(status: 403, reason: "Forbidden"))
    }

    @Test func blockedCallerIsForbiddenByAuthUserFirst() throws {
        let block = try Block(id: 1, kind: .caller, pattern: "mallory")
        let table = table([try Route(id: 1, prefix: "", target: "sip:pstn.example.com")], blocks: [block])
        #expect(table.route(offer(to: "4420", from: "2125550199", authUser: "mallory-2")) == .blocked(block))
        // The authenticated user is who is calling; a From user naming someone else does not matter.
        #expect(table.route(offer(to: "4420", from: "mallory", authUser: "alice")).decision == .redirect([Target(uri: "sip:4420@pstn.example.com", q: 1.0)]))
    }

    @Test func blockedCallerNumberMatchesTheFromUserWithoutAuthUser() throws {
        let block = try Block(id: 1, kind: .caller, pattern: "+1 212")
        let table = table([try Route(id: 1, prefix: "", target: "sip:pstn.example.com")], blocks: [block])
        #expect(table.route(offer(to: "4420", from: "+12125550199")) == .blocked(block))
        #expect(table.route(offer(to: "4420", from: "13125550199")).decision == .redirect([Target(uri: "sip:4420@pstn.example.com", q: 1.0)]))
    }

    @Test func blockedCallerIsForbiddenEvenForANonNumber() throws {
        let block = try Block(id: 1, kind: .caller, pattern: "mallory")
        #expect(table([], blocks: [block]).route(offer(to: "alice", from: "mallory")).decision == .reject(status: 403, reason: "Forbidden"))
    }

    @Test func routeWithAnUnusableTargetIsLeftOutAndReported() throws {
        var broken = try Route(id: 2, prefix: "44", target: "sip:broken.example.com")
        broken.target = "mailto:ops@example.com"
        let table = table([try Route(id: 1, prefix: "44", target: "sip:uk.example.com", cost: 1), broken])
        #expect(table.unusableRoutes == [broken])
        #expect(table.route(offer(to: "4420")).decision == .redirect([Target(uri: "sip:4420@uk.example.com", q: 1.0)]))
    }

    @Test func everyRedirectIsAcceptedByTheBridge() throws {
        let table = table([try Route(id: 1, prefix: "", target: "sips:{number}@pstn.example.com;user=phone")])
        #expect(table.route(offer(to: "+4420")).decision.problem == nil)
    }
}
