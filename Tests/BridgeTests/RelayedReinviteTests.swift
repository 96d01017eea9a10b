import SIPCore
import Testing
@testable import Bridge

/// The relayed re-INVITE's machine, event by event: what goes to the far side and back to the requester.
@Suite struct RelayedReinviteTests {
    let offer = Array("v=0\r\no=a 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n".utf8)
    let timers = SIPTimers()
    let answer = Array("v=0\r\no=b 1 2 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=recvonly\r\n".utf8)

    /// A far response to the relayed re-INVITE (CSeq 7).
    func far(_ status: Int, body: [UInt8] = []) -> SIPResponse {
        var invite = SIPRequest(method: .invite, uri: SIPAnyURI("sip:bob@192.0.2.2")!)
        invite.headers.add("Via", "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKrelay1")
        invite.headers.add("From", "<sip:alice@x>;tag=a1")
        invite.headers.add("To", "<sip:bob@y>;tag=b1")
        invite.headers.add("Call-ID", "far-1")
        invite.headers.add("CSeq", "7 INVITE")
        var response = SIPResponse(replyingTo: invite, status: status)
        response.body = body
        return response
    }

    @Test func anAnsweredReINVITEIsRelayedACKedAndItsOfferTaken() {
        var relay = RelayedReinvite(offer: offer, timers: timers)
        #expect(relay.farResponse(far(100)).isEmpty)
        let ok = far(200, body: answer)
        #expect(relay.farResponse(ok) == [.cancelTimerC, .relayFinal(ok), .ackFar(ok, body: []), .offerAccepted(offerer: .requester, sdp: offer)])
        #expect(relay.state == .completed)
        // RFC 3261 §13.2.2.4: each retransmission of the 2xx gets an ACK, and nothing else happens.
        #expect(relay.farResponse(ok) == [.ackFar(ok, body: [])])
    }

    /// RFC 3261 §9.1: the CANCEL goes once the far side sent a provisional, and its 487 is the requester's answer.
    @Test func aCANCELWaitsForTheFarProvisionalAndItsFinalIsRelayed() {
        var relay = RelayedReinvite(offer: offer, timers: timers)
        #expect(relay.requesterCancelled().isEmpty)
        #expect(relay.farResponse(far(100)) == [.cancelFar])
        #expect(relay.farResponse(far(180)) == [.startTimerC(after: timers.timerC)])
        #expect(relay.requesterCancelled().isEmpty)
        let terminated = far(487)
        #expect(relay.farResponse(terminated) == [.cancelTimerC, .relayFinal(terminated)])
        #expect(relay.state == .completed)
    }

    @Test func aCANCELAfterTheProvisionalGoesAtOnce() {
        var relay = RelayedReinvite(offer: offer, timers: timers)
        #expect(relay.farResponse(far(180)) == [.startTimerC(after: timers.timerC)])
        #expect(relay.requesterCancelled() == [.cancelFar])
        #expect(relay.farResponse(far(183)) == [.startTimerC(after: timers.timerC)])
    }

    /// The CANCEL crossed the far 2xx: the requester gets that 2xx too, so both ends keep the new session.
    @Test func aTwoHundredThatCrossedTheCANCELIsRelayedAndACKed() {
        var relay = RelayedReinvite(offer: offer, timers: timers)
        _ = relay.farResponse(far(100))
        #expect(relay.requesterCancelled() == [.cancelFar])
        let ok = far(200, body: answer)
        #expect(relay.farResponse(ok) == [.cancelTimerC, .relayFinal(ok), .ackFar(ok, body: []), .offerAccepted(offerer: .requester, sdp: offer)])
        // The requester's final response is out: a late CANCEL changes nothing.
        #expect(relay.requesterCancelled().isEmpty)
    }

    /// A far side that took our CANCEL but never answered the re-INVITE: the requester gets its 487 and the call
    /// goes on; without a CANCEL the silence means the far dialog is gone (RFC 5057).
    @Test func aTimeoutAfterTheCANCELIs487AndTheCallStays() {
        var cancelled = RelayedReinvite(offer: offer, timers: timers)
        _ = cancelled.farResponse(far(100))
        _ = cancelled.requesterCancelled()
        #expect(cancelled.farTimedOut() == [.cancelTimerC, .respond(status: 487)])

        var silent = RelayedReinvite(offer: offer, timers: timers)
        #expect(silent.farTimedOut() == [.cancelTimerC, .respond(status: 408), .farEndGone])
    }

