import ArgumentParser
import Foundation
import Testing
@testable import Workers

@Suite struct CommandTests {
    let path = temporaryDatabasePath()

    private func run(_ arguments: [String]) throws -> String {
        let command = try SwitchboardWorker.parseAsRoot(arguments)
        switch command {
        case let command as RoutesCommand.Add: return try command.execute()
        case let command as RoutesCommand.List: return try command.execute()
        case let command as RoutesCommand.Remove: return try command.execute()
        case let command as BlockCommand.Add: return try command.execute()
        case let command as BlockCommand.List: return try command.execute()
        case let command as BlockCommand.Remove: return try command.execute()
        default:
            Issue.record("\(arguments) parsed as \(type(of: command)), which has no execute()")
            return ""
        }
    }

    @Test func routesAddListRemove() throws {
        #expect(try run(["routes", "add", "--db", path, "--prefix", "1202", "--target", "sip:127.0.0.1:5090",
                         "--cost", "0.01", "--priority", "10", "--description", "lab gateway"])
                == "added route 1: 1202 → sip:127.0.0.1:5090")
        #expect(try run(["routes", "add", "--db", path, "--prefix", "", "--target", "sip:pstn.example.com"])
                == "added route 2: (any number) → sip:pstn.example.com")
        #expect(try run(["routes", "list", "--db", path]) == """
            ID  PREFIX  TARGET                COST  PRIORITY  DESCRIPTION
            2   *       sip:pstn.example.com  0.0   0
            1   1202    sip:127.0.0.1:5090    0.01  10        lab gateway
            """)
        #expect(try run(["routes", "remove", "--db", path, "--id", "2"]) == "removed route 2")
        let json = try run(["routes", "list", "--db", path, "--json"])
        let routes = try JSONDecoder().decode([Route].self, from: Data(json.utf8))
        #expect(routes.map(\.target) == ["sip:127.0.0.1:5090"])
        #expect(json.contains("\"priority\":10"))
    }

    @Test func routesListOnAFreshDatabaseCreatesIt() throws {
        #expect(try run(["routes", "list", "--db", path]) == "no routes")
        #expect(FileManager.default.fileExists(atPath: path))
    }

    @Test func routesAddRefusesABadTarget() throws {
        #expect(throws: DialPlanError.invalidTarget("gw.example.com", problem: "it must be a sip: or sips: URI, e.g. sip:gw1.example.com:5060")) {
            try run(["routes", "add", "--db", path, "--prefix", "1", "--target", "gw.example.com"])
        }
    }

    @Test func routesRemoveOfAnUnknownIdFails() throws {
        #expect(throws: DialPlanError.routeNotFound(id: 9)) { try run(["routes", "remove", "--db", path, "--id", "9"]) }
    }

    @Test func blockAddListRemove() throws {
        #expect(try run(["block", "add", "--db", path, "--destination", "+1 900", "--reason", "premium rate"]) == "added block 1: destination 1900")
        #expect(try run(["block", "add", "--db", path, "--caller", "mallory"]) == "added block 2: caller mallory")
        #expect(try run(["block", "list", "--db", path]) == """
            ID  KIND         PATTERN  REASON
            2   caller       mallory
            1   destination  1900     premium rate
            """)
        #expect(try run(["block", "remove", "--db", path, "--id", "2"]) == "removed block 2")
        #expect(try run(["block", "list", "--db", path, "--json"]) == #"[{"id":1,"kind":"destination","pattern":"1900","reason":"premium rate"}]"#)
    }

    @Test(arguments: [["block", "add", "--db", "x.sqlite"], ["block", "add", "--db", "x.sqlite", "--caller", "a", "--destination", "1"]])
    func blockAddNeedsExactlyOneParty(arguments: [String]) {
        let error = #expect(throws: (any Error).self) { try SwitchboardWorker.parseAsRoot(arguments) }
        #expect(error.map { SwitchboardWorker.message(for: $0) } == "give exactly one of --caller PATTERN or --destination PATTERN")
    }

    @Test func routerParsesItsOptions() throws {
        let command = try #require(try SwitchboardWorker.parseAsRoot([
            "router", "--db", path, "--bridge", "tcp://127.0.0.1:5571", "--bridge", "tcp://10.0.0.2:5571",
            "--worker-id", "router-1", "--capacity", "8", "--log-level", "debug",
        ]) as? RouterCommand)
        #expect(command.bridges == ["tcp://127.0.0.1:5571", "tcp://10.0.0.2:5571"])
        #expect(command.workerId == "router-1")
        #expect(command.capacity == 8)
        #expect(command.logLevel == .debug)
        #expect(command.database.path == path)
    }

    @Test func routerNeedsABridge() {
        let error = #expect(throws: (any Error).self) { try SwitchboardWorker.parseAsRoot(["router", "--db", path]) }
        #expect(error.map { SwitchboardWorker.message(for: $0) }?.contains("--bridge") == true)
    }
}
