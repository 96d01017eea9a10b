import SIPCore
import Testing

private let invite = SIPRequest(
    method: .invite, uri: .sip(SIPURI(user: "bob", host: "biloxi.com")),
    headers: [
        ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8"),
        ("To", "Bob <sip:bob@biloxi.com>"),
        ("From", "Alice <sip:alice@atlanta.com>;tag=9fxced76sl"),
        ("Call-ID", "a84b4c76e66710@pc33.atlanta.com"),
        ("CSeq", "314159 INVITE"),
    ])
private let ok = SIPResponse(replyingTo: invite, status: 200, toTag: "a6c85cf")

@Suite("2xx retransmission until the ACK (RFC 3261 §13.3.1.4)")
struct UAS2xxRetransmissionTests {
    @Test func sendsAtOnceThenDoublesUpToT2() {
        var answer = UAS2xxRetransmission(response: ok, timers: SIPTimers())
        #expect(answer.sequence == 314159)
        #expect(answer.start() == [.send(ok), .startTimer(after: .milliseconds(500))])
        #expect(answer.timerFired() == [.send(ok), .startTimer(after: .seconds(1))])
        #expect(answer.timerFired() == [.send(ok), .startTimer(after: .seconds(2))])
        #expect(answer.timerFired() == [.send(ok), .startTimer(after: .seconds(4))])
        #expect(answer.timerFired() == [.send(ok), .startTimer(after: .seconds(4))])
        #expect(answer.state == .waitingForACK)
    }

    @Test func theACKWithTheInvitesCSeqStopsIt() {
        var answer = UAS2xxRetransmission(response: ok, timers: SIPTimers())
        _ = answer.start()
        _ = answer.timerFired()
        // An ACK of an earlier INVITE in the dialog is not this one's.
        #expect(answer.receivedACK(sequence: 314158) == [])
        #expect(answer.receivedACK(sequence: 314159) == [.cancelTimer, .terminated(.normal)])
        #expect(answer.state == .confirmed)
        #expect(answer.receivedACK(sequence: 314159) == [])
        // A timer that raced the ACK sends nothing.
        #expect(answer.timerFired() == [])
    }

    @Test func noACKBy64T1AbandonsTheSession() {
        var answer = UAS2xxRetransmission(response: ok, timers: SIPTimers())
        _ = answer.start()
        // Waits of 0.5 + 1 + 2 + 4·7 = 31.5 s keep retransmitting; the next fire reaches 35.5 s ≥ 32 s.
        var sends = 0
        for _ in 0..<10 {
            if case .send = answer.timerFired().first { sends += 1 }
        }
        #expect(sends == 10)
        #expect(answer.timerFired() == [.terminated(.timeout)])
        #expect(answer.state == .abandoned)
        #expect(answer.receivedACK(sequence: 314159) == [])
    }

    @Test func aShortT1ScalesEveryInterval() {
        var answer = UAS2xxRetransmission(response: ok, timers: SIPTimers(t1: .milliseconds(100), t2: .milliseconds(300)))
        #expect(answer.start() == [.send(ok), .startTimer(after: .milliseconds(100))])
        #expect(answer.timerFired() == [.send(ok), .startTimer(after: .milliseconds(200))])
        #expect(answer.timerFired() == [.send(ok), .startTimer(after: .milliseconds(300))])
    }

    @Test func stoppingBeforeTheACKCancelsTheTimer() {
        var answer = UAS2xxRetransmission(response: ok, timers: SIPTimers())
        _ = answer.start()
        #expect(answer.stop() == [.cancelTimer])
        #expect(answer.state == .abandoned)
        #expect(answer.timerFired() == [])
        #expect(answer.stop() == [])
    }
}