    @Test func aRefusalIsRelayedAndA481EndsTheCall() {
        var refused = RelayedReinvite(offer: offer, timers: timers)
        let notAcceptable = far(488)
        #expect(refused.farResponse(notAcceptable) == [.cancelTimerC, .relayFinal(notAcceptable)])

        var gone = RelayedReinvite(offer: offer, timers: timers)
        let noDialog = far(481)
        #expect(gone.farResponse(noDialog) == [.cancelTimerC, .relayFinal(noDialog), .farEndGone])
    }

    /// RFC 3261 §14.1 delayed offer: the far 2xx is the offer and goes to the requester; the far ACK waits for the
    /// requester's ACK and carries its answer, and again for each retransmission of the far 2xx.
    @Test func anOfferlessReINVITEGetsTheFarOfferAndTheRequestersAnswerGoesInTheFarACK() {
        var relay = RelayedReinvite(offer: [], timers: timers)
        let ok = far(200, body: answer)
        #expect(relay.farResponse(ok) == [.cancelTimerC, .relayFinal(ok)])
        #expect(relay.farResponse(ok).isEmpty)
        #expect(relay.requesterACK(body: offer) == [.ackFar(ok, body: offer), .offerAccepted(offerer: .far, sdp: answer)])
        #expect(relay.state == .completed)
        #expect(relay.farResponse(ok) == [.ackFar(ok, body: offer)])
        #expect(relay.requesterACK(body: offer).isEmpty)
    }

    @Test func anOfferedReINVITEIgnoresTheBodyOfTheRequestersACK() {
        var relay = RelayedReinvite(offer: offer, timers: timers)
        _ = relay.farResponse(far(200, body: answer))
        #expect(relay.requesterACK(body: answer).isEmpty)
    }

    /// RFC 3261 §16.6 item 11, §16.8: Timer C starts with the relay, restarts with each 101-199, and when it fires
    /// after a provisional the far re-INVITE is CANCELled; its 487 goes to the requester and the call stays.
    @Test func timerCCancelsAFarReINVITEThatRingsForEver() {
        var relay = RelayedReinvite(offer: offer, timers: timers)
        #expect(relay.start() == [.startTimerC(after: .seconds(181))])
        #expect(relay.farResponse(far(100)).isEmpty)
        #expect(relay.farResponse(far(180)) == [.startTimerC(after: .seconds(181))])
        #expect(relay.timerCFired() == [.cancelFar])
        let terminated = far(487)
        #expect(relay.farResponse(terminated) == [.relayFinal(terminated)])
        #expect(relay.timerCFired().isEmpty)
    }

    /// Timer C after the requester's own CANCEL sends no second one; a far side that never answers even then gets
    /// the requester its 487, and one Timer C cancelled a 408, neither ending the call.
    @Test func timerCSendsOneCANCELAndItsTimeoutKeepsTheCall() {
        var cancelled = RelayedReinvite(offer: offer, timers: timers)
        _ = cancelled.farResponse(far(180))
        _ = cancelled.requesterCancelled()
        #expect(cancelled.timerCFired().isEmpty)
        #expect(cancelled.farTimedOut() == [.respond(status: 487)])

        var expired = RelayedReinvite(offer: offer, timers: timers)
        _ = expired.farResponse(far(180))
        #expect(expired.timerCFired() == [.cancelFar])
        #expect(expired.farTimedOut() == [.respond(status: 408)])
    }

    /// Timer C before any provisional counts as a 408 (§16.8): the far dialog is taken as gone.
    @Test func timerCWithoutAProvisionalIsA408() {
        var relay = RelayedReinvite(offer: offer, timers: SIPTimers(t1: .seconds(4), timerC: .seconds(181)))
        #expect(relay.timerCFired() == [.respond(status: 408), .farEndGone])
    }
}
