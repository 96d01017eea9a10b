import Foundation
import GRDB
import Testing
@testable import Workers

@Suite struct RouteStoreTests {
    let path = temporaryDatabasePath()

    @Test func addListAndRemoveRoutes() throws {
        let store = try RouteStore(path: path)
        let gateway = try store.addRoute(Route(prefix: "+1 202", target: "sip:gw1.example.com", cost: 0.02, priority: 5, description: "DC"))
        let cheaper = try store.addRoute(Route(prefix: "1202", target: "sip:gw2.example.com", cost: 0.01))
        #expect(gateway.id != nil && cheaper.id != nil && gateway.id != cheaper.id)
        #expect(try store.routes().map(\.target) == ["sip:gw2.example.com", "sip:gw1.example.com"])
        #expect(try store.routes().last == gateway)

        try store.removeRoute(id: try #require(cheaper.id))
        #expect(try store.routes() == [gateway])
    }

    @Test func duplicateRouteNamesTheExistingOne() throws {
        let store = try RouteStore(path: path)
        let first = try store.addRoute(Route(prefix: "1202", target: "sip:gw1.example.com"))
        #expect(throws: DialPlanError.duplicateRoute(prefix: "1202", target: "sip:gw1.example.com", existingId: try #require(first.id))) {
            try store.addRoute(Route(prefix: "+1-202", target: "sip:gw1.example.com", cost: 3))
        }
    }

    @Test func removingAMissingRouteOrBlockSaysSo() throws {
        let store = try RouteStore(path: path)
        #expect(throws: DialPlanError.routeNotFound(id: 42)) { try store.removeRoute(id: 42) }
        #expect(throws: DialPlanError.blockNotFound(id: 42)) { try store.removeBlock(id: 42) }
    }

    @Test func badRouteInputIsRefusedBeforeTheStore() {
        #expect(throws: DialPlanError.invalidPrefix("12a")) { try Route(prefix: "12a", target: "sip:gw.example.com") }
        #expect(throws: DialPlanError.invalidCost(-1)) { try Route(prefix: "1", target: "sip:gw.example.com", cost: -1) }
        #expect(throws: DialPlanError.invalidCost(.infinity)) { try Route(prefix: "1", target: "sip:gw.example.com", cost: .infinity) }
    }

    @Test func addListAndRemoveBlocks() throws {
        let store = try RouteStore(path: path)
        let destination = try store.addBlock(Block(kind: .destination, pattern: "+1 900", reason: "premium rate"))
        let caller = try store.addBlock(Block(kind: .caller, pattern: "mallory"))
        #expect(destination.pattern == "1900")
        #expect(try store.blocks() == [caller, destination])
        #expect(throws: DialPlanError.duplicateBlock(kind: .destination, pattern: "1900", existingId: try #require(destination.id))) {
            try store.addBlock(Block(kind: .destination, pattern: "1900"))
        }
        try store.removeBlock(id: try #require(caller.id))
        #expect(try store.blocks() == [destination])
    }

    @Test func badBlockPatternsAreRefused() {
        #expect(throws: DialPlanError.invalidPattern("", problem: "an empty pattern would block every call")) {
            try Block(kind: .caller, pattern: "")
        }
        #expect(throws: DialPlanError.invalidPattern("premium", problem: "a destination pattern must be a number prefix")) {
            try Block(kind: .destination, pattern: "premium")
        }
        #expect(throws: DialPlanError.invalidPattern("mal lory", problem: "a caller pattern cannot contain spaces")) {
            try Block(kind: .caller, pattern: "mal lory")
        }
    }

    @Test func reopeningMigratesNothingAndKeepsTheData() throws {
        let route = try RouteStore(path: path).addRoute(Route(prefix: "44", target: "sip:uk.example.com"))
        let reopened = try RouteStore(path: path)
        #expect(try reopened.routes() == [route])
        let applied = try DatabaseQueue(path: path).read { db in try RouteStore.migrator.appliedIdentifiers(db) }
        #expect(applied == ["v1: routes and blocks"])
    }

    @Test func theDatabaseRejectsAnUnknownBlockKind() throws {
        _ = try RouteStore(path: path)
        #expect(throws: DatabaseError.self) {
            try DatabaseQueue(path: path).write { db in
                try db.execute(sql: "INSERT INTO blocks (kind, pattern) VALUES ('neighbour', '1')")
            }
        }
    }

    @Test func anUnopenableDatabaseNamesThePath() {
        let path = "/nonexistent-directory/routes.sqlite"
        #expect {
            try RouteStore(path: path)
        } throws: { error in
            guard case DialPlanError.databaseUnavailable(path, _) = error else { return false }
            return "\(error)".hasPrefix("cannot use route database /nonexistent-directory/routes.sqlite: ")
        }
    }
}

/// Two processes opening a new file at once (the accounting worker and `cdrs list`): both must get a
/// migrated store, neither "table ... already exists". Two connections race here as two processes would.
@Suite struct ConcurrentMigrationTests {
    @Test func twoOpenersOfANewFileBothSucceed() async throws {
        for _ in 0..<30 {
            let path = temporaryDatabasePath()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask { _ = try CDRStore(path: path) }
                }
                try await group.waitForAll()
            }
        }
    }
}
