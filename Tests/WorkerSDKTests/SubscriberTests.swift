import BusSchema
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import ZeroMQ
@testable import WorkerSDK

/// The subscriber against a fake bridge: a PUB for live events and a ROUTER answering replay requests
/// from an in-memory journal, on a dispatch queue of its own.
@Suite(.serialized) struct SubscriberTests {
    // Sendable by hand: the router belongs to the serving queue until `close` has waited for it, the PUB
    // to the test; the journal is under `lock`.
    final class FakeBridge: @unchecked Sendable {
        let context: ZMQContext
        let pub: ZMQSocket
        let router: ZMQSocket
        let events: String
        let replay: String
        private let lock = NSLock()
        private var journal: [UInt64: [UInt8]] = [:]
        private var retainedFrom: UInt64 = 0
        private var stopping = false
        private var requests: [UInt64] = []
        private let done = DispatchSemaphore(value: 0)

        init() throws {
            context = try ZMQContext()
            pub = try ZMQSocket(context: context, type: .pub)
            events = try pub.bind("tcp://127.0.0.1:*")
            router = try ZMQSocket(context: context, type: .router)
            replay = try router.bind("tcp://127.0.0.1:*")
            DispatchQueue.global().async { self.serve() }
        }

        /// The `from_seq` of every replay request so far.
        var replayRequests: [UInt64] { lock.withLock { requests } }

        /// Puts events in the journal without publishing them (as if the PUB message was lost).
        func journal(_ frames: [(UInt64, [UInt8])]) {
            lock.withLock { for (seq, frame) in frames { journal[seq] = frame } }
        }

        /// Forgets everything before `seq` (retention).
        func retain(from seq: UInt64) {
            lock.withLock {
                retainedFrom = seq
                journal = journal.filter { $0.key >= seq }
            }
        }

        /// Journals and publishes.
        func publish(_ seq: UInt64, type: String = "call.rejected") throws {
            let frame = SubscriberTests.eventFrame(seq, type: type)
            journal([(seq, frame)])
            try pub.send([Array(type.utf8), frame])
        }

        private func serve() {
            var poller = ZMQPoller()
            let index = poller.add(router)
            while !lock.withLock({ stopping }) {
                guard (try? poller.poll(timeout: .milliseconds(20)).contains(index)) == true else { continue }
                while let frames = try? router.receive(dontWait: true), frames.count == 2 {
                    answer(frames[1], to: frames[0])
                }
            }
            router.close()
            done.signal()
        }

        private func answer(_ frame: [UInt8], to identity: [UInt8]) {
            guard let request = (try? JSONSerialization.jsonObject(with: Data(frame))) as? [String: Any],
                  let requestId = request["request_id"] as? String,
                  let from = (request["from_seq"] as? NSNumber)?.uint64Value,
                  let limit = request["max"] as? Int else { return }
            let (batch, first, last) = lock.withLock { () -> ([[UInt8]], UInt64, UInt64) in
                requests.append(from)
                let seqs = journal.keys.sorted()
                return (seqs.filter { $0 >= from }.prefix(limit).map { journal[$0]! }, seqs.first ?? 0, seqs.last ?? 0)
            }
            let next = batch.isEmpty ? max(from, last + 1) : from + UInt64(batch.count)
            if !batch.isEmpty {
                let body = "{\"v\":1,\"type\":\"replay.events\",\"request_id\":\"\(requestId)\",\"events\":["
                    + batch.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ",") + "]}"
                try? router.send([identity, Array(body.utf8)])
            }
            let end = "{\"v\":1,\"type\":\"replay.end\",\"request_id\":\"\(requestId)\",\"bridge_id\":\"b1\","
                + "\"first_seq\":\(first),\"last_seq\":\(last),\"next_seq\":\(next)}"
            try? router.send([identity, Array(end.utf8)])
        }

