import Foundation
import Synchronization
import Testing
@testable import ZeroMQ

@Suite struct ServiceLoopTests {
    /// Values recorded on the loop, read by the test.
    final class Log: Sendable {
        private let items = Mutex<[String]>([])
        func append(_ item: String) { items.withLock { $0.append(item) } }
        var all: [String] { items.withLock { $0 } }
    }

    /// A PUSH (test side) → PULL (on the loop) pair over inproc.
    struct Pipe: Sendable {
        let context: ZMQContext
        let endpoint = "inproc://service-loop-\(UUID().uuidString)"

        /// Binds the PULL on `loop` and logs what it reads into `received`.
        func bindPull(on loop: ZMQServiceLoop, into received: Log) throws -> ZMQLoopBound<ZMQSocket> {
            try loop.submit {
                let pull = try ZMQSocket(context: context, type: .pull)
                try pull.bind(endpoint)
                loop.onStop { _ in pull.close() }
                Self.watch(pull, on: loop, into: received)
                return ZMQLoopBound(pull, loop: loop)
            }
        }

        static func watch(_ pull: ZMQSocket, on loop: ZMQServiceLoop, into received: Log) {
            loop.watch(pull) {
                while let frames = try pull.receive(dontWait: true) { received.append(String(decoding: frames[0], as: UTF8.self)) }
            }
        }

        func connectPush() throws -> ZMQSocket {
            let push = try ZMQSocket(context: context, type: .push)
            try push.connect(endpoint)
            return push
        }
    }

    @Test func workRunsOnTheLoopThreadInTheOrderItWasQueued() throws {
        let loop = try ZMQServiceLoop(name: "test-order")
        let log = Log()
        #expect(!loop.inLoop)
        for index in 0..<100 {
            loop.execute { log.append(loop.inLoop ? "\(index)" : "off-loop \(index)") }
        }
        try loop.stop()
        #expect(log.all == (0..<100).map(String.init))
    }

    @Test func submitReturnsTheResultOrTheError() throws {
        struct Boom: Error {}
        let loop = try ZMQServiceLoop(name: "test-submit")
        #expect(try loop.submit { loop.inLoop } == true)
        #expect(throws: Boom.self) { try loop.submit { throw Boom() } }
        try loop.stop()
        #expect(throws: ZMQServiceLoop.Stopped.self) { try loop.submit { 1 } }
    }

    @Test func queuedWorkWakesAnIdleLoopAtOnce() throws {
        // No socket and no pass hook: without the wake-up the loop would sleep in zmq_poll for ever.
        let loop = try ZMQServiceLoop(name: "test-wake")
        defer { try? loop.stop() }
        for _ in 0..<20 {
            let started = ContinuousClock.now
            _ = try loop.submit { 0 }
            #expect(ContinuousClock.now - started < .milliseconds(200))
        }
    }

    @Test func aWatchedSocketsHandlerReceivesItsMessages() throws {
        let context = try ZMQContext()
        defer { context.close() }
        let pipe = Pipe(context: context)
        let loop = try ZMQServiceLoop(name: "test-watch")
        let received = Log()
        _ = try pipe.bindPull(on: loop, into: received)
        let push = try pipe.connectPush()
        defer { push.close() }
        for index in 0..<50 { try push.send([Array("m\(index)".utf8)]) }
        let deadline = ContinuousClock.now + .seconds(5)
        while received.all.count < 50, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.005) }
        try loop.stop()
        #expect(received.all == (0..<50).map { "m\($0)" })
    }

    @Test func anUnwatchedSocketIsNoLongerRead() throws {
        let context = try ZMQContext()
        defer { context.close() }
        let pipe = Pipe(context: context)
        let loop = try ZMQServiceLoop(name: "test-unwatch")
        let received = Log()
        let pull = try pipe.bindPull(on: loop, into: received)
        try loop.submit { loop.unwatch(pull.value) }
        let push = try pipe.connectPush()
        defer { push.close() }
        try push.send([Array("ignored".utf8)])
        Thread.sleep(forTimeInterval: 0.1)
        #expect(received.all.isEmpty)
        // Still queued in the socket: watching again reads it.
        try loop.submit { Pipe.watch(pull.value, on: loop, into: received) }
        let deadline = ContinuousClock.now + .seconds(5)
        while received.all.isEmpty, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.005) }
        try loop.stop()
        #expect(received.all == ["ignored"])
    }

    @Test func aPassHookRunsAgainByTheDeadlineItAskedFor() throws {
        let loop = try ZMQServiceLoop(name: "test-tick")
        let ticks = Mutex(0)
        let started = ContinuousClock.now
        try loop.submit {
            loop.afterEachPass { now in
                ticks.withLock { $0 += 1 }
                return now + .milliseconds(10)
            }
        }
        Thread.sleep(forTimeInterval: 0.3)
        try loop.stop()
        let count = ticks.withLock { $0 }
        let elapsed = ContinuousClock.now - started
        // About one tick per 10 ms: not a busy loop, and not asleep.
        #expect(count >= 10)
        #expect(count <= Int(elapsed / .milliseconds(10)) + 3)
    }

    @Test func stopRunsQueuedWorkThenTheStopHandlersLastFirst() throws {
        let loop = try ZMQServiceLoop(name: "test-stop")
        let log = Log()
        try loop.submit {
            loop.onStop { failure in log.append("first handler, failure: \(failure != nil)") }
            loop.onStop { _ in log.append("second handler") }
        }
        loop.execute {
            log.append("queued")
            // Work queued by work during the stop still runs.
            loop.execute { log.append("queued by work") }
        }
        try loop.stop()
        loop.execute { log.append("after stop") }
        try loop.stop()
        #expect(log.all == ["queued", "queued by work", "second handler", "first handler, failure: false"])
    }

    @Test func aThrowingHandlerStopsTheLoopAndTheErrorReachesItsOwner() async throws {
        struct Broken: Error {}
        let loop = try ZMQServiceLoop(name: "test-failure")
        let log = Log()
        try loop.submit {
            loop.onStop { failure in log.append("stopped: \(failure is Broken)") }
            loop.afterEachPass { _ in throw Broken() }
        }
        await #expect(throws: Broken.self) { try await loop.waitUntilStopped() }
        #expect(throws: Broken.self) { try loop.stop() }
        #expect(log.all == ["stopped: true"])
        #expect(throws: ZMQServiceLoop.Stopped.self) { try loop.submit { 1 } }
    }

    @Test func waitUntilStoppedReturnsAfterARequestedStop() async throws {
        let loop = try ZMQServiceLoop(name: "test-wait")
        loop.execute { loop.requestStop() }
        try await loop.waitUntilStopped()
        try loop.stop()
    }

    @Test func aLoopBoundValueTrapsOffItsLoop() async {
        await #expect(processExitsWith: .failure) {
            let loop = try ZMQServiceLoop(name: "test-bound")
            let bound = try loop.submit { ZMQLoopBound([1], loop: loop) }
            _ = bound.value
        }
    }
}
