import BusSchema
import Foundation
import Logging
import Testing
import ZeroMQ
@testable import WorkerSDK

/// The command client against a real ROUTER socket that speaks the commands protocol as a bridge does.
@Suite(.serialized) struct CommandClientTests {
    /// A stand-in for the bridge's commands socket: a ROUTER on an ephemeral port, served by a thread of
    /// its own. It collects `batch` requests and answers them newest first, so replies arrive out of
    /// order, as ``CommandClientTests/bridge(_:)`` says.
    // Sendable by hand: the router belongs to the serving thread until `stop` has joined it; the rest is
    // under `lock`.
    final class FakeBridge: @unchecked Sendable {
        let endpoint: String
        private let context: ZMQContext
        private let router: ZMQSocket
        private let lock = NSLock()
        private var stopping = false
        private var received: [CommandRequest] = []
        private let stopped = DispatchSemaphore(value: 0)

        init(batch: Int = 1) throws {
            context = try ZMQContext()
            router = try ZMQSocket(context: context, type: .router)
            endpoint = try router.bind("tcp://127.0.0.1:*")
            let thread = Thread { [self] in
                serve(batch: batch)
                stopped.signal()
            }
            thread.start()
        }

        /// The requests seen so far.
        var requests: [CommandRequest] { lock.withLock { received } }

        func stop() {
            lock.withLock { stopping = true }
            stopped.wait()
            router.close()
            context.close()
        }

        private func serve(batch: Int) {
            var waiting: [(identity: [UInt8], request: CommandRequest)] = []
            while !lock.withLock({ stopping }) {
                var poller = ZMQPoller()
                let index = poller.add(router)
                guard let ready = try? poller.poll(timeout: .milliseconds(20)), ready.contains(index) else { continue }
                while let frames = try? router.receive(dontWait: true) {
                    // A DEALER sends exactly one frame; the ROUTER adds the identity in front.
                    #expect(frames.count == 2)
                    guard let request = try? CommandRequest.decode(frames[1]) else {
                        Issue.record("undecodable request \(String(decoding: frames[1], as: UTF8.self))")
                        continue
                    }
                    lock.withLock { received.append(request) }
                    waiting.append((frames[0], request))
                }
                guard waiting.count >= batch else { continue }
                for (identity, request) in waiting.reversed() {
                    guard let outcome = CommandClientTests.bridge(request.command) else { continue }
                    try? router.send([identity, CommandReply(requestId: request.requestId, outcome: outcome).frame()])
                }
                waiting.removeAll()
            }
        }
    }

    static let logger: Logger = {
        var logger = Logger(label: "test.command-client")
        logger.logLevel = .critical
        return logger
    }()

    static func snapshot(_ callId: String) -> CallSnapshot {
        CallSnapshot(callId: callId, kind: .originate, state: .connected, createdAt: Date(timeIntervalSince1970: 1_795_000_000),
                     legs: [LegSnapshot(leg: .a, uri: "sip:alice@switchboard.local", state: .answered, sipCallId: "\(callId)-a")])
    }

    /// As a bridge answers: known calls are `c…`, anything else is unknown; `silent` gets no answer.
    static func bridge(_ command: Command) -> CommandOutcome? {
        switch command {
        case .get("silent"):
            return nil
        case .get(let callId) where callId.hasPrefix("c"):
            return .call(snapshot(callId))
        case .hangup(let callId, _) where callId.hasPrefix("c"):
            return .done(callId: callId)
        case .originate:
            return .originated(callId: "c-new", existing: false)
        case .list:
            return .calls([snapshot("c1")])
        case .hangup(let callId, _), .get(let callId), .transfer(let callId, _, _), .hold(let callId, _), .unhold(let callId, _):
            return .failed(ErrorReply(code: .unknownCall, message: "no live call \(callId)"))
        case .decide:
            return .failed(ErrorReply(code: .badCommand, message: "this test bridge decides nothing"))
        case .play(let callId, _, _), .stopPlay(let callId, _), .record(let callId, _), .dtmf(let callId, _, _, _):
            return callId.hasPrefix("c") ? .done(callId: callId) : .failed(ErrorReply(code: .unknownCall, message: "no live call \(callId)"))
        }
    }