        func close() {
            lock.withLock { stopping = true }
            done.wait()
            pub.close()
            context.close()
        }
    }

    /// What the handlers saw.
    final class Collected: Sendable {
        private let seqs = Mutex<[UInt64]>([])
        private let losses = Mutex<[EventLoss]>([])
        var events: [UInt64] { seqs.withLock { $0 } }
        var lost: [EventLoss] { losses.withLock { $0 } }
        func add(_ seq: UInt64) { seqs.withLock { $0.append(seq) } }
        func add(_ loss: EventLoss) { losses.withLock { $0.append(loss) } }

        /// Waits (sleeping, not blocking) until `condition` holds or the time is up.
        func wait(timeout: Duration = .seconds(5), until condition: (Collected) -> Bool) async -> Bool {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if condition(self) { return true }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return condition(self)
        }
    }

    static func eventFrame(_ seq: UInt64, type: String = "call.rejected") -> [UInt8] {
        if type != "call.rejected" {
            // A type this build may not know, with no call id (a system event).
            return Array("{\"v\":1,\"type\":\"\(type)\",\"bridge_id\":\"b1\",\"seq\":\(seq),\"ts\":\"2026-11-26T20:00:00.000Z\",\"worker\":{\"worker_id\":\"w\"}}".utf8)
        }
        let event = Event(bridgeId: "b1", seq: seq, timestamp: Date(timeIntervalSince1970: 1_800_000_000), callId: "b1-\(seq)",
                          body: .callRejected(Rejected(status: 404, reason: "Not Found", workerId: "w1", fallback: false,
                                                       cause: nil, decisionMs: 0.5)))
        return event.jsonBytes()
    }

    static func subscriber(_ bridge: FakeBridge, resumeAfter: UInt64?, idle: Duration = .seconds(10),
                           into collected: Collected) -> EventSubscriber {
        var logger = Logger(label: "test.subscriber")
        logger.logLevel = .critical
        let subscriber = EventSubscriber(
            configuration: .init(events: bridge.events, replay: bridge.replay, resumeAfter: resumeAfter, idleCheckInterval: idle,
                                 replayTimeout: .milliseconds(300), replayAttempts: 3),
            logger: logger
        )
        subscriber.onEvent { event in
            // A little work per event: order must hold even when the handler is slower than the bus.
            try await Task.sleep(for: .milliseconds(1))
            collected.add(event.seq)
        }
        subscriber.onLoss { collected.add($0) }
        return subscriber
    }


    @Test func lateStartReplaysWhatWasMissedThenFollowsLive() async throws {
        let bridge = try FakeBridge()
        defer { bridge.close() }
        bridge.journal((1...5).map { ($0, Self.eventFrame($0)) })
        let collected = Collected()
        let subscriber = Self.subscriber(bridge, resumeAfter: 2, into: collected)
        try await running(subscriber) {
            #expect(await collected.wait { $0.events == [3, 4, 5] })
            // Live events may arrive before the SUB is connected; the ones missed are replayed.
            for seq in UInt64(6)...8 { try bridge.publish(seq) }
            #expect(await collected.wait { $0.events.count >= 6 })
        }
        #expect(collected.events == [3, 4, 5, 6, 7, 8])
        #expect(bridge.replayRequests.first == 3)
        #expect(collected.lost.isEmpty)
    }

    @Test func gapInTheLiveStreamIsReplayedInOrderWithoutDuplicates() async throws {
        let bridge = try FakeBridge()
        defer { bridge.close() }
        let collected = Collected()
        let subscriber = Self.subscriber(bridge, resumeAfter: nil, into: collected)
        try await running(subscriber) {
            // Slow joiner: publish seq 1 until the subscriber hears it; the repeats are duplicates.
            #expect(await collected.wait { _ in (try? bridge.publish(1)) != nil && !collected.events.isEmpty })
            try bridge.publish(2)
            bridge.journal([(3, Self.eventFrame(3)), (4, Self.eventFrame(4))])   // published but lost
            try bridge.publish(5)
            try bridge.publish(6)
            #expect(await collected.wait { $0.events.count >= 6 })
        }
        #expect(collected.events == [1, 2, 3, 4, 5, 6])
        #expect(bridge.replayRequests.contains(3))
        // Replayed 5 (and maybe 6) were already waiting as live events.
        #expect(subscriber.statistics.duplicates >= 1)
        #expect(subscriber.statistics.delivered == 6)
        #expect(collected.lost.isEmpty)
    }

    @Test func eventsTheJournalNoLongerHasAreReportedAsLoss() async throws {
        let bridge = try FakeBridge()
        defer { bridge.close() }
        bridge.journal((1...25).map { ($0, Self.eventFrame($0)) })
        bridge.retain(from: 20)
        let collected = Collected()
        let subscriber = Self.subscriber(bridge, resumeAfter: 10, into: collected)
        try await running(subscriber) {
            #expect(await collected.wait { $0.events.count >= 6 })
        }
        #expect(collected.lost == [EventLoss(bridgeId: "b1", range: 11...19, reason: .expired)])
        #expect(collected.events == Array(20...25))
        #expect(subscriber.statistics.lost == 9)
    }

    @Test func unknownEventTypesAreSkippedAndCountedNotTreatedAsGaps() async throws {
        let bridge = try FakeBridge()
        defer { bridge.close() }
        bridge.journal([(1, Self.eventFrame(1)), (2, Self.eventFrame(2, type: "worker.future_thing")), (3, Self.eventFrame(3))])
        let collected = Collected()
        let subscriber = Self.subscriber(bridge, resumeAfter: 0, into: collected)
        try await running(subscriber) {
            #expect(await collected.wait { $0.events.count >= 2 })
        }
        #expect(collected.events == [1, 3])
        #expect(subscriber.statistics.unknownSkipped == 1)
        #expect(collected.lost.isEmpty)
    }

    @Test func idleCheckFindsEventsLostAtTheTail() async throws {
        let bridge = try FakeBridge()
        defer { bridge.close() }
        let collected = Collected()
        let subscriber = Self.subscriber(bridge, resumeAfter: 0, idle: .milliseconds(200), into: collected)
        try await running(subscriber) {
            try await Task.sleep(for: .milliseconds(300))
            // Journaled but never heard live, and nothing follows them.
            bridge.journal([(1, Self.eventFrame(1)), (2, Self.eventFrame(2))])
            #expect(await collected.wait(timeout: .seconds(3)) { $0.events.count >= 2 })
        }
        #expect(collected.events == [1, 2])
    }

    @Test func aGapThatCannotBeReplayedIsReportedAndDeliveryGoesOn() async throws {
        // No replay endpoint answers: after the attempts run out the gap is a loss.
        let bridge = try FakeBridge()
        defer { bridge.close() }
        let collected = Collected()
        var logger = Logger(label: "test.subscriber")
        logger.logLevel = .critical
        let subscriber = EventSubscriber(
            configuration: .init(events: bridge.events, replay: "tcp://127.0.0.1:1", resumeAfter: nil, idleCheckInterval: .seconds(10),
                                 replayTimeout: .milliseconds(100), replayAttempts: 2),
            logger: logger
        )
        subscriber.onEvent { collected.add($0.seq) }
        subscriber.onLoss { collected.add($0) }
        try await running(subscriber) {
            #expect(await collected.wait { _ in (try? bridge.publish(1)) != nil && !collected.events.isEmpty })
            try bridge.publish(4)
            #expect(await collected.wait { $0.events.contains(4) })
        }
        #expect(collected.events.filter { $0 != 1 } == [4])
        #expect(collected.lost == [EventLoss(bridgeId: "b1", range: 2...3, reason: .unavailable)])
    }
}

