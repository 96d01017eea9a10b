import BusSchema
import Testing
@testable import Bridge

@Suite struct DecisionPoolTests {
    let t0 = ContinuousClock.now
    let offer = CallOffer(sipCallId: "c1", requestUri: Address(uri: "sip:1202@b", user: "1202", host: "b"),
                          from: Address(uri: "sip:alice@a"), to: Address(uri: "sip:1202@a"),
                          source: Source(address: "127.0.0.1", port: 5060, transport: "udp", peer: "127.0.0.1"),
                          authUser: "alice", headers: [:], sdp: nil)

    func makePool() -> DecisionPool {
        DecisionPool(configuration: .init(bridgeId: "b1", heartbeatInterval: .seconds(1), liveness: 3))
    }

    func join(_ pool: inout DecisionPool, _ identity: String, capacity: Int = 2) {
        _ = pool.receive(WorkerMessage.ready(workerId: identity, capacity: capacity).encoded(), from: Array(identity.utf8), now: t0)
    }

    @Test func noWorkerFallsBackAtOnce() {
        var pool = makePool()
        let actions = pool.submit(requestId: "r1", callId: "c1", offer: offer, deadline: t0 + .milliseconds(500), now: t0)
        #expect(actions == [.fallback(requestId: "r1", cause: .noWorker)])
    }

    @Test func readyWorkerIsWelcomedAndGetsTheRequest() {
        var pool = makePool()
        let welcome = pool.receive(WorkerMessage.ready(workerId: "w", capacity: 1).encoded(), from: Array("w".utf8), now: t0)
        #expect(welcome == [.workerJoined(workerId: "w"), .send(Array("w".utf8), .welcome(bridgeId: "b1", heartbeatMs: 1000))])
        let actions = pool.submit(requestId: "r1", callId: "c1", offer: offer, deadline: t0 + .milliseconds(500), now: t0)
        #expect(actions == [.send(Array("w".utf8), .decisionRequest(requestId: "r1", callId: "c1", deadlineMs: 500, offer: offer))])
    }

    @Test func decisionIsDeliveredOnceThenUnknown() {
        var pool = makePool()
        join(&pool, "w")
        _ = pool.submit(requestId: "r1", callId: "c1", offer: offer, deadline: t0 + .milliseconds(500), now: t0)
        let decision = Decision.redirect([Target(uri: "sip:1202@gw", q: 1)])
        let answer = WorkerMessage.decision(requestId: "r1", decision: decision).encoded()
        #expect(pool.receive(answer, from: Array("w".utf8), now: t0) == [.deliver(requestId: "r1", decision: decision, workerId: "w")])
        let again = pool.receive(answer, from: Array("w".utf8), now: t0)
        #expect(again.first == .refused(code: "unknown_request", message: "no open request r1 for this worker (finished, expired or never sent)"))
        #expect(pool.inFlightCount == 0)
    }

    @Test func leastRecentlyUsedWorkerIsPickedFirst() {
        var pool = makePool()
        join(&pool, "a")
        join(&pool, "b")
        let first = pool.submit(requestId: "r1", callId: "c1", offer: offer, deadline: t0 + .seconds(1), now: t0)
        let second = pool.submit(requestId: "r2", callId: "c2", offer: offer, deadline: t0 + .seconds(1), now: t0)
        #expect(first.first.map(Self.recipient) == "a")
        #expect(second.first.map(Self.recipient) == "b")
    }

