import BusSchema
import Foundation
import Testing
import ZeroMQ
@testable import Bridge

/// A command client limited to some accounts sees and acts on their calls only.
@Suite struct CommandScopeTests {
    typealias Harness = SIPSideHarness

    static func code(_ outcome: CommandOutcome?) -> ErrorCode? {
        if case .failed(let error)? = outcome { error.code } else { nil }
    }

    @Test func anotherAccountsCallIsAsIfItDidNotExist() throws {
        let harness = Harness()
        _ = try harness.answeredCall()      // an inbound call with no account
        let callId = try #require(harness.bus.events.last?.callId)
        let acme = CommandScope.accounts(["acme"])
        func run(_ command: Command, _ scope: CommandScope) -> CommandOutcome? {
            harness.side.command(CommandRequest(requestId: "r", command: command), envelope: [], scope: scope)
            return harness.bus.replies.last?.outcome
        }
        #expect(run(.list, acme) == .calls([]))
        #expect(Self.code(run(.get(callId: callId), acme)) == .unknownCall)
        #expect(Self.code(run(.hangup(callId: callId), acme)) == .unknownCall)
        #expect(Self.code(run(.hold(callId: callId, leg: .a), acme)) == .unknownCall)
        #expect(Self.code(run(.transfer(callId: callId, leg: .a, target: "sip:carol@127.0.0.1"), acme)) == .unknownCall)
        // Unlimited, the same call is there.
        guard case .calls(let all)? = run(.list, .everyAccount) else {
            Issue.record("no call list")
            return
        }
        #expect(all.map(\.callId) == [callId])
    }

    @Test func originateOnlyForAnAccountOfTheScope() throws {
        let harness = Harness()
        let acme = CommandScope.accounts(["acme"])
        func originate(account: String?) -> CommandOutcome? {
            let command = Command.originate(Originate(a: Party(uri: "sip:alice@127.0.0.2"), b: Party(uri: "sip:bob@127.0.0.2"),
                                                      account: account))
            harness.side.command(CommandRequest(requestId: "r", command: command), envelope: [], scope: acme)
            return harness.bus.replies.last?.outcome
        }
        #expect(Self.code(originate(account: "globex")) == .accountDenied)
        #expect(Self.code(originate(account: nil)) == .accountDenied)
        guard case .originated(let callId, _)? = originate(account: "acme") else {
            Issue.record("acme's originate refused: \(String(describing: harness.bus.replies.last))")
            return
        }
        harness.side.command(CommandRequest(requestId: "r", command: .list), envelope: [], scope: acme)
        guard case .calls(let calls)? = harness.bus.replies.last?.outcome else {
            Issue.record("no call list")
            return
        }
        #expect(calls.map(\.callId) == [callId])
    }

    @Test func accountsFilesLimitTheKeyBesideThem() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("commanders-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let crm = try CurveKeyPair.generate().publicKey
        try CurveKeyFile.savePublic(crm, to: directory.appendingPathComponent("crm.pub").path)
        try CurveKeyFile.savePublic(try CurveKeyPair.generate().publicKey, to: directory.appendingPathComponent("gateway.pub").path)
        try "# billed accounts\nacme\n\n  globex  \n".write(to: directory.appendingPathComponent("crm.accounts"), atomically: true, encoding: .utf8)
        #expect(try BusKeys.commandAccounts(in: directory.path) == [crm: ["acme", "globex"]])

        try "acme\n".write(to: directory.appendingPathComponent("ghost.accounts"), atomically: true, encoding: .utf8)
        #expect(throws: BridgeSettingsError.self) { try BusKeys.commandAccounts(in: directory.path) }
    }
}
