import BusSchema
import Foundation
import Logging
import Synchronization
import Testing
@testable import WorkerSDK

/// Who is reachable, as a worker sees it: the pure ``RegistrationState`` and the ``RegistrationTable``
/// service that feeds it from a bridge's events and journal.
@Suite struct RegistrationStateTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func binding(_ user: String, contact: String? = nil, expires: Int = 60) -> Registration {
        Registration(aor: "sip:\(user)@switchboard.local", user: user, contact: contact ?? "sip:\(user)@10.0.0.1:5060", transport: "udp",
                     expires: expires)
    }

    @Test func createdRefreshedRemoved() {
        var state = RegistrationState()
        #expect(!state.isRegistered(user: "alice", now: Self.t0))
        let created = state.apply(.created, Self.binding("alice"), bridgeId: "b1", at: Self.t0)
        #expect(created)
        #expect(state.isRegistered(user: "alice", now: Self.t0.addingTimeInterval(59)))
        #expect(!state.isRegistered(user: "bob", now: Self.t0))
        state.apply(.refreshed, Self.binding("alice", expires: 600), bridgeId: "b1", at: Self.t0.addingTimeInterval(30))
        #expect(state.contacts(aor: "sip:alice@switchboard.local", now: Self.t0.addingTimeInterval(100)).map(\.expires) == [530])
        state.apply(.removed, Self.binding("alice", expires: 0), bridgeId: "b1", at: Self.t0.addingTimeInterval(40))
        #expect(!state.isRegistered(user: "alice", now: Self.t0.addingTimeInterval(41)))
        #expect(state.online(now: Self.t0.addingTimeInterval(41)).isEmpty)
    }

    /// A binding whose `registration.expired` never came (Kamailio restarted) still lapses on time.
    @Test func aBindingLapsesWithoutItsExpiredEvent() {
        var state = RegistrationState()
        state.apply(.created, Self.binding("alice", expires: 60), bridgeId: "b1", at: Self.t0)
        #expect(state.isRegistered(user: "alice", now: Self.t0.addingTimeInterval(59.9)))
        #expect(!state.isRegistered(user: "alice", now: Self.t0.addingTimeInterval(60)))
    }

    @Test func contactsAreKeptApartAndNewestFirst() {
        var state = RegistrationState()
        state.apply(.created, Self.binding("alice", contact: "sip:alice@desk"), bridgeId: "b1", at: Self.t0)
        state.apply(.created, Self.binding("alice", contact: "sip:alice@mobile"), bridgeId: "b1", at: Self.t0.addingTimeInterval(1))
        state.apply(.expired, Self.binding("alice", contact: "sip:alice@desk", expires: 0), bridgeId: "b1", at: Self.t0.addingTimeInterval(2))
        #expect(state.contacts(aor: "sip:alice@switchboard.local", now: Self.t0.addingTimeInterval(3)).map(\.contact) == ["sip:alice@mobile"])
        #expect(state.isRegistered(user: "alice", now: Self.t0.addingTimeInterval(3)))
    }

    /// With two bridges (Kamailio failed over), a late replay of an older event changes nothing.
    @Test func anOlderEventDoesNotUndoANewerOne() {
        var state = RegistrationState()
        state.apply(.removed, Self.binding("alice", expires: 0), bridgeId: "b2", at: Self.t0.addingTimeInterval(10))
        let older = state.apply(.created, Self.binding("alice"), bridgeId: "b1", at: Self.t0)
        #expect(!older)
        #expect(!state.isRegistered(user: "alice", now: Self.t0.addingTimeInterval(11)))
    }

    /// The JSON form the CLI prints and the gateway lists: flat, counted down, without absent fields.
    @Test func aBindingEncodesFlat() throws {
        var state = RegistrationState()
        state.apply(.created, Self.binding("alice"), bridgeId: "b1", at: Self.t0)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = String(decoding: try encoder.encode(state.online(now: Self.t0.addingTimeInterval(10.5))), as: UTF8.self)
        #expect(json == #"[{"aor":"sip:alice@switchboard.local","bridge_id":"b1","contact":"sip:alice@10.0.0.1:5060","#
                + #""expires":49,"transport":"udp","updated_at":"2027-01-15T08:00:00.000Z","user":"alice"}]"#)
    }

    @Test func otherEventsChangeNothing() {
        var state = RegistrationState()
        let event = Event(bridgeId: "b1", seq: 1, timestamp: Self.t0, callId: nil, body: .workerJoined(WorkerInfo(workerId: "w")))
        let changed = state.apply(event)
        #expect(!changed)
    }
}

