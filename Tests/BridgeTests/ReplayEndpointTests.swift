import BusSchema
import Foundation
import Testing
@testable import Bridge

/// The replay endpoint and the system events, through a real DEALER against a started bridge.
@Suite(.serialized) struct ReplayEndpointTests {
    /// INVITEs with no worker: each is two events (`call.offered`, `call.rejected`).
    static func callsWithNoWorker(_ count: Int, sipPort: Int, tag: String) async throws {
        let phone = try SIPTestClient(bridgePort: sipPort)
        for index in 0..<count {
            phone.send(phone.request("INVITE", branch: "\(tag)\(index)"))
            #expect(await phone.receiveFinal()?.status == 503)
        }
    }

    @Test func bridgeStartedIsTheFirstEventAndNamesTheBridge() async throws {
        try await BridgeFixture.with { _, bound in
            let client = try ReplayClient(endpoint: bound.replay)
            defer { client.close() }
            let (events, end) = try await client.catchUp(from: 0, atLeast: 1)
            let first = try #require(events.first)
            guard case .bridgeStarted(let info) = first.body else {
                Issue.record("expected bridge.started first, got \(events.map(\.type))")
                return
            }
            #expect(first.seq == 1 && first.callId == nil)
            #expect(!first.jsonBytes().contains(subsequence: Array("call_id".utf8)))
            #expect(info.sipListen == "127.0.0.1:\(bound.sipPort)")
            #expect((info.events, info.decisions, info.replay) == (bound.events, bound.decisions, bound.replay))
            #expect(info.version == BridgeConfiguration.version)
            #expect(end == ReplayEnd(requestId: end?.requestId ?? "", bridgeId: "bridge-1", firstSeq: 1, lastSeq: 1, nextSeq: 2))
        }
    }

    @Test func aWorkerJoiningIsAnEvent() async throws {
        try await BridgeFixture.with(handler: { _ in .reject(status: 486) }) { _, bound in
            let client = try ReplayClient(endpoint: bound.replay)
            defer { client.close() }
            let events = try await client.catchUp(from: 1, atLeast: 2).events
            #expect(events.map(\.type) == ["bridge.started", "worker.joined"])
            #expect(events.last?.body == .workerJoined(WorkerInfo(workerId: "test-worker")))
        }
    }

