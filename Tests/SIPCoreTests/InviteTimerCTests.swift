import Testing
@testable import SIPCore

/// Timer C (RFC 3261 §16.6 item 11, §16.7 item 2, §16.8) event by event.
@Suite struct InviteTimerCTests {
    let timers = SIPTimers(timerC: .seconds(200))

    @Test func itStartsAndRestartsOnlyOnProvisionalsFrom101To199() {
        var timerC = InviteTimerC(timers: timers)
        #expect(timerC.start() == [.startTimer(after: .seconds(200))])
        #expect(timerC.received(status: 100).isEmpty)
        #expect(timerC.received(status: 180) == [.startTimer(after: .seconds(200))])
        #expect(timerC.received(status: 183) == [.startTimer(after: .seconds(200))])
    }

    @Test func aFinalResponseStopsItAndALateFiringDoesNothing() {
        var timerC = InviteTimerC(timers: timers)
        _ = timerC.received(status: 180)
        #expect(timerC.received(status: 486) == [.cancelTimer])
        #expect(timerC.fired().isEmpty)
        #expect(timerC.received(status: 200).isEmpty)
    }

    @Test func firingAfterAProvisionalCancelsTheINVITE() {
        var trying = InviteTimerC(timers: timers)
        _ = trying.received(status: 100)
        #expect(trying.fired() == [.cancel])
        #expect(trying.fired().isEmpty)
    }

    @Test func firingWithoutAProvisionalIsATimeout() {
        var silent = InviteTimerC(timers: timers)
        #expect(silent.fired() == [.timeout])
    }

    @Test func theTransactionEndingStopsIt() {
        var timerC = InviteTimerC(timers: timers)
        #expect(timerC.transactionEnded() == [.cancelTimer])
        #expect(timerC.fired().isEmpty)
    }

    @Test func theDefaultIsMoreThanThreeMinutes() {
        #expect(SIPTimers().timerC > .seconds(180))
    }
}
