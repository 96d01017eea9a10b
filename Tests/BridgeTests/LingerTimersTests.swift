import NIOCore
import NIOEmbedded
import SIPCore
import Testing
@testable import Bridge

@Suite("Linger timers")
struct LingerTimersTests {
    private final class Owner {}

    /// Collects what fired, on a virtual clock.
    private final class Fired {
        var events: [(key: String, timer: TransactionTimerID, at: NIODeadline)] = []
    }

    @Test func timersFireInDeadlineOrderWithinTheResolution() {
        let loop = EmbeddedEventLoop()
        let start = loop.now
        let fired = Fired()
        let linger = LingerTimers<String, TransactionTimerID>(loop: loop, resolution: .milliseconds(200)) { key, timer, _ in
            fired.events.append((key, timer, loop.now))
        }
        let owner = Owner()
        linger.start(.timerL, for: "a", owner: owner, after: .seconds(32))
        linger.start(.timerI, for: "b", owner: owner, after: .seconds(5))
        loop.advanceTime(by: .milliseconds(500))
        linger.start(.timerL, for: "c", owner: owner, after: .seconds(32))
        loop.advanceTime(by: .seconds(4))
        #expect(fired.events.isEmpty)
        loop.advanceTime(by: .milliseconds(700))
        #expect(fired.events.map(\.key) == ["b"])
        loop.advanceTime(by: .seconds(27))
        #expect(fired.events.map(\.key) == ["b", "a"])
        loop.advanceTime(by: .seconds(1))
        #expect(fired.events.map(\.key) == ["b", "a", "c"])
        // Each fired no earlier than its deadline and less than one resolution after it.
        for (event, due) in zip(fired.events, [5.0, 32.0, 32.5]) {
            let late = event.at - (start + .milliseconds(Int64(due * 1000)))
            #expect(late >= .zero && late < .milliseconds(200), "\(event.key) fired \(late) late")
        }
        #expect(fired.events.map(\.timer) == [.timerI, .timerL, .timerL])
    }

    @Test func theOwnerComesBackSoAReplacedEntryIsLeftAlone() {
        let loop = EmbeddedEventLoop()
        let original = Owner()
        let current = Owner()
        var firedFor: [Bool] = []
        let linger = LingerTimers<String, TransactionTimerID>(loop: loop) { _, _, owner in
            firedFor.append(owner === current)
        }
        linger.start(.timerJ, for: "k", owner: original, after: .seconds(1))
        linger.start(.timerJ, for: "k", owner: current, after: .seconds(1))
        loop.advanceTime(by: .seconds(2))
        #expect(firedFor == [false, true])
    }

    @Test func manyTimersAreAllFiredOnce() {
        let loop = EmbeddedEventLoop()
        var count = 0
        let linger = LingerTimers<Int, ClientTimerID>(loop: loop) { _, _, _ in count += 1 }
        let owner = Owner()
        for round in 0..<5 {
            for index in 0..<1_000 { linger.start(.timerM, for: round * 1_000 + index, owner: owner, after: .seconds(32)) }
            loop.advanceTime(by: .seconds(10))
        }
        loop.advanceTime(by: .seconds(40))
        #expect(count == 5_000)
    }

    @Test func onlyTheTimersThatEndALingeringTransactionAreQueued() {
        #expect([TransactionTimerID.timerG, .timerH, .timerI, .timerJ, .timerL].filter(\.lingers) == [.timerI, .timerJ, .timerL])
        #expect([ClientTimerID.timerA, .timerB, .timerD, .timerE, .timerF, .timerK, .timerM, .cancelled].filter(\.lingers)
                == [.timerD, .timerK, .timerM])
    }
}
