import Foundation
import Testing
@testable import PBX

@Suite struct PBXStoreTests {
    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("pbx-\(UUID().uuidString).sqlite").path
    }

    @Test func rulesRoundTripThroughTheFile() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try PBXStore(path: path)
        let bob = PBXExtension(user: "bob", dnd: true, forwardBusy: "carol", noAnswerSeconds: 5,
                               schedule: Schedule(timeZone: "Europe/Paris", days: [.mon, .tue], opens: "09:00", closes: "17:00",
                                                  closed: ClosedAnswer(forward: "sip:night@x")))
        try store.save(bob)
        let group = PBXGroup(name: "sales", strategy: .roundRobin, members: ["alice", "bob"], ringSeconds: 5, overflow: "bob")
        try store.save(group)
        let reopened = try PBXStore(path: path)
        #expect(try reopened.extensions() == [bob])
        #expect(try reopened.group("sales") == group)
        let (router, _) = try reopened.snapshot()
        #expect(router.extensions["bob"] == bob && router.groups["sales"] == group)
        var changed = bob
        changed.dnd = false
        try reopened.save(changed)
        #expect(try store.extension("bob") == changed, "saving again replaces")
    }

    @Test func theRoundRobinRotationPersistsAcrossOpens() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try PBXStore(path: path)
        try store.save(PBXGroup(name: "sales", strategy: .roundRobin, members: ["a", "b", "c"]))
        #expect(try store.takeTurn("sales") == 0)
        #expect(try store.takeTurn("sales") == 1)
        let reopened = try PBXStore(path: path)
        #expect(try reopened.takeTurn("sales") == 2, "a restarted worker goes on where the last call left off")
        // Replacing the group's members keeps its rotation.
        try reopened.save(PBXGroup(name: "sales", strategy: .roundRobin, members: ["a", "b"]))
        #expect(try reopened.takeTurn("sales") == 3)
    }

    @Test func refusalsNameTheProblem() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try PBXStore(path: path)
        #expect(throws: PBXError.invalid("no_answer_seconds 0 is outside 1...600")) { try store.save(PBXExtension(user: "bob", noAnswerSeconds: 0)) }
        try store.save(PBXExtension(user: "bob"))
        #expect(throws: PBXError.nameTaken("bob")) { try store.save(PBXGroup(name: "bob", strategy: .sequential, members: ["a"])) }
        #expect(throws: PBXError.notFound("group sales")) { try store.deleteGroup("sales") }
        try store.deleteExtension("bob")
        #expect(throws: PBXError.notFound("extension bob")) { try store.deleteExtension("bob") }
    }

    @Test func dataVersionMovesWhenAnotherConnectionCommits() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let worker = try PBXStore(path: path)
        let before = try worker.dataVersion()
        try PBXStore(path: path).save(PBXExtension(user: "bob"))
        #expect(try worker.dataVersion() != before)
    }
}