    @Test func fullWorkersMeanOverloadFallback() {
        var pool = makePool()
        join(&pool, "a", capacity: 1)
        _ = pool.submit(requestId: "r1", callId: "c1", offer: offer, deadline: t0 + .seconds(1), now: t0)
        #expect(pool.submit(requestId: "r2", callId: "c2", offer: offer, deadline: t0 + .seconds(1), now: t0)
            == [.fallback(requestId: "r2", cause: .overload)])
    }

    @Test func invalidDecisionIsRefusedAndFallsBack() {
        var pool = makePool()
        join(&pool, "w")
        _ = pool.submit(requestId: "r1", callId: "c1", offer: offer, deadline: t0 + .seconds(1), now: t0)
        let bad = WorkerMessage.decision(requestId: "r1", decision: .reject(status: 200)).encoded()
        let actions = pool.receive(bad, from: Array("w".utf8), now: t0)
        #expect(actions.contains(.fallback(requestId: "r1", cause: .invalidDecision)))
        #expect(actions.contains { if case .send(_, .error(let reply)) = $0 { reply.code == .badDecision } else { false } })
    }

    @Test func silentWorkerIsLostAndItsRequestMovesToAnother() {
        var pool = makePool()
        join(&pool, "a")
        join(&pool, "b")
        _ = pool.submit(requestId: "r1", callId: "c1", offer: offer, deadline: t0 + .seconds(10), now: t0)
        // b keeps heartbeating; a stays silent past 3 intervals.
        let later = t0 + .milliseconds(3100)
        _ = pool.receive(WorkerMessage.heartbeat.encoded(), from: Array("b".utf8), now: later)
        let actions = pool.tick(now: later)
        #expect(actions.contains(.workerLost(workerId: "a")))
        #expect(actions.contains { if case .send(let id, .decisionRequest(let requestId, _, _, _)) = $0 { id == Array("b".utf8) && requestId == "r1" } else { false } })
        #expect(pool.workerCount == 1)
    }

    @Test func anUnreachableWorkerIsLostAndItsRequestsMoveAtOnce() {
        var pool = makePool()
        join(&pool, "a")
        join(&pool, "b")
        _ = pool.submit(requestId: "r1", callId: "c1", offer: offer, deadline: t0 + .seconds(1), now: t0)
        let actions = pool.unreachable(Array("a".utf8), now: t0 + .milliseconds(10))
        #expect(actions.first == .workerLost(workerId: "a"))
        #expect(actions.contains { if case .send(let id, .decisionRequest(let requestId, _, _, _)) = $0 { id == Array("b".utf8) && requestId == "r1" } else { false } })
        #expect(pool.unreachable(Array("a".utf8), now: t0).isEmpty)
    }

    @Test func byeRemovesWorkerAndFallsBackWhenNoneLeft() {
        var pool = makePool()
        join(&pool, "a")
        _ = pool.submit(requestId: "r1", callId: "c1", offer: offer, deadline: t0 + .seconds(1), now: t0)
        let actions = pool.receive(WorkerMessage.bye.encoded(), from: Array("a".utf8), now: t0)
        #expect(actions == [.workerLeft(workerId: "a"), .fallback(requestId: "r1", cause: .noWorker)])
    }

    @Test func expiredRequestsAreForgotten() {
        var pool = makePool()
        join(&pool, "a")
        _ = pool.submit(requestId: "r1", callId: "c1", offer: offer, deadline: t0 + .milliseconds(500), now: t0)
        #expect(pool.tick(now: t0 + .milliseconds(600)).contains(.expired(requestId: "r1")))
        #expect(pool.inFlightCount == 0)
    }

    @Test func heartbeatsAreSentEachInterval() {
        var pool = makePool()
        join(&pool, "a")
        #expect(pool.tick(now: t0 + .milliseconds(500)).isEmpty)
        #expect(pool.tick(now: t0 + .milliseconds(1000)) == [.send(Array("a".utf8), .heartbeat)])
    }

    @Test(arguments: [
        ("{", "bad_json"),
        (#"{"v":2,"type":"worker.ready"}"#, "unsupported_version"),
        (#"{"v":1,"type":"worker.dance"}"#, "bad_message"),
        (#"{"v":1,"type":"worker.ready","worker_id":"w"}"#, "bad_message"),
        (#"{"v":1,"type":"worker.heartbeat"}"#, "not_ready"),
    ])
    func malformedFramesGetAnErrorReplyNamingTheProblem(frame: String, code: String) {
        var pool = makePool()
        let actions = pool.receive(Array(frame.utf8), from: Array("x".utf8), now: t0)
        guard case .send(let identity, .error(let reply)) = actions.last else {
            Issue.record("expected an error reply, got \(actions)")
            return
        }
        #expect(identity == Array("x".utf8))
        #expect(reply.code.rawValue == code)
        #expect(!reply.message.isEmpty)
    }

    @Test func oversizedFrameIsRefused() {
        var pool = makePool()
        let frame = [UInt8](repeating: 0x20, count: BusSchema.maxFrameSize + 1)
        #expect(pool.receive(frame, from: Array("x".utf8), now: t0).first == .refused(code: "too_large", message: "frame of \(frame.count) bytes exceeds \(BusSchema.maxFrameSize)"))
    }

    static func recipient(_ action: DecisionPool.Action) -> String? {
        if case .send(let identity, _) = action { String(decoding: identity, as: UTF8.self) } else { nil }
    }
}