    @Test func concurrentSendsEachGetTheirOwnReply() async throws {
        let count = 40
        let bridge = try FakeBridge(batch: count)
        defer { bridge.stop() }
        let client = try CommandClient(endpoint: bridge.endpoint, logger: Self.logger)
        defer { client.close() }

        let outcomes = try await withThrowingTaskGroup(of: (Int, CommandOutcome).self) { group in
            for index in 0..<count {
                group.addTask { (index, try await client.send(.get(callId: "c\(index)"))) }
            }
            return try await group.reduce(into: [Int: CommandOutcome]()) { $0[$1.0] = $1.1 }
        }
        for index in 0..<count { #expect(outcomes[index] == .call(Self.snapshot("c\(index)"))) }
        #expect(Set(bridge.requests.map(\.requestId)).count == count)
    }

    @Test func everyCommandReachesTheBridgeAsSent() async throws {
        let bridge = try FakeBridge()
        defer { bridge.stop() }
        let client = try CommandClient(endpoint: bridge.endpoint, logger: Self.logger)
        defer { client.close() }
        let originate = Originate(a: Party(uri: "sip:alice@switchboard.local", ringTimeoutMs: 30_000), b: Party(uri: "sip:bob@switchboard.local"),
                                  idempotencyKey: "k-1", account: "acme")
        #expect(try await client.send(.originate(originate)) == .originated(callId: "c-new", existing: false))
        #expect(try await client.send(.hangup(callId: "c-new", leg: .b)) == .done(callId: "c-new"))
        #expect(try await client.send(.list) == .calls([Self.snapshot("c1")]))
        let media: [Command] = [.play(callId: "c-new", leg: .a, playback: Playback(prompt: "welcome", repeatCount: 2)),
                                .stopPlay(callId: "c-new", leg: nil), .record(callId: "c-new", on: true),
                                .dtmf(callId: "c-new", leg: .b, digits: "12#", durationMs: 120)]
        for command in media { #expect(try await client.send(command) == .done(callId: "c-new")) }
        #expect(bridge.requests.map(\.command) == [.originate(originate), .hangup(callId: "c-new", leg: .b), .list] + media)
    }

    @Test func aRefusalIsAnOutcome() async throws {
        let bridge = try FakeBridge()
        defer { bridge.stop() }
        let client = try CommandClient(endpoint: bridge.endpoint, logger: Self.logger)
        defer { client.close() }
        let outcome = try await client.send(.hold(callId: "b1-gone", leg: .a))
        #expect(outcome == .failed(ErrorReply(code: .unknownCall, message: "no live call b1-gone")))
    }

    /// The timeout `send` ended with, or nil when it ended otherwise.
    static func timeout(of send: () async throws -> CommandOutcome) async -> (requestId: String, sent: Bool)? {
        do {
            _ = try await send()
            return nil
        } catch CommandClientError.timeout(let requestId, let sent) {
            return (requestId, sent)
        } catch {
            return nil
        }
    }

    @Test func anUnansweredCommandTimesOutAfterBeingSent() async throws {
        let bridge = try FakeBridge()
        defer { bridge.stop() }
        let client = try CommandClient(endpoint: bridge.endpoint, logger: Self.logger)
        defer { client.close() }
        let start = ContinuousClock.now
        let timeout = await Self.timeout { try await client.send(.get(callId: "silent"), timeout: .milliseconds(300)) }
        let elapsed = ContinuousClock.now - start
        #expect(timeout?.sent == true)
        #expect(timeout?.requestId == bridge.requests.first?.requestId)
        #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(3))
        // The client still works after a timeout.
        #expect(try await client.send(.list) == .calls([Self.snapshot("c1")]))
    }

    @Test func withNoBridgeACommandTimesOutUnsent() async throws {
        // A port that was just free: nothing listens there.
        let context = try ZMQContext()
        let probe = try ZMQSocket(context: context, type: .router)
        let endpoint = try probe.bind("tcp://127.0.0.1:*")
        probe.close()
        context.close()

        let client = try CommandClient(endpoint: endpoint, logger: Self.logger)
        defer { client.close() }
        let timeout = await Self.timeout { try await client.send(.list, timeout: .milliseconds(200)) }
        #expect(timeout?.sent == false)
    }

    @Test func closeReleasesWaitingCommandsAndRefusesNewOnes() async throws {
        let bridge = try FakeBridge()
        defer { bridge.stop() }
        let client = try CommandClient(endpoint: bridge.endpoint, logger: Self.logger)
        let waiting = Task { try await client.send(.get(callId: "silent"), timeout: .seconds(30)) }
        while bridge.requests.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        client.close()
        await #expect(throws: CommandClientError.closed) { try await waiting.value }
        await #expect(throws: CommandClientError.closed) { try await client.send(.list) }
        client.close()
    }

    @Test func cancellingASendEndsItAtOnce() async throws {
        let bridge = try FakeBridge()
        defer { bridge.stop() }
        let client = try CommandClient(endpoint: bridge.endpoint, logger: Self.logger)
        defer { client.close() }
        let waiting = Task { try await client.send(.get(callId: "silent"), timeout: .seconds(30)) }
        while bridge.requests.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
    }

    @Test func aMalformedEndpointIsRefusedAtInit() {
        #expect(throws: ZMQError.self) { _ = try CommandClient(endpoint: "nonsense://", logger: Self.logger) }
    }
}
