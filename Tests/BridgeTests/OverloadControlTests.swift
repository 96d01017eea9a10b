import Logging
import NIOCore
import Testing
@testable import Bridge

@Suite struct OverloadControlTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func makeControl() -> OverloadControl {
        OverloadControl(configuration: .init(), decisionTimeout: .milliseconds(500), logger: Logger(label: "test"), now: t0)
    }

    func at(_ milliseconds: Int64) -> NIODeadline { t0 + .milliseconds(milliseconds) }

    /// `count` calls admitted and decided quickly inside the window starting at `start`, the loop busy `busyMs` of it.
    func serve(_ control: OverloadControl, calls count: Int, from start: Int64, busyMs: Int64) -> (admitted: Int, shed: Int) {
        var admitted = 0
        for _ in 0..<count {
            guard control.admitsNewCall(now: at(start)) else { continue }
            admitted += 1
            control.decided(after: .milliseconds(2))
        }
        control.busy(since: at(start), now: at(start + busyMs))
        return (admitted, count - admitted)
    }

    @Test func aBridgeThatKeepsUpAdmitsEveryCall() {
        let control = makeControl()
        for window in 0..<10 {
            #expect(serve(control, calls: 100, from: Int64(window) * 100, busyMs: 50).shed == 0)
        }
        #expect(control.limit == nil)
    }

    @Test func aBusyLoopShedsWhatItCannotServeAndRecoversWhenTheLoadGoes() {
        let control = makeControl()
        // 200 calls in a window that kept the loop busy 95 %: the next window admits 90 % of them.
        #expect(serve(control, calls: 200, from: 0, busyMs: 95) == (200, 0))
        #expect(serve(control, calls: 300, from: 100, busyMs: 95) == (180, 120))
        // Still overloaded: the limit falls by a tenth each window.
        #expect(serve(control, calls: 300, from: 200, busyMs: 80) == (162, 138))
        #expect(control.limit == 162)
        // Not overloaded but still shedding: the limit grows by a twentieth.
        #expect(serve(control, calls: 100, from: 300, busyMs: 40) == (100, 0))
        #expect(control.limit == 170)
        // A second of windows that shed nothing lifts the limit.
        for window in 4..<13 { _ = serve(control, calls: 1, from: Int64(window) * 100, busyMs: 0) }
        #expect(control.limit != nil)
        #expect(serve(control, calls: 1, from: 1_300, busyMs: 0) == (1, 0))
        #expect(control.limit == nil)
    }

    @Test func slowDecisionsAreOverloadEvenOnAnIdleLoop() {
        let control = makeControl()
        for _ in 0..<20 { #expect(control.admitsNewCall(now: at(0))) }
        // The fastest decision took 300 ms, more than half the 500 ms deadline: a queue at the workers.
        for _ in 0..<10 { control.decided(after: .milliseconds(300)) }
        #expect(control.admitsNewCall(now: at(100)))
        #expect(control.limit == 9)
        for _ in 0..<8 { #expect(control.admitsNewCall(now: at(150))) }
        #expect(!control.admitsNewCall(now: at(150)))
    }

    @Test func datagramsWaitingInTheSocketOrDroppedAreOverload() {
        let control = makeControl()
        var probes = 0
        control.probeReceiveQueue = { probes += 1 }
        control.received(.init(queued: 10_000, buffer: 8_000_000, drops: 7))
        #expect(serve(control, calls: 50, from: 0, busyMs: 10) == (50, 0))
        // A short queue and drops unchanged since the last probe: no overload.
        #expect(control.admitsNewCall(now: at(100)))
        #expect(control.limit == nil)
        #expect(probes == 1)
        // A standing queue: a hundred INVITEs' worth waits in the socket. The workers keep up, so the bridge goes
        // on serving 80 % of its best window (50 calls).
        control.received(.init(queued: 300_000, buffer: 8_000_000, drops: 7))
        #expect(control.admitsNewCall(now: at(200)))
        #expect(control.limit == 40)
        // The kernel dropped datagrams since the last probe, with the queue short again.
        _ = serve(control, calls: 20, from: 250, busyMs: 5)
        control.received(.init(queued: 0, buffer: 8_000_000, drops: 9))
        #expect(control.admitsNewCall(now: at(300)))
        #expect(control.limit == 40)
    }

    @Test func aLoopBusyWithAFloodKeepsServingWhatItServedBest() {
        let control = makeControl()
        // A flood the loop reads and sheds keeps it saturated; the workers decide 100 calls per window at most.
        for window in 0..<30 {
            let start = at(Int64(window) * 100)
            var admitted = 0
            for _ in 0..<2_000 where control.admitsNewCall(now: start) { admitted += 1 }
            for _ in 0..<min(admitted, 100) { control.decided(after: .milliseconds(2)) }
            control.busy(since: start, now: start + .milliseconds(99))
        }
        // 90 % of the 100 served, then no less than 80 % of that best window: no spiral down to one call.
        #expect(control.limit == 80)
    }

    @Test func workersThatFallBehindGetFewerCallsUntilTheyKeepUp() {
        let control = makeControl()
        #expect(serve(control, calls: 100, from: 0, busyMs: 10) == (100, 0))
        for window in 1...10 {
            _ = serve(control, calls: 100, from: Int64(window) * 100, busyMs: 10)
            control.poolFull()
        }
        // No floor here: fewer offers is what a full pool needs (100, 90, 81, 72, 64, ...).
        #expect(control.limit == 36)
    }

    @Test func aFullWorkerPoolIsOverload() {
        let control = makeControl()
        #expect(serve(control, calls: 50, from: 0, busyMs: 10) == (50, 0))
        control.poolFull()
        #expect(control.admitsNewCall(now: at(100)))
        #expect(control.limit == 45)
    }

    @Test func aLateWindowCountsForItsLength() {
        let control = makeControl()
        // 100 calls over a window that ended after 400 ms of a saturated loop: 25 per 100 ms were served.
        #expect(serve(control, calls: 100, from: 0, busyMs: 400) == (100, 0))
        #expect(control.admitsNewCall(now: at(400)))
        #expect(control.limit == 22)
    }

    @Test func callsTheFallbackAnsweredCountAsServed() {
        let control = makeControl()
        // No worker: every call gets the fallback, on a loop busy 95 % of the window.
        for _ in 0..<200 {
            #expect(control.admitsNewCall(now: at(0)))
            control.fellBack()
        }
        control.busy(since: at(0), now: at(95))
        #expect(control.admitsNewCall(now: at(100)))
        #expect(control.limit == 180)
    }

    @Test func theLimitNeverFallsToZero() {
        let control = makeControl()
        _ = serve(control, calls: 0, from: 0, busyMs: 99)
        #expect(control.admitsNewCall(now: at(100)))
        #expect(control.limit == 1)
        #expect(!control.admitsNewCall(now: at(150)))
    }
}