    @Test func replayReturnsWhatWasPublishedInBatchesAndRanges() async throws {
        try await BridgeFixture.with { _, bound in
            let subscriber = try EventTap(endpoint: bound.events)
            defer { subscriber.close() }
            try await Self.callsWithNoWorker(60, sipPort: bound.sipPort, tag: "rp")
            let live = await subscriber.take(120)
            try #require(live.count == 120)
            let client = try ReplayClient(endpoint: bound.replay)
            defer { client.close() }

            let replies = try await client.ask(ReplayRequest(requestId: "all", fromSeq: 1))
            let batches = replies.compactMap { reply -> [Event]? in
                if case .events(let id, let events) = reply, id == "all" { return events.compactMap(\.event) }
                return nil
            }
            #expect(batches.map(\.count) == [100, 21])
            let replayed = batches.flatMap { $0 }
            #expect(replayed.map(\.seq) == Array(1...121))
            // Exactly the events the live subscriber saw (it joined after bridge.started).
            // Every event the live subscriber saw is in the replay under the same seq, identical but for
            // `ts` precision (the subscriber may join a moment late: slow joiner).
            let bySeq = Dictionary(uniqueKeysWithValues: replayed.map { ($0.seq, $0) })
            for liveEvent in live {
                let replayedEvent = try #require(bySeq[liveEvent.seq])
                #expect(replayedEvent.callId == liveEvent.callId && replayedEvent.body == liveEvent.body,
                        "replayed \(replayedEvent) differs from live \(liveEvent)")
                #expect(abs(replayedEvent.timestamp.timeIntervalSince(liveEvent.timestamp)) < 0.001, "seq \(liveEvent.seq)")
            }
            #expect(replies.last == .end(ReplayEnd(requestId: "all", bridgeId: "bridge-1", firstSeq: 1, lastSeq: 121, nextSeq: 122)))

            // A bounded window, and where to continue.
            let window = try await client.ask(ReplayRequest(requestId: "w", fromSeq: 50, max: 10))
            #expect(window.count == 2)
            if case .events(_, let events) = window.first { #expect(events.map(\.seq) == Array(50...59)) }
            #expect(window.last == .end(ReplayEnd(requestId: "w", bridgeId: "bridge-1", firstSeq: 1, lastSeq: 121, nextSeq: 60)))

            // Past the end: no events, already caught up.
            let ahead = try await client.ask(ReplayRequest(requestId: "a", fromSeq: 500))
            #expect(ahead == [.end(ReplayEnd(requestId: "a", bridgeId: "bridge-1", firstSeq: 1, lastSeq: 121, nextSeq: 500))])

            // max is capped, not refused.
            let capped = try await client.ask(Array(#"{"v":1,"type":"replay.request","request_id":"c","from_seq":1,"max":99999}"#.utf8))
            #expect(capped.last == .end(ReplayEnd(requestId: "c", bridgeId: "bridge-1", firstSeq: 1, lastSeq: 121, nextSeq: 122)))
        }
    }

    @Test(arguments: [
        (#"this is not json"#, "bad_json", nil),
        (#"{"v":2,"type":"replay.request","request_id":"r2","from_seq":1}"#, "unsupported_version", "r2"),
        (#"{"v":1,"type":"replay.request","request_id":"r3"}"#, "bad_message", "r3"),
        (#"{"v":1,"type":"replay.request","request_id":"r4","from_seq":-1}"#, "bad_message", "r4"),
        (#"{"v":1,"type":"replay.request","request_id":"r5","from_seq":1,"max":0}"#, "bad_message", "r5"),
        (#"{"v":1,"type":"worker.ready","worker_id":"w","capacity":1}"#, "bad_message", nil),
    ] as [(String, String, String?)])
    func badRequestsGetAnErrorNamingTheProblem(frame: String, code: String, requestId: String?) async throws {
        try await BridgeFixture.with { _, bound in
            let client = try ReplayClient(endpoint: bound.replay)
            defer { client.close() }
            let replies = try await client.ask(Array(frame.utf8))
            guard replies.count == 1, case .error(let reply) = replies[0] else {
                Issue.record("expected one error, got \(replies)")
                return
            }
            #expect(reply.code.rawValue == code)
            #expect(reply.requestId == requestId)
            #expect(!reply.message.isEmpty)
            // The endpoint keeps serving after a refusal.
            #expect(try await client.ask(ReplayRequest(requestId: "ok", fromSeq: 1)).last.map { if case .end = $0 { true } else { false } } == true)
        }
    }

    @Test func numberingContinuesAcrossRestartsAndReplayCoversBothRuns() async throws {
        var configuration = BridgeFixture.configuration()
        configuration.journalPath = BridgeFixture.temporaryJournalPath()
        try await BridgeFixture.with(configuration) { _, bound in
            try await Self.callsWithNoWorker(2, sipPort: bound.sipPort, tag: "r1-")
        }
        try await BridgeFixture.with(configuration) { _, bound in
            try await Self.callsWithNoWorker(1, sipPort: bound.sipPort, tag: "r2-")
            let client = try ReplayClient(endpoint: bound.replay)
            defer { client.close() }
            let events = try await client.catchUp(from: 1, atLeast: 9, max: 3).events
            #expect(events.map(\.type) == ["bridge.started", "call.offered", "call.rejected", "call.offered", "call.rejected",
                                           "bridge.stopping", "bridge.started", "call.offered", "call.rejected"])
            #expect(events.map(\.seq) == Array(1...9))
        }
    }
}

extension Array where Element: Equatable {
    func contains(subsequence: [Element]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<($0 + subsequence.count)]) == subsequence }
    }
}
