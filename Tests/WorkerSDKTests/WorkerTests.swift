import BusSchema
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import ZeroMQ
@testable import WorkerSDK

/// The SDK against a raw ROUTER socket standing in for a bridge, so every frame the worker sends is seen.
@Suite(.serialized) struct WorkerTests {
    static let offer = CallOffer(sipCallId: "c1", requestUri: Address(uri: "sip:1202@b", user: "1202", host: "b"),
                                 from: Address(uri: "sip:alice@a"), to: Address(uri: "sip:1202@a"),
                                 source: Source(address: "127.0.0.1", port: 5060, transport: "udp", peer: "127.0.0.1"),
                                 authUser: "alice", headers: [:], sdp: nil)

    /// A fake bridge: a ROUTER bound on an ephemeral port, read from a dispatch queue.
    /// With `curveAllowing`, a CURVE server behind a ZAP allow-list, as a bridge that requires CURVE.
    // Sendable by hand for `next`'s polling thread: one `next` reads the router at a time, and the test
    // sends on it only between them.
    final class FakeBridge: @unchecked Sendable {
        let context: ZMQContext
        let router: ZMQSocket
        let endpoint: String
        let curveKeys: CurveKeyPair?
        let zap: ZAPAuthenticator?
        private let denials = DenialLog()

        /// Keys the ZAP handler refused, appended on its thread.
        final class DenialLog: Sendable {
            private let keys = Mutex<[CurvePublicKey?]>([])
            func append(_ key: CurvePublicKey?) { keys.withLock { $0.append(key) } }
            var all: [CurvePublicKey?] { keys.withLock { $0 } }
        }

        init(curveAllowing allowed: Set<CurvePublicKey>? = nil) throws {
            context = try ZMQContext()
            if let allowed {
                curveKeys = try CurveKeyPair.generate()
                zap = try ZAPAuthenticator(context: context, allowedKeys: allowed) { [denials] denial in
                    denials.append(denial.publicKey)
                }
            } else {
                curveKeys = nil
                zap = nil
            }
            router = try ZMQSocket(context: context, type: .router)
            if let curveKeys { try router.setCurveServer(secretKey: curveKeys.secretKey) }
            endpoint = try router.bind("tcp://127.0.0.1:*")
        }

        /// Public keys the ZAP handler refused so far.
        var denied: [CurvePublicKey?] { denials.all }

