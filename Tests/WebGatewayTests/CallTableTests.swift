import BusSchema
import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import WebGateway

@Suite struct CallTableTests {
    @Test func eventsDriveTheStatesAndEndingReleasesTheOwnersSlot() {
        let table = CallTable()
        #expect(table.reserve(owner: "k", limit: 1))
        #expect(!table.reserve(owner: "k", limit: 1))
        table.commit(owner: "k", callId: "c1", bridge: "b", from: "sip:a@x", to: "sip:b@x", requestedAt: .now)
        #expect(!table.reserve(owner: "k", limit: 1))
        table.apply(.originated(callId: "c1", account: "k", a: "sip:a@x", b: "sip:b@x"), bridge: "b", seq: 1, at: "t1")
        table.apply(.dialing(callId: "c1", leg: "a", uri: "sip:a@x"), bridge: "b", seq: 2, at: "t2")
        table.apply(.ringing(callId: "c1", leg: "a"), bridge: "b", seq: 3, at: "t3")
        #expect(table.call(id: "c1")?.state == .live(.ringing))
        table.apply(.answered(callId: "c1", leg: "a", uri: nil), bridge: "b", seq: 4, at: "t4")
        table.apply(.dialing(callId: "c1", leg: "b", uri: "sip:b@x"), bridge: "b", seq: 5, at: "t5")
        table.apply(.connected(callId: "c1"), bridge: "b", seq: 6, at: "t6")
        let connected = table.call(id: "c1")
        #expect(connected?.state == .live(.connected))
        #expect(connected?.connectedAt == "t6")
        #expect(connected?.legs.map(\.leg) == ["a", "b"])
        table.apply(.ended(callId: "c1", cause: "normal_clearing"), bridge: "b", seq: 7, at: "t7")
        #expect(table.liveCalls().isEmpty)
        #expect(table.call(id: "c1")?.endCause == "normal_clearing")
        #expect(table.reserve(owner: "k", limit: 1))
        // A late event about an ended call does not bring it back.
        table.apply(.ringing(callId: "c1", leg: "b"), bridge: "b", seq: 8, at: "t8")
        #expect(table.liveCalls().count == 0)
    }

    @Test func aRestartedBridgeEndsItsCalls() {
        let table = CallTable()
        table.apply(.offered(callId: "in1", from: "sip:x@y", to: "sip:z@y"), bridge: "east", seq: 1, at: "t1")
        table.apply(.offered(callId: "in2", from: "sip:x@y", to: "sip:z@y"), bridge: "west", seq: 1, at: "t1")
        table.apply(.bridgeStarted, bridge: "east", seq: 2, at: "t2")
        #expect(table.liveCalls().map(\.callId) == ["in2"])
        #expect(table.call(id: "in1")?.endCause == "bridge_restart")
    }

    @Test func subscribersGetASnapshotThenEveryChange() async {
        let table = CallTable()
        table.apply(.offered(callId: "c0", from: nil, to: nil), bridge: "b", seq: 1, at: "t1")
        let (snapshot, changes) = table.subscribe()
        #expect(snapshot.map(\.callId) == ["c0"])
        table.apply(.ringing(callId: "c0", leg: "b"), bridge: "b", seq: 2, at: "t2")
        table.apply(.ended(callId: "c0", cause: "busy"), bridge: "b", seq: 3, at: "t3")
        var iterator = changes.makeAsyncIterator()
        #expect(await iterator.next()?.call.state == .live(.ringing))
        let last = await iterator.next()
        #expect(last?.removed == true)
        #expect(last?.call.endCause == "busy")
    }

    @Test func ringingOfLegAReportsTheLatencyFromTheRequest() {
        let table = CallTable()
        let recorded = NIOLockedValueBox<Duration?>(nil)
        table.onRinging = { duration in recorded.withLockedValue { $0 = duration } }
        _ = table.reserve(owner: "k", limit: 2)
        table.commit(owner: "k", callId: "c1", bridge: "b", from: "a", to: "b", requestedAt: .now - .milliseconds(40))
        table.apply(.ringing(callId: "c1", leg: "a"), bridge: "b", seq: 1, at: "t")
        #expect((recorded.withLockedValue { $0 } ?? .zero) >= .milliseconds(40))
    }

    @Test func busEventsTranslateToUpdates() {
        func event(_ body: EventBody) -> Event { Event(bridgeId: "b", seq: 1, timestamp: Date(), callId: "c", body: body) }
        #expect(CallUpdate(event(.callRinging(Ringing(leg: .a, status: 180, earlyMedia: false)))) == .ringing(callId: "c", leg: "a"))
        #expect(CallUpdate(event(.callEnded(Ended(cause: .busy, status: 486, by: .b, durationMs: 1, talkMs: 0))))
            == .ended(callId: "c", cause: "busy"))
        #expect(CallUpdate(event(.workerJoined(WorkerInfo(workerId: "w")))) == nil)
    }

    @Test func theTableAndItsCursorSurviveARestart() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gw-\(UUID()).sqlite").path
        let store = try GatewayStore(path: path)
        let table = CallTable()
        let changes = table.apply(.originated(callId: "c1", account: "k", a: "sip:a@x", b: "sip:b@x"), bridge: "b", seq: 41, at: "t")
        try await store.saveLiveCalls(bridge: "b", seq: 41, upserts: changes.map(\.call), removals: [])
        let reopened = try GatewayStore(path: path).liveCalls()
        #expect(reopened.cursors == ["b": 41])
        #expect(reopened.calls.map(\.callId) == ["c1"])
        #expect(reopened.calls.first?.owner == "k")
        try await store.saveLiveCalls(bridge: "b", seq: 42, upserts: [], removals: ["c1"])
        #expect(try store.liveCalls().calls.isEmpty)
    }

    /// The gateway and `keys create` opening a new file at once: both get a migrated store (one of them used
    /// to fail with "table ... already exists" or SQLITE_BUSY).
    @Test func twoOpenersOfANewFileBothSucceed() async throws {
        for _ in 0..<30 {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("gw-\(UUID()).sqlite").path
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask { _ = try GatewayStore(path: path) }
                }
                try await group.waitForAll()
            }
        }
    }
}
