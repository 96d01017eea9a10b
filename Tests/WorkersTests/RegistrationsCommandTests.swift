import ArgumentParser
import BusSchema
import Foundation
import Synchronization
import Testing
import WorkerSDK
@testable import Workers

/// `switchboard-worker registrations`: its options, what it prints, and its failure when no bridge answers
/// (the listing of a real bridge's journal is in Tests/Integration/test_registrations.py).
@Suite struct RegistrationsCommandTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func registration(_ user: String, port: Int, userAgent: String? = nil, expires: Int = 300) -> Registration {
        Registration(aor: "sip:\(user)@switchboard.local", user: user, contact: "sip:\(user)@10.0.0.1:\(port)", transport: "udp",
                     userAgent: userAgent, expires: expires, received: "10.0.0.1:\(port)")
    }

    /// alice (one phone) and bob, ten seconds after alice registered.
    static func online() -> [RegistrationState.Binding] {
        var state = RegistrationState()
        state.apply(.created, registration("alice", port: 5061, userAgent: "Desk 1.0"), bridgeId: "bridge-1", at: t0)
        state.apply(.created, registration("bob", port: 5062, expires: 60), bridgeId: "bridge-1", at: t0.addingTimeInterval(5))
        return state.online(now: t0.addingTimeInterval(10))
    }

    @Test func parsesBridgesAndOptions() throws {
        let command = try #require(try SwitchboardWorker.parseAsRoot([
            "registrations", "--events", "tcp://127.0.0.1:5570", "--replay", "tcp://127.0.0.1:5572",
            "--events", "tcp://10.0.0.2:5570", "--replay", "tcp://10.0.0.2:5572", "--user", "alice", "--json", "--follow",
            "--timeout-ms", "500",
        ]) as? RegistrationsCommand)
        #expect(command.events == ["tcp://127.0.0.1:5570", "tcp://10.0.0.2:5570"])
        #expect(command.replay == ["tcp://127.0.0.1:5572", "tcp://10.0.0.2:5572"])
        #expect(command.user == "alice" && command.json && command.follow && command.timeoutMs == 500)
    }

    @Test(arguments: [
        (["registrations"], "give a bridge's --events endpoint and its --replay endpoint"),
        (["registrations", "--events", "tcp://127.0.0.1:5570"], "give one --replay for each --events"),
        (["registrations", "--events", "tcp://a:1", "--replay", "tcp://a:2", "--timeout-ms", "0"], "--timeout-ms must be at least 1, got 0"),
        (["registrations", "--events", "tcp://a:1", "--replay", "tcp://a:2", "--curve-key", "k"], "--curve-key and --bridge-key go together"),
    ])
    func refusesIncompleteOptions(arguments: [String], message: String) {
        let error = #expect(throws: (any Error).self) { try SwitchboardWorker.parseAsRoot(arguments) }
        #expect(error.map { SwitchboardWorker.message(for: $0) } == message)
    }

    @Test func listsBindingsAsATable() throws {
        #expect(try RegistrationsCommand.listing(Self.online(), user: nil, json: false) == """
            USER   AOR                          CONTACT                  TRANSPORT  USER AGENT  SECONDS LEFT
            bob    sip:bob@switchboard.local    sip:bob@10.0.0.1:5062    udp                    55
            alice  sip:alice@switchboard.local  sip:alice@10.0.0.1:5061  udp        Desk 1.0    290
            """)
        #expect(try RegistrationsCommand.listing([], user: nil, json: false) == "no one is registered")
        #expect(try RegistrationsCommand.listing([], user: "carol", json: false) == "carol is not registered")
    }

    @Test func listsBindingsAsJSON() throws {
        let json = try RegistrationsCommand.listing(Self.online(), user: nil, json: true)
        let listing = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: [[String: Any]]])
        let alice = try #require(listing["registrations"]?.last)
        #expect(listing["registrations"]?.map { $0["user"] as? String } == ["bob", "alice"])
        #expect(alice["aor"] as? String == "sip:alice@switchboard.local")
        #expect(alice["contact"] as? String == "sip:alice@10.0.0.1:5061")
        #expect(alice["user_agent"] as? String == "Desk 1.0")
        #expect(alice["expires"] as? Int == 290)
        #expect(alice["bridge_id"] as? String == "bridge-1")
        #expect(alice["updated_at"] as? String == "2027-01-15T08:00:00.000Z")
        #expect(try RegistrationsCommand.listing([], user: nil, json: true) == #"{"registrations":[]}"#)
    }

    @Test func followedEventsAreOneLineEach() {
        var gone = Self.registration("alice", port: 5061)
        gone.expires = 0
        let removed = Event(bridgeId: "bridge-1", seq: 7, timestamp: Self.t0, callId: nil, body: .registrationRemoved(gone))
        let created = Event(bridgeId: "bridge-1", seq: 8, timestamp: Self.t0, callId: nil,
                            body: .registrationCreated(Self.registration("bob", port: 5062)))
        #expect(RegistrationsCommand.line(removed, json: false)
                == "2027-01-15T08:00:00.000Z registration.removed alice sip:alice@10.0.0.1:5061 udp")
        #expect(RegistrationsCommand.line(created, json: false)
                == "2027-01-15T08:00:00.000Z registration.created bob sip:bob@10.0.0.1:5062 udp expires=300")
        #expect(RegistrationsCommand.line(created, json: true) == String(decoding: created.jsonBytes(), as: UTF8.self))
    }

    /// Nothing listens at the replay endpoint: a clear error after --timeout-ms, and nothing printed.
    @Test func anUnreachableBridgeFailsAfterTheTimeout() async throws {
        let command = try #require(try SwitchboardWorker.parseAsRoot([
            "registrations", "--events", "tcp://127.0.0.1:1", "--replay", "tcp://127.0.0.1:1", "--timeout-ms", "300",
            "--log-level", "critical",
        ]) as? RegistrationsCommand)
        let printed = Printed()
        let started = ContinuousClock.now
        await #expect(throws: RegistrationsError.unreachable(replay: ["tcp://127.0.0.1:1"], timeoutMs: 300)) {
            try await command.execute { text in printed.lines.withLock { $0.append(text) } }
        }
        #expect(ContinuousClock.now - started >= .milliseconds(300))
        #expect(printed.lines.withLock { $0 }.isEmpty)
        #expect(SwitchboardWorker.message(for: RegistrationsError.unreachable(replay: ["tcp://127.0.0.1:1"], timeoutMs: 300))
                == "no answer from the bridge's replay endpoint tcp://127.0.0.1:1 within 300 ms: is the bridge running there "
                + "(and with CURVE, are --curve-key and --bridge-key the right keys)?")
    }

    final class Printed: Sendable {
        let lines = Mutex<[String]>([])
    }
}