        /// The next message from any worker, as (identity, decoded message), within `timeout`.
        func next(timeout: Duration = .seconds(3)) async -> (identity: [UInt8], message: WorkerMessage)? {
            await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    var poller = ZMQPoller()
                    let index = poller.add(self.router)
                    let deadline = ContinuousClock.now + timeout
                    while ContinuousClock.now < deadline {
                        guard (try? poller.poll(timeout: deadline - .now).contains(index)) == true,
                              let frames = try? self.router.receive(dontWait: true), frames.count == 2,
                              let message = try? WorkerMessage.decode(frames[1]) else { continue }
                        continuation.resume(returning: (frames[0], message))
                        return
                    }
                    continuation.resume(returning: nil)
                }
            }
        }

        /// The next message that is not a heartbeat.
        func nextNonHeartbeat(timeout: Duration = .seconds(3)) async -> (identity: [UInt8], message: WorkerMessage)? {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                guard let next = await next(timeout: deadline - .now) else { return nil }
                if next.message != .heartbeat { return next }
            }
            return nil
        }

        func send(_ message: BridgeMessage, to identity: [UInt8]) throws {
            try router.send([identity, message.encoded()])
        }

        func sendRaw(_ frame: [UInt8], to identity: [UInt8]) throws {
            try router.send([identity, frame])
        }

        func close() {
            router.close()
            zap?.stop()
            context.close()
        }
    }


    static func makeWorker(_ endpoint: String, heartbeat: Duration = .milliseconds(100),
                           curve: WorkerConfiguration.Curve? = nil) -> Worker {
        var logger = Logger(label: "test.worker")
        logger.logLevel = .critical
        return Worker(configuration: .init(bridges: [endpoint], workerId: "w1", capacity: 7, heartbeatInterval: heartbeat,
                                           reconnectBackoff: (.milliseconds(50), .milliseconds(200)), curve: curve), logger: logger)
    }

    @Test func announcesItselfAnswersOffersAndSaysGoodbye() async throws {
        let bridge = try FakeBridge()
        defer { bridge.close() }
        // The fake bridge never heartbeats: a long interval keeps the worker from reconnecting mid-test.
        let worker = Self.makeWorker(bridge.endpoint, heartbeat: .seconds(2))
        worker.onOffer { offer in .redirect([Target(uri: "sip:\(offer.requestUri.user!)@gw", q: 1)]) }
        var identity: [UInt8] = []
        try await running(worker) {
            let ready = try #require(await bridge.nextNonHeartbeat())
            #expect(ready.message == .ready(workerId: "w1", capacity: 7))
            #expect(String(decoding: ready.identity, as: UTF8.self).hasPrefix("w1/"))
            identity = ready.identity
            try bridge.send(.welcome(bridgeId: "b1", heartbeatMs: 100), to: identity)
            try bridge.send(.decisionRequest(requestId: "r1", callId: "call-1", deadlineMs: 500, offer: Self.offer), to: identity)
            let answer = try #require(await bridge.nextNonHeartbeat())
            #expect(answer.message == .decision(requestId: "r1", decision: .redirect([Target(uri: "sip:1202@gw", q: 1)])))
        }
        let bye = try #require(await bridge.nextNonHeartbeat(timeout: .seconds(10)))
        #expect(bye.message == .bye)
        #expect(bye.identity == identity)
    }

    @Test func anInlineHandlerAnswersOnTheBusThreadInOrder() async throws {
        let bridge = try FakeBridge()
        defer { bridge.close() }
        let worker = Self.makeWorker(bridge.endpoint, heartbeat: .seconds(2))
        worker.onOffer(inline: { offer in .redirect([Target(uri: "sip:\(offer.requestUri.user!)@inline", q: 1)]) })
        try await running(worker) {
            let ready = try #require(await bridge.nextNonHeartbeat())
            try bridge.send(.welcome(bridgeId: "b1", heartbeatMs: 100), to: ready.identity)
            for n in 1...3 {
                try bridge.send(.decisionRequest(requestId: "r\(n)", callId: "call-\(n)", deadlineMs: 500, offer: Self.offer),
                                to: ready.identity)
            }
            // Decided as each arrives, no task in between: the answers come in the order of the requests.
            for n in 1...3 {
                let answer = try #require(await bridge.nextNonHeartbeat())
                #expect(answer.message == .decision(requestId: "r\(n)", decision: .redirect([Target(uri: "sip:1202@inline", q: 1)])))
            }
        }
    }

    @Test func refusesToRunWithoutAnOfferHandler() async throws {
        let bridge = try FakeBridge()
        defer { bridge.close() }
        await #expect(throws: Worker.NoOfferHandler.self) { try await Self.makeWorker(bridge.endpoint).run() }
    }

    @Test func heartbeatsWhileIdle() async throws {
        let bridge = try FakeBridge()
        defer { bridge.close() }
        let worker = Self.makeWorker(bridge.endpoint)
        worker.onOffer { _ in .reject(status: 404) }
        try await running(worker) {
            #expect(await bridge.next()?.message == .ready(workerId: "w1", capacity: 7))
            #expect(await bridge.next()?.message == .heartbeat)
        }
    }

    @Test func reannouncesWhenTheBridgeForgotIt() async throws {
        let bridge = try FakeBridge()
        defer { bridge.close() }
        let worker = Self.makeWorker(bridge.endpoint, heartbeat: .seconds(1))
        worker.onOffer { _ in .reject(status: 404) }
        try await running(worker) {
            let ready = try #require(await bridge.nextNonHeartbeat())
            // A garbage frame is logged and ignored; the worker keeps going.
            try bridge.sendRaw(Array("not json".utf8), to: ready.identity)
            try bridge.send(.error(ErrorReply(code: .notReady, message: "send worker.ready first")), to: ready.identity)
            #expect(await bridge.nextNonHeartbeat()?.message == .ready(workerId: "w1", capacity: 7))
        }
    }

    @Test func rebuildsTheConnectionWhenTheBridgeIsSilent() async throws {
        let bridge = try FakeBridge()
        defer { bridge.close() }
        let worker = Self.makeWorker(bridge.endpoint)
        worker.onOffer { _ in .reject(status: 404) }
        try await running(worker) {
            #expect(await bridge.nextNonHeartbeat()?.message == .ready(workerId: "w1", capacity: 7))
            // The fake bridge never heartbeats: after 3 intervals (+ back-off) the worker reconnects and re-announces.
            let again = await bridge.nextNonHeartbeat(timeout: .seconds(3))
            #expect(again?.message == .ready(workerId: "w1", capacity: 7))
        }
    }

    @Test func slowHandlersDoNotDelayHeartbeatsOrOtherOffers() async throws {
        let bridge = try FakeBridge()
        defer { bridge.close() }
        let worker = Self.makeWorker(bridge.endpoint)
        worker.onOffer { offer in
            if offer.sipCallId == "slow" { try? await Task.sleep(for: .seconds(1)) }
            return .reject(status: 486)
        }
        try await running(worker) {
            let ready = try #require(await bridge.nextNonHeartbeat())
            try bridge.send(.welcome(bridgeId: "b1", heartbeatMs: 100), to: ready.identity)
            var slow = Self.offer
            slow.sipCallId = "slow"
            try bridge.send(.decisionRequest(requestId: "slow", callId: "c-slow", deadlineMs: 5000, offer: slow), to: ready.identity)
            try bridge.send(.decisionRequest(requestId: "fast", callId: "c-fast", deadlineMs: 5000, offer: Self.offer), to: ready.identity)
            let first = try #require(await bridge.nextNonHeartbeat())
            #expect(first.message == .decision(requestId: "fast", decision: .reject(status: 486)))
            // The slow handler is still running: heartbeats go on regardless.
            var heartbeat = false
            let deadline = ContinuousClock.now + .milliseconds(500)
            while !heartbeat, ContinuousClock.now < deadline, let next = await bridge.next(timeout: deadline - .now) {
                heartbeat = next.message == .heartbeat
            }
            #expect(heartbeat)
        }
    }

    // MARK: - CURVE

    @Test func joinsACurveBridgeWithAnAllowedKey() async throws {
        let keys = try CurveKeyPair.generate()
        let bridge = try FakeBridge(curveAllowing: [keys.publicKey])
        defer { bridge.close() }
        let curve = WorkerConfiguration.Curve(keyPair: keys, bridgeKey: try #require(bridge.curveKeys).publicKey)
        let worker = Self.makeWorker(bridge.endpoint, heartbeat: .seconds(2), curve: curve)
        worker.onOffer { _ in .reject(status: 486) }
        try await running(worker) {
            let ready = try #require(await bridge.nextNonHeartbeat())
            #expect(ready.message == .ready(workerId: "w1", capacity: 7))
            try bridge.send(.decisionRequest(requestId: "r1", callId: "call-1", deadlineMs: 500, offer: Self.offer), to: ready.identity)
            #expect(await bridge.nextNonHeartbeat()?.message == .decision(requestId: "r1", decision: .reject(status: 486)))
        }
        #expect(bridge.denied.isEmpty)
    }

    @Test func cannotJoinACurveBridgeWithAKeyItDoesNotAllow() async throws {
        let allowed = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        let bridge = try FakeBridge(curveAllowing: [allowed.publicKey])
        defer { bridge.close() }
        let curve = WorkerConfiguration.Curve(keyPair: stranger, bridgeKey: try #require(bridge.curveKeys).publicKey)
        let worker = Self.makeWorker(bridge.endpoint, curve: curve)
        worker.onOffer { _ in .reject(status: 486) }
        try await running(worker) {
            #expect(await bridge.next(timeout: .milliseconds(1500)) == nil)
        }
        #expect(!bridge.denied.isEmpty)
        #expect(bridge.denied.allSatisfy { $0 == stranger.publicKey })
    }

    @Test func cannotJoinACurveBridgeWithoutCurve() async throws {
        let bridge = try FakeBridge(curveAllowing: [])
        defer { bridge.close() }
        let worker = Self.makeWorker(bridge.endpoint)
        worker.onOffer { _ in .reject(status: 486) }
        try await running(worker) {
            #expect(await bridge.next(timeout: .seconds(1)) == nil)
        }
    }

    @Test func perBridgeKeysOverrideTheDefault() throws {
        let keys = try CurveKeyPair.generate(), a = try CurveKeyPair.generate().publicKey, b = try CurveKeyPair.generate().publicKey
        let curve = WorkerConfiguration.Curve(keyPair: keys, bridgeKey: a, bridgeKeys: ["tcp://b:5571": b])
        #expect(curve.serverKey(for: "tcp://a:5571") == a)
        #expect(curve.serverKey(for: "tcp://b:5571") == b)
    }
}
