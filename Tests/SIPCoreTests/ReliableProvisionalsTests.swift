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
        ("Supported", "100rel"),
    ])
private let ringing = SIPResponse(replyingTo: invite, status: 180, toTag: "a6c85cf")
private let progress: SIPResponse = {
    var response = SIPResponse(replyingTo: invite, status: 183, toTag: "a6c85cf")
    response.body = Array("v=0\r\n".utf8)
    return response
}()
private let ok = SIPResponse(replyingTo: invite, status: 200, toTag: "a6c85cf")

private func reliable(_ response: SIPResponse, rseq: UInt32) -> SIPResponse {
    var response = response
    response.headers.add("Require", "100rel")
    response.headers.add("RSeq", "\(rseq)")
    return response
}

@Suite("Reliable provisionals, UAS side (RFC 3262 §3)")
struct ReliableProvisionalsTests {
    @Test func retransmitsDoublingUntil64T1ThenTimesOut() {
        var machine = ReliableProvisionals(firstRSeq: 7)
        #expect(machine.provisional(ringing) == [.send(reliable(ringing, rseq: 7)), .startTimer(after: .milliseconds(500))])
        // Again at 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s (no T2 cap, unlike a 2xx), then the give-up at 64·T1 = 32 s.
        let fired = (0..<7).map { _ in machine.timerFired() }
        #expect(fired.prefix(6).map(\.first) == Array(repeating: .send(reliable(ringing, rseq: 7)), count: 6))
        #expect(fired.prefix(6).map(\.last) == [.startTimer(after: .seconds(1)), .startTimer(after: .seconds(2)),
                                                .startTimer(after: .seconds(4)), .startTimer(after: .seconds(8)),
                                                .startTimer(after: .seconds(16)), .startTimer(after: .milliseconds(500))])
        #expect(fired.last == [.timedOut])
        #expect(machine.timerFired() == [])
        #expect(machine.provisional(progress) == [])
    }

    @Test func aPRACKMatchesOnlyTheProvisionalOutAndReleasesTheNext() {
        var machine = ReliableProvisionals(firstRSeq: 1)
        _ = machine.provisional(ringing)
        #expect(machine.provisional(progress) == [], "one unacknowledged at a time")
        #expect(machine.prack(RAck(rseq: 2, sequence: 314159, method: .invite)) == nil)
        #expect(machine.prack(RAck(rseq: 1, sequence: 314158, method: .invite)) == nil)
        #expect(machine.prack(RAck(rseq: 1, sequence: 314159, method: .invite))
            == [.cancelTimer, .send(reliable(progress, rseq: 2)), .startTimer(after: .milliseconds(500))])
        #expect(machine.prack(RAck(rseq: 1, sequence: 314159, method: .invite)) == nil, "acknowledged already")
    }

    @Test func a2xxWaitsForThePRACKOfAProvisionalWithSDPOnly() {
        var machine = ReliableProvisionals(firstRSeq: 1)
        _ = machine.provisional(progress)
        #expect(machine.final(ok) == [])
        #expect(machine.prack(RAck(rseq: 1, sequence: 314159, method: .invite)) == [.cancelTimer, .send(ok)])

        var ringingOnly = ReliableProvisionals(firstRSeq: 1)
        _ = ringingOnly.provisional(ringing)
        #expect(ringingOnly.final(ok) == [.cancelTimer, .send(ok)])
        // Its PRACK after the 2xx still matches, and changes nothing.
        #expect(ringingOnly.prack(RAck(rseq: 1, sequence: 314159, method: .invite)) == [])
    }

    @Test func aFailureGoesAtOnceAndDropsWhatWaits() {
        var machine = ReliableProvisionals(firstRSeq: 1)
        _ = machine.provisional(progress)
        _ = machine.provisional(ringing)
        let busy = SIPResponse(replyingTo: invite, status: 486, toTag: "a6c85cf")
        #expect(machine.final(busy) == [.cancelTimer, .send(busy)])
        #expect(machine.timerFired() == [])
        #expect(machine.prack(RAck(rseq: 1, sequence: 314159, method: .invite)) == [])
    }

    @Test func rackParsesAndPrints() {
        #expect(RAck("776656 1 INVITE") == RAck(rseq: 776656, sequence: 1, method: .invite))
        #expect(RAck("776656 1") == nil)
        #expect(RAck(rseq: 5, sequence: 2, method: .invite).description == "5 2 INVITE")
        #expect(invite.headers.namesOptionTag("100rel", in: "Supported"))
        #expect(!invite.headers.namesOptionTag("100rel", in: "Require"))
    }
}
