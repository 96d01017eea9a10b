import BusSchema
import Foundation
import Testing
@testable import Bridge

/// `switchboard-bridge bench-events`: its seq reader, and a short run through the real bus, journal and SUB sockets.
@Suite struct EventsBenchTests {
    @Test func readsTheSeqOfEveryEventShape() throws {
        for seq: UInt64 in [1, 2, 9, 10, 12_345, UInt64.max] {
            let frame = Event(bridgeId: "b1", seq: seq, timestamp: Date(), callId: "c", body: EventsBench.body(seq)).jsonBytes()
            #expect(BenchSubscriber.seq(in: frame) == seq)
        }
        #expect(BenchSubscriber.seq(in: Array(#"{"v":1,"type":"x"}"#.utf8)) == nil)
        #expect(BenchSubscriber.seq(in: Array(#"{"seq":"#.utf8)) == nil)
        #expect(BenchSubscriber.seq(in: Array(#"{"seq":x}"#.utf8)) == nil)
        #expect(BenchSubscriber.seq(in: []) == nil)
    }

    @Test func theBodiesAreTheBridgesOfferAndRoute() throws {
        let offered = Event(bridgeId: "b1", seq: 4, timestamp: Date(), callId: EventsBench.callId(4), body: EventsBench.body(4))
        let routed = Event(bridgeId: "b1", seq: 5, timestamp: Date(), callId: EventsBench.callId(5), body: EventsBench.body(5))
        #expect(try Event.decode(offered.jsonBytes()).type == "call.offered")
        #expect(try Event.decode(routed.jsonBytes()).type == "call.routed")
        #expect(offered.callId == routed.callId)
    }

    @Test(arguments: [0, 20_000])
    func everySubscriberGetsEveryEventAndTheJournalHoldsThem(rate: Int) throws {
        let path = BridgeFixture.temporaryJournalPath()
        let result = try EventsBench(events: 3_000, subscribers: 3, rate: rate, window: 500, timeout: .seconds(10),
                                     journal: .init(path: path), logger: BridgeFixture.logger).measure()
        #expect(result.passed)
        #expect(result.journaled == 3_000)
        #expect(result.tallies.map(\.measured) == [3_000, 3_000, 3_000])
        #expect(result.tallies.allSatisfy { $0.missed == 0 && $0.disordered == 0 })
        #expect(result.eventsPerSecond > 0)
        // The journal replays the run, numbered on from the warm-up events.
        let journal = try EventJournal(configuration: .init(path: path), logger: BridgeFixture.logger)
        defer { journal.stop() }
        let range = try journal.read(from: result.firstSeq, max: 3_000)
        #expect(range.events.map(\.seq) == Array(result.firstSeq..<result.firstSeq + 3_000))
        #expect(range.lastSeq == result.firstSeq + 2_999)
    }

    @Test func aLossFailsTheRun() {
        var tally = BenchSubscriber.Tally()
        tally.measured = 99
        tally.missed = 1
        let result = EventsBench.Result(events: 100, subscribers: 1, rate: 0, firstSeq: 1, elapsed: .seconds(1), publishing: .seconds(1),
                                        tallies: [tally], journaled: 100, commits: 1, threadCPU: [:])
        #expect(!result.passed)
        #expect(result.lost == 1)
        #expect(result.text().contains("FAILED"))
        let complete = BenchSubscriber.Tally(measured: 100)
        #expect(EventsBench.Result(events: 100, subscribers: 1, rate: 0, firstSeq: 1, elapsed: .seconds(1), publishing: .seconds(1),
                                   tallies: [complete], journaled: 99, commits: 1, threadCPU: [:]).passed == false)
    }
}