@Suite(.serialized) struct RegistrationTableTests {
    static func frame(_ seq: UInt64, _ body: EventBody, at: Date) -> [UInt8] {
        Event(bridgeId: "b1", seq: seq, timestamp: at, callId: nil, body: body).jsonBytes()
    }

    /// A worker that starts after alice and bob registered learns them from the journal, then follows live.
    @Test func replaysTheJournalThenFollowsLiveEvents() async throws {
        let bridge = try SubscriberTests.FakeBridge()
        defer { bridge.close() }
        let now = Date()
        let alice = RegistrationStateTests.binding("alice", expires: 300)
        bridge.journal([
            (1, Self.frame(1, .registrationCreated(alice), at: now)),
            (2, Self.frame(2, .registrationCreated(RegistrationStateTests.binding("bob", expires: 300)), at: now)),
            (3, Self.frame(3, .workerJoined(WorkerInfo(workerId: "w")), at: now)),
        ])
        var logger = Logger(label: "test.registrations")
        logger.logLevel = .critical
        let table = RegistrationTable(bridges: [.init(events: bridge.events, replay: bridge.replay)], logger: logger)
        try await running(table) {
            #expect(await wait { table.isRegistered(user: "alice") && table.isRegistered(user: "bob") })
            #expect(table.contacts(aor: "sip:alice@switchboard.local").map(\.contact) == [alice.contact])
            var gone = alice
            gone.expires = 0
            let removed = Self.frame(4, .registrationRemoved(gone), at: Date())
            bridge.journal([(4, removed)])
            try bridge.pub.send([Array("registration.removed".utf8), removed])
            #expect(await wait { !table.isRegistered(user: "alice") })
            #expect(table.isRegistered(user: "bob"))
            #expect(table.online().map(\.registration.user) == ["bob"])
        }
    }

    /// Caught up means the journal's bindings are in: no waiting for them after. Changes reach `onChange`,
    /// the replayed ones before the table is caught up and the live ones after.
    @Test func caughtUpOnceTheJournalIsRead() async throws {
        let bridge = try SubscriberTests.FakeBridge()
        defer { bridge.close() }
        let now = Date()
        bridge.journal([
            (1, Self.frame(1, .registrationCreated(RegistrationStateTests.binding("alice", expires: 300)), at: now)),
            (2, Self.frame(2, .workerJoined(WorkerInfo(workerId: "w")), at: now)),
            (3, Self.frame(3, .registrationCreated(RegistrationStateTests.binding("bob", expires: 300)), at: now)),
        ])
        var logger = Logger(label: "test.registrations")
        logger.logLevel = .critical
        let table = RegistrationTable(bridges: [.init(events: bridge.events, replay: bridge.replay)], logger: logger)
        let changes = Changes()
        table.onChange { [weak table] event in changes.seen.withLock { $0.append((event.seq, table?.isCaughtUp ?? false)) } }
        #expect(!table.isCaughtUp)
        #expect(table.lagging.map(\.replay) == [bridge.replay])
        try await running(table) {
            #expect(await table.waitUntilCaughtUp(timeout: .seconds(5)))
            #expect(table.lagging.isEmpty)
            #expect(table.online().map(\.registration.user).sorted() == ["alice", "bob"])
            let carol = Self.frame(4, .registrationCreated(RegistrationStateTests.binding("carol")), at: Date())
            bridge.journal([(4, carol)])
            try bridge.pub.send([Array("registration.created".utf8), carol])
            #expect(await wait { table.isRegistered(user: "carol") })
        }
        #expect(changes.seen.withLock { $0.map(\.seq) } == [1, 3, 4])
        #expect(changes.seen.withLock { $0.map(\.caughtUp) } == [false, false, true])
    }

    /// What `onChange` saw: each event's seq, and whether the table was caught up then.
    final class Changes: Sendable {
        let seen = Mutex<[(seq: UInt64, caughtUp: Bool)]>([])
    }

    /// Nothing answers at the replay endpoint: the table never claims to be caught up.
    @Test func anUnreachableBridgeIsNeverCaughtUp() async throws {
        var logger = Logger(label: "test.registrations")
        logger.logLevel = .critical
        let unreachable = RegistrationTable.Bridge(events: "tcp://127.0.0.1:1", replay: "tcp://127.0.0.1:1")
        let table = RegistrationTable(bridges: [unreachable], logger: logger)
        try await running(table) {
            let started = ContinuousClock.now
            #expect(await !table.waitUntilCaughtUp(timeout: .milliseconds(300)))
            #expect(ContinuousClock.now - started >= .milliseconds(300))
            #expect(table.lagging.map(\.replay) == ["tcp://127.0.0.1:1"])
        }
    }

    func wait(_ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }
}
