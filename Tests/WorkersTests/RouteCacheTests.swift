import BusSchema
import Logging
import Testing
@testable import Workers

@Suite struct RouteCacheTests {
    let path = temporaryDatabasePath()

    @Test func reloadsOnlyWhenAnotherConnectionChangedTheDatabase() async throws {
        let editor = try RouteStore(path: path)
        try editor.addRoute(Route(prefix: "44", target: "sip:uk.example.com"))
        let cache = try await RouteCache(store: try RouteStore(path: path), interval: .seconds(60), logger: Logger(label: "test"))
        #expect(cache.table.route(offer(to: "4420")).decision == .redirect([Target(uri: "sip:4420@uk.example.com", q: 1.0)]))
        #expect(try await cache.refresh() == false)

        // What `routes add` and `block add` do from another process while the router runs.
        try editor.addRoute(Route(prefix: "4420", target: "sip:london.example.com"))
        try editor.addBlock(Block(kind: .caller, pattern: "mallory"))
        #expect(try await cache.refresh() == true)
        #expect(cache.table.route(offer(to: "4420")).decision == .redirect([Target(uri: "sip:4420@london.example.com", q: 1.0)]))
        #expect(cache.table.route(offer(to: "4420", from: "mallory")).decision == .reject(status: 403, reason: "Forbidden"))
        #expect(try await cache.refresh() == false)
    }
}