/// The ordering logic alone, with an injected clock.
@Suite struct SubscriptionMachineTests {
    let start = ContinuousClock.now

    func event(_ seq: UInt64) -> SequencedEvent {
        SequencedEvent(bridgeId: "b1", seq: seq, type: "call.routed", event: nil)
    }

    @Test func liveEventsPastAGapWaitForTheReplay() {
        var machine = SubscriptionMachine(resumeAfter: 4, configuration: .init(), now: start)
        #expect(machine.start(now: start) == [.requestReplay(requestId: "r1", fromSeq: 5, max: 1000)])
        #expect(machine.receiveLive(event(7), now: start).isEmpty)
        #expect(machine.receiveReplayEvents(requestId: "r1", events: [event(5), event(6), event(7)], now: start)
                == [.deliver(event(5)), .deliver(event(6)), .deliver(event(7))])
        #expect(machine.receiveReplayEnd(requestId: "r1", bridgeId: "b1", firstSeq: 1, lastSeq: 7, nextSeq: 8, now: start).isEmpty)
        #expect(machine.receiveLive(event(7), now: start).isEmpty)
        // Once from the replay (it was already waiting) and once more live.
        #expect(machine.duplicates == 2)
        #expect(machine.receiveLive(event(8), now: start) == [.deliver(event(8))])
    }

    @Test func aStaleReplyIsIgnored() {
        var machine = SubscriptionMachine(resumeAfter: 0, configuration: .init(), now: start)
        _ = machine.start(now: start)
        #expect(machine.receiveReplayEvents(requestId: "r0", events: [event(1)], now: start).isEmpty)
        #expect(machine.last == 0)
    }

    @Test func aBatchLimitAsksForMore() {
        var machine = SubscriptionMachine(resumeAfter: 0, configuration: .init(batch: 2), now: start)
        _ = machine.start(now: start)
        _ = machine.receiveReplayEvents(requestId: "r1", events: [event(1), event(2)], now: start)
        #expect(machine.receiveReplayEnd(requestId: "r1", bridgeId: "b1", firstSeq: 1, lastSeq: 5, nextSeq: 3, now: start)
                == [.requestReplay(requestId: "r2", fromSeq: 3, max: 2)])
    }

    /// Caught up once a `replay.end` says there is nothing more: not after a full batch, nor while a gap waits.
    @Test func caughtUpWhenTheJournalHasNoMore() {
        var machine = SubscriptionMachine(resumeAfter: 0, configuration: .init(batch: 2), now: start)
        _ = machine.start(now: start)
        _ = machine.receiveReplayEvents(requestId: "r1", events: [event(1), event(2)], now: start)
        _ = machine.receiveReplayEnd(requestId: "r1", bridgeId: "b1", firstSeq: 1, lastSeq: 3, nextSeq: 3, now: start)
        #expect(!machine.caughtUp)
        #expect(machine.receiveLive(event(5), now: start).isEmpty)
        _ = machine.receiveReplayEvents(requestId: "r2", events: [event(3)], now: start)
        _ = machine.receiveReplayEnd(requestId: "r2", bridgeId: "b1", firstSeq: 1, lastSeq: 3, nextSeq: 4, now: start)
        #expect(!machine.caughtUp)   // 4 is missing, 5 waits
        _ = machine.receiveReplayEvents(requestId: "r3", events: [event(4)], now: start)
        _ = machine.receiveReplayEnd(requestId: "r3", bridgeId: "b1", firstSeq: 1, lastSeq: 4, nextSeq: 5, now: start)
        #expect(machine.caughtUp)
        #expect(machine.last == 5)
    }

    @Test func idleTicksProbeTheJournal() {
        var machine = SubscriptionMachine(resumeAfter: 3, configuration: .init(idleInterval: .seconds(3)), now: start)
        _ = machine.start(now: start)
        _ = machine.receiveReplayEnd(requestId: "r1", bridgeId: "b1", firstSeq: 1, lastSeq: 3, nextSeq: 4, now: start)
        #expect(machine.tick(now: start + .seconds(1)).isEmpty)
        #expect(machine.tick(now: start + .seconds(3)) == [.requestReplay(requestId: "r2", fromSeq: 4, max: 1000)])
    }
}
