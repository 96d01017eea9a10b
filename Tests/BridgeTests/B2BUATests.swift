import BusSchema
import NIOCore
import SIPCore
import Testing
@testable import Bridge

/// The B2BUA's SIP behaviour on an embedded event loop, a fake bus and a fake wire: the clock moves only
/// when the test says, so retransmission schedules are checked to the millisecond without waiting.
@Suite struct B2BUATests {
    typealias Harness = SIPSideHarness

    @Test func the2xxToTheCallerIsRetransmittedUntilItsACK() throws {
        let harness = Harness()
        let (_, ok) = try harness.answeredCall()
        let toTag = try #require(ok.to?.tag)
        // RFC 3261 §13.3.1.4: again after T1, then 2·T1 later.
        harness.advance(by: .milliseconds(499))
        #expect(harness.wire.take().isEmpty)
        harness.advance(by: .milliseconds(1))
        #expect(harness.wire.take().compactMap(\.response).map(\.status) == [200])
        harness.advance(by: .milliseconds(1000))
        let again = harness.wire.take().compactMap(\.response)
        #expect(again.map(\.status) == [200])
        #expect(again.first?.to?.tag == toTag)

        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        harness.advance(by: .seconds(40))
        #expect(harness.wire.take().compactMap(\.response).isEmpty)
        #expect(harness.bus.types.last == "call.connected")
    }

    /// RFC 3261 §13.3.1.4: the caller learns what it may send in the dialog and the extensions the bridge does.
    @Test func the2xxToTheCallerNamesAllowAndSupported() throws {
        let (_, ok) = try Harness().answeredCall()
        #expect(ok.headers.values("Allow") == ["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE", "UPDATE", "INFO", "PRACK", "REFER"])
        #expect(ok.headers.values("Supported") == ["100rel", "timer"])
    }

    /// RFC 3261 §15: the callee hangs up before the caller ACKed our 2xx; the caller's BYE waits for that
    /// ACK (the 2xx goes on meanwhile), even though the call has ended.
    @Test func aBYEToTheCallerWaitsForItsACK() throws {
        let harness = Harness()
        let (invite, ok) = try harness.answeredCall()
        let toTag = try #require(ok.to?.tag)
        harness.receive(.request(Harness.calleeRequest(.bye, in: invite, cseq: 2, branch: "z9hG4bKbobbye")), from: Harness.callee)
        #expect(harness.wire.take().compactMap(\.request).isEmpty, "no BYE to the caller before its ACK")
        #expect(harness.bus.types.last == "call.ended")
        harness.advance(by: .milliseconds(500))
        #expect(harness.wire.take().compactMap(\.response).map(\.status) == [200], "the 2xx goes on")
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        let byes = harness.wire.take().compactMap(\.request).filter { $0.method == .bye }
        #expect(byes.count == 1)
        #expect(byes.first?.to?.tag == "alice1")
        harness.advance(by: .seconds(40))
        #expect(harness.wire.take().compactMap(\.response).isEmpty, "no 2xx after the ACK")
    }

    /// No ACK ever: the BYE follows the 2xx's give-up, 64·T1 after it.
    @Test func aBYEWaitingForAnACKThatNeverComesGoesAtTheGiveUp() throws {
        let harness = Harness()
        let (invite, _) = try harness.answeredCall()
        harness.receive(.request(Harness.calleeRequest(.bye, in: invite, cseq: 2, branch: "z9hG4bKbobbye")), from: Harness.callee)
        harness.wire.take()
        harness.advance(by: .milliseconds(31_600))
        #expect(!harness.wire.take().compactMap(\.request).contains { $0.method == .bye })
        harness.advance(by: .seconds(4))
        #expect(harness.wire.take().compactMap(\.request).filter { $0.method == .bye }.count == 1)
    }

    @Test func noACKBy64T1EndsTheCallWithBYE() throws {
        let harness = Harness()
        let (invite, _) = try harness.answeredCall()
        // Sent at 0.5, 1.5, 3.5, 7.5 s and every 4 s after up to 31.5 s: 10 retransmissions.
        harness.advance(by: .milliseconds(31_600))
        #expect(harness.wire.take().compactMap(\.response).filter { $0.status == 200 }.count == 10)
        harness.advance(by: .seconds(4))
        let sent = harness.wire.take()
        let byes = sent.compactMap(\.request).filter { $0.method == .bye }
        #expect(byes.contains { $0.callID == invite.callID })
        #expect(sent.compactMap(\.response).isEmpty)
        guard case .callEnded(let ended)? = harness.bus.events.last?.body else {
            Issue.record("no call.ended: \(harness.bus.types)")
            return
        }
        #expect(ended.cause == .failed)
    }

    @Test func aSecondForksAnswerIsACKedAndHungUp() throws {
        let harness = Harness()
        let (invite, _) = try harness.answeredCall()
        // The same INVITE answered again by another fork (another To tag), e.g. through a forking proxy.
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 200, toTag: "bob-fork2", sdp: Harness.answer)), from: Harness.callee)
        let requests = harness.wire.take().compactMap(\.request)
        #expect(requests.map(\.method) == [.ack, .bye])
        #expect(requests.allSatisfy { $0.to?.tag == "bob-fork2" && $0.callID == invite.callID })
        // The answered call goes on: nothing was sent in its dialog and it is still connected.
        #expect(harness.bus.types.last == "call.connected")
    }

    @Test func aRetransmittedTwoHundredOfTheAnsweredDialogGetsTheSameACKAgain() throws {
        let harness = Harness()
        let (invite, _) = try harness.answeredCall()
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 200, sdp: Harness.answer)), from: Harness.callee)
        let requests = harness.wire.take().compactMap(\.request)
        #expect(requests.map(\.method) == [.ack])
        #expect(requests.first?.to?.tag == "bob1")
    }

    /// RFC 7332 §3: a B2BUA's leg carries the caller's Max-Forwards less one, so a loop back into the
    /// bridge runs out of hops instead of growing until the call limit.
    @Test func aBLegsMaxForwardsIsOneLessThanTheCallers() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee(maxForwards: 5)
        #expect(invite.maxForwards == 4)
    }

    @Test func anINVITEWithNoHopLeftGets483AndNoDecision() throws {
        let harness = Harness()
        harness.receive(.request(harness.callerInvite(maxForwards: 0)), from: Harness.caller)
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.response).map(\.status) == [483])
        #expect(sent.compactMap(\.request).isEmpty)
        #expect(harness.bus.types.isEmpty)
    }

    @Test func aCANCELWaitsForTheCalleesFirstProvisional() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee()
        let callerInvite = harness.callerInvite()
        harness.receive(.request(SIPRequest(cancelling: callerInvite)), from: Harness.caller)
        let answers = harness.wire.take()
        // RFC 3261 §9.2: 200 for the CANCEL, 487 for the INVITE; §9.1: no CANCEL to B before a provisional.
        #expect(answers.compactMap(\.response).map(\.status) == [200, 487])
        #expect(answers.compactMap(\.request).isEmpty)
        #expect(harness.bus.types.contains("call.ended"))

        harness.receive(.response(Harness.calleeResponse(to: invite, status: 180)), from: Harness.callee)
        let cancels = harness.wire.take().compactMap(\.request)
        #expect(cancels.map(\.method) == [.cancel])
        #expect(cancels.first?.topVia?.branch == invite.topVia?.branch)
    }

    @Test func aRingTimeoutCANCELAlsoWaitsForAProvisional() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee(ringTimeoutMs: 1000)
        harness.wire.take()
        harness.advance(by: .milliseconds(1000))
        #expect(harness.wire.take().compactMap(\.request).filter { $0.method == .cancel }.isEmpty)
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 183)), from: Harness.callee)
        #expect(harness.wire.take().compactMap(\.request).map(\.method).contains(.cancel))
    }

    @Test func aReINVITECrossingOneOfOursGets491() throws {
        let harness = Harness()
        let (invite, ok) = try harness.answeredCall()
        let toTag = try #require(ok.to?.tag)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        harness.wire.take()
        let callId = try #require(harness.bus.events.last?.callId)

        // Hold A: the bridge re-INVITEs the caller, and that re-INVITE is unanswered ...
        harness.side.command(CommandRequest(requestId: "r1", command: .hold(callId: callId, leg: .a)), envelope: [])
        #expect(harness.bus.replies.map(\.outcome) == [.done(callId: callId)])
        #expect(harness.wire.take().compactMap(\.request).map(\.method) == [.invite])
        // ... when B re-INVITEs towards A: RFC 3261 §14.2 glare, 491 and nothing relayed.
        let reinvite = Harness.calleeRequest(.invite, in: invite, cseq: 2, branch: "z9hG4bKbre1", body: Harness.answer)
        harness.receive(.request(reinvite), from: Harness.callee)
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.response).map(\.status) == [491])
        #expect(sent.compactMap(\.request).isEmpty)
    }

    @Test func aReINVITEInTheCallIsRelayedAndItsAnswerBroughtBack() throws {
        let harness = Harness()
        let (invite, ok) = try harness.answeredCall()
        let toTag = try #require(ok.to?.tag)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        harness.wire.take()
        let reinvite = Harness.calleeRequest(.invite, in: invite, cseq: 2, branch: "z9hG4bKbre2", body: Harness.answer)
        harness.receive(.request(reinvite), from: Harness.callee)
        let relayed = try #require(harness.wire.take().compactMap(\.request).first)
        #expect(relayed.method == .invite)
        #expect(relayed.callID == "caller-call-1")
        #expect(relayed.body == Array(Harness.answer.utf8))
    }

    /// RFC 7332 §3: a relayed in-dialog request carries the requester's Max-Forwards less one; at 0 it is a loop's
    /// end, 483, and nothing is relayed.
    @Test func aRelayedRequestCarriesTheRequestersMaxForwardsLessOneAndAtZeroGets483() throws {
        let harness = Harness()
        let (_, toTag) = try connectedCall(harness)
        var reinvite = harness.callerRequest(.invite, cseq: 2, toTag: toTag, branch: "z9hG4bKmf7", body: Harness.offer)
        reinvite.headers.set("Max-Forwards", "7")
        harness.receive(.request(reinvite), from: Harness.caller)
        let relayed = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(relayed.maxForwards == 6)
        harness.receive(.response(SIPResponse(replyingTo: relayed, status: 200, toTag: relayed.to?.tag)), from: Harness.callee)
        harness.wire.take()
        var info = harness.callerRequest(.info, cseq: 3, toTag: toTag, branch: "z9hG4bKmf0")
        info.headers.set("Max-Forwards", "0")
        harness.receive(.request(info), from: Harness.caller)
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.response).map(\.status) == [483])
        #expect(sent.compactMap(\.request).isEmpty, "nothing relayed")
    }

    /// The bridge resolves no names (RFC 3263 is the proxy's): a callee whose Contact names a host gets its BYE
    /// through the outbound proxy, which reads the same Request-URI.
    @Test func aHostnameInTheCalleesContactSendsItsRequestsToTheOutboundProxy() throws {
        var configuration = BridgeFixture.configuration()
        let proxy = try SocketAddress(ipAddress: "127.0.0.9", port: 5060)
        configuration.outboundProxy = proxy
        let harness = Harness(configuration: configuration)
        let invite = try harness.bridgeToCallee()
        var ok = Harness.calleeResponse(to: invite, status: 200, sdp: Harness.answer)
        ok.headers.set("Contact", "<sip:bob@phone.example.com:5070>")
        harness.receive(.response(ok), from: Harness.callee)
        let toTag = try #require(harness.wire.take().compactMap(\.response).first { $0.status == 200 }?.to?.tag)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        harness.receive(.request(harness.callerRequest(.bye, cseq: 2, toTag: toTag, branch: "z9hG4bKbye1")), from: Harness.caller)
        let bye = try #require(harness.wire.take().first { $0.request?.method == .bye })
        #expect(bye.destination == proxy)
        #expect(bye.request?.uri.description == "sip:bob@phone.example.com:5070")
    }

    /// What reaches the bridge came through its trusted proxy, which keeps a phone's claims out (openser-cfg
    /// route[IDENTITY]): P-Asserted-Identity, Privacy and Diversion go on to the B leg.
    @Test func theCallersAssertedIdentityPrivacyAndDiversionGoToTheBLeg() throws {
        let identity = [("P-Asserted-Identity", "<sip:alice@example.com>"), ("Privacy", "id"),
                        ("Diversion", "<sip:9999@example.com>;reason=unconditional")]
        let invite = try Harness().bridgeToCallee(callerHeaders: identity)
        #expect(invite.headers.values("P-Asserted-Identity") == ["<sip:alice@example.com>"])
        #expect(invite.headers.values("Privacy") == ["id"])
        #expect(invite.headers.values("Diversion") == ["<sip:9999@example.com>;reason=unconditional"])
    }

    /// A caller id the worker chose is what the B leg's From and P-Asserted-Identity both say (RFC 3325).
    @Test func aChosenCallerIdIsTheAssertedIdentity() throws {
        let harness = Harness()
        harness.receive(.request(harness.callerInvite(headers: [("P-Asserted-Identity", "<sip:alice@example.com>"), ("Privacy", "id")])),
                        from: Harness.caller)
        let route = BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@127.0.0.2:5070")],
                                callerId: CallerID(uri: "sip:+15551230000@example.com", displayName: "Acme"))
        harness.resolveAll(.decided(.bridge(route), workerId: "w1"))
        let invite = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(invite.headers.values("P-Asserted-Identity") == ["\"Acme\" <sip:+15551230000@example.com>"])
        #expect(invite.headers.values("Privacy") == ["id"])
    }

    /// RFC 3326: a carrier's cause in the BYE that ends the call reaches the other party in the bridge's BYE.
    @Test func theReasonOfABYEGoesOnInTheBYEToTheOtherLeg() throws {
        let harness = Harness()
        let (_, toTag) = try connectedCall(harness)
        var bye = harness.callerRequest(.bye, cseq: 2, toTag: toTag, branch: "z9hG4bKbyer")
        bye.headers.add("Reason", "Q.850;cause=16;text=\"Normal call clearing\"")
        harness.receive(.request(bye), from: Harness.caller)
        let relayed = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .bye })
        #expect(relayed.headers.values("Reason") == ["Q.850;cause=16;text=\"Normal call clearing\""])
    }

    /// A connected call whose caller ACKed: returns the bridge's INVITE to the callee and its To tag to the caller.
    func connectedCall(_ harness: Harness) throws -> (calleeInvite: SIPRequest, toTag: String) {
        let (invite, ok) = try harness.answeredCall()
        let toTag = try #require(ok.to?.tag)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        harness.wire.take()
        return (invite, toTag)
    }

    /// The caller re-INVITEs and CANCELs it: returns its re-INVITE, the bridge's relayed one to B and the CANCEL
    /// that went on to B once B sent its provisional (RFC 3261 §9.1), checking what came before it.
    func cancelledReINVITE(_ harness: Harness, toTag: String) throws -> (reinvite: SIPRequest, relayed: SIPRequest, cancel: SIPRequest) {
        let reinvite = harness.callerRequest(.invite, cseq: 2, toTag: toTag, branch: "z9hG4bKre1", body: Harness.offer)
        harness.receive(.request(reinvite), from: Harness.caller)
        let sent = harness.wire.take()
        // §17.2.1: 100 Trying at once, without which the caller's proxy would hold the CANCEL (§16.10).
        #expect(sent.compactMap(\.response).map(\.status) == [100])
        let relayed = try #require(sent.compactMap(\.request).first { $0.method == .invite })
        harness.receive(.request(SIPRequest(cancelling: reinvite)), from: Harness.caller)
        let beforeProvisional = harness.wire.take()
        // §9.2: the CANCEL is answered 200; the re-INVITE waits for B's final answer, and B gets no CANCEL yet.
        #expect(beforeProvisional.compactMap(\.response).map(\.status) == [200])
        #expect(beforeProvisional.compactMap(\.request).isEmpty)
        harness.receive(.response(SIPResponse(replyingTo: relayed, status: 100)), from: Harness.callee)
        let cancel = try #require(harness.wire.take().compactMap(\.request).first)
        #expect(cancel.method == .cancel)
        #expect(cancel.topVia?.branch == relayed.topVia?.branch)
        harness.receive(.response(SIPResponse(replyingTo: cancel, status: 200)), from: Harness.callee)
        return (reinvite, relayed, cancel)
    }

    /// Issue 12: the CANCEL of a relayed re-INVITE reaches the far leg, whose 487 the caller gets; the call stays
    /// up, where it used to be BYEd on both legs 64·T1 later for want of an ACK to a 2xx nobody could take.
    @Test func aCANCELledReINVITEIsCancelledOnTheFarLegAndTheCallStaysUp() throws {
        let harness = Harness()
        let (_, toTag) = try connectedCall(harness)
        let (_, relayed, _) = try cancelledReINVITE(harness, toTag: toTag)
        harness.receive(.response(SIPResponse(replyingTo: relayed, status: 487)), from: Harness.callee)
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.response).map(\.status) == [487])
        #expect(sent.compactMap(\.request).map(\.method) == [.ack])
        harness.advance(by: .seconds(40))
        #expect(!harness.wire.take().compactMap(\.request).contains { $0.method == .bye })
        #expect(harness.bus.types.last == "call.connected")
    }

    /// The far 2xx crossed the CANCEL: the caller gets it, and its ACK is followed by the bridge's to B; both ends
    /// keep the new session and the call stays up.
    @Test func aTwoHundredThatCrossesTheCANCELReachesTheCallerAndBIsACKed() throws {
        let harness = Harness()
        let (invite, toTag) = try connectedCall(harness)
        let (_, relayed, _) = try cancelledReINVITE(harness, toTag: toTag)
        harness.receive(.response(Harness.calleeResponse(to: relayed, status: 200, sdp: Harness.answer)), from: Harness.callee)
        let sent = harness.wire.take()
        let ok = try #require(sent.compactMap(\.response).first)
        #expect(ok.status == 200 && ok.body == Array(Harness.answer.utf8) && ok.cseq?.sequence == 2)
        let acks = sent.compactMap(\.request)
        #expect(acks.map(\.method) == [.ack])
        #expect(acks.first?.callID == invite.callID && acks.first?.cseq?.sequence == relayed.cseq?.sequence)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 2, toTag: toTag, branch: "z9hG4bKack2")), from: Harness.caller)
        harness.advance(by: .seconds(40))
        let later = harness.wire.take()
        #expect(later.compactMap(\.response).isEmpty)
        #expect(later.compactMap(\.request).isEmpty)
        #expect(harness.bus.types.last == "call.connected")
    }

    /// Issue 12, RFC 3261 §14.1 delayed offer: a re-INVITE without SDP gets B's offer in its 200, and the caller's
    /// answer in its ACK goes to B in B's ACK (it used to be ACKed at once with no body, the answer dropped).
    @Test func anOfferlessReINVITEsAnswerGoesToTheFarLegInItsACK() throws {
        let harness = Harness()
        let (invite, toTag) = try connectedCall(harness)
        harness.receive(.request(harness.callerRequest(.invite, cseq: 2, toTag: toTag, branch: "z9hG4bKre3")), from: Harness.caller)
        let relayed = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(relayed.body.isEmpty)
        harness.receive(.response(Harness.calleeResponse(to: relayed, status: 200, sdp: Harness.answer)), from: Harness.callee)
        var sent = harness.wire.take()
        #expect(sent.compactMap(\.response).map(\.body) == [Array(Harness.answer.utf8)])
        #expect(sent.compactMap(\.request).isEmpty)
        // B retransmits its 200: its ACK still waits for the caller's answer.
        harness.receive(.response(Harness.calleeResponse(to: relayed, status: 200, sdp: Harness.answer)), from: Harness.callee)
        #expect(harness.wire.take().compactMap(\.request).isEmpty)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 2, toTag: toTag, branch: "z9hG4bKack3", body: Harness.offer)), from: Harness.caller)
        sent = harness.wire.take()
        let ack = try #require(sent.compactMap(\.request).first)
        #expect(ack.method == .ack && ack.callID == invite.callID && ack.cseq?.sequence == relayed.cseq?.sequence)
        #expect(ack.body == Array(Harness.offer.utf8))
        #expect(ack.contentType == "application/sdp")
    }

    /// Issue 12, RFC 3261 §12.2.1.2: B answers a relayed re-INVITE from a new Contact; the ACK and the BYE that
    /// follow go there (they used to go to the Contact of B's first 200).
    @Test func aNewContactInTheFarTwoHundredIsWhereTheACKAndLaterRequestsGo() throws {
        let harness = Harness()
        let (_, toTag) = try connectedCall(harness)
        harness.receive(.request(harness.callerRequest(.invite, cseq: 2, toTag: toTag, branch: "z9hG4bKre4", body: Harness.offer)), from: Harness.caller)
        let relayed = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        var ok = Harness.calleeResponse(to: relayed, status: 200, sdp: Harness.answer)
        ok.headers.set("Contact", "<sip:bob-moved@127.0.0.3:5072>")
        harness.receive(.response(ok), from: Harness.callee)
        let moved = try SocketAddress(ipAddress: "127.0.0.3", port: 5072)
        let ack = try #require(harness.wire.take().first { $0.request?.method == .ack })
        #expect(ack.destination == moved)
        #expect(ack.request?.uri.description == "sip:bob-moved@127.0.0.3:5072")
        harness.receive(.request(harness.callerRequest(.ack, cseq: 2, toTag: toTag, branch: "z9hG4bKack4")), from: Harness.caller)
        harness.receive(.request(harness.callerRequest(.bye, cseq: 3, toTag: toTag, branch: "z9hG4bKbye4")), from: Harness.caller)
        let bye = try #require(harness.wire.take().first { $0.request?.method == .bye })
        #expect(bye.destination == moved)
        #expect(bye.request?.uri.description == "sip:bob-moved@127.0.0.3:5072")
    }

    /// RFC 3261 §12.2.2: a re-INVITE whose Contact is new moves its sender's remote target; the bridge's BYE to
    /// that leg goes there.
    @Test func aNewContactInAReINVITEIsWhereTheBYEGoes() throws {
        let harness = Harness()
        let (invite, toTag) = try connectedCall(harness)
        var reinvite = Harness.calleeRequest(.invite, in: invite, cseq: 2, branch: "z9hG4bKbre5", body: Harness.answer)
        reinvite.headers.add("Contact", "<sip:bob-moved@127.0.0.3:5072>")
        harness.receive(.request(reinvite), from: Harness.callee)
        let relayed = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        harness.receive(.response(SIPResponse(replyingTo: relayed, status: 200, toTag: relayed.to?.tag)), from: Harness.caller)
        harness.wire.take()
        harness.receive(.request(harness.callerRequest(.bye, cseq: 2, toTag: toTag, branch: "z9hG4bKbye5")), from: Harness.caller)
        let bye = try #require(harness.wire.take().first { $0.request?.method == .bye })
        #expect(bye.destination == (try SocketAddress(ipAddress: "127.0.0.3", port: 5072)))
        #expect(bye.request?.uri.description == "sip:bob-moved@127.0.0.3:5072")
    }

    /// Issue 12, Timer C (RFC 3261 §16.6 item 11): B rings on a relayed re-INVITE and never answers; after Timer C
    /// the bridge CANCELs it, the caller gets B's 487, and the call stays up.
    @Test func timerCCancelsARelayedReINVITEThatNeverGetsAFinalAnswer() throws {
        let harness = Harness()
        let (_, toTag) = try connectedCall(harness)
        harness.receive(.request(harness.callerRequest(.invite, cseq: 2, toTag: toTag, branch: "z9hG4bKre6", body: Harness.offer)), from: Harness.caller)
        let relayed = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        harness.receive(.response(Harness.calleeResponse(to: relayed, status: 180)), from: Harness.callee)
        harness.advance(by: .seconds(180))
        #expect(harness.wire.take().compactMap(\.request).isEmpty)
        harness.advance(by: .seconds(1))
        let cancel = try #require(harness.wire.take().compactMap(\.request).first)
        #expect(cancel.method == .cancel && cancel.topVia?.branch == relayed.topVia?.branch)
        harness.receive(.response(SIPResponse(replyingTo: cancel, status: 200)), from: Harness.callee)
        harness.receive(.response(SIPResponse(replyingTo: relayed, status: 487)), from: Harness.callee)
        #expect(harness.wire.take().compactMap(\.response).map(\.status) == [487])
        #expect(harness.bus.types.last == "call.connected")
    }

    /// Timer C for the bridge's own re-INVITE: a hold the caller's phone rings on for ever is CANCELled, and the
    /// call goes on un-held.
    @Test func timerCCancelsAHoldReINVITEThatNeverGetsAFinalAnswer() throws {
        let harness = Harness()
        let (_, _) = try connectedCall(harness)
        let callId = try #require(harness.bus.events.last?.callId)
        harness.side.command(CommandRequest(requestId: "r1", command: .hold(callId: callId, leg: .a)), envelope: [])
        let hold = try #require(harness.wire.take().compactMap(\.request).first)
        #expect(hold.method == .invite)
        harness.receive(.response(SIPResponse(replyingTo: hold, status: 180)), from: Harness.caller)
        harness.advance(by: .seconds(181))
        let cancel = try #require(harness.wire.take().compactMap(\.request).first)
        #expect(cancel.method == .cancel && cancel.topVia?.branch == hold.topVia?.branch)
        harness.receive(.response(SIPResponse(replyingTo: hold, status: 487)), from: Harness.caller)
        #expect(harness.bus.types.last == "call.connected")
    }

    /// A hold command on `leg` whose re-INVITE the phone answers 491 (ACKed by the transaction): returns it.
    func holdMeeting491(_ harness: Harness, leg: Leg, phone: SocketAddress) throws -> SIPRequest {
        let callId = try #require(harness.bus.events.last?.callId)
        harness.side.command(CommandRequest(requestId: "r1", command: .hold(callId: callId, leg: leg)), envelope: [])
        let hold = try #require(harness.wire.take().compactMap(\.request).first)
        #expect(hold.method == .invite)
        harness.receive(.response(SIPResponse(replyingTo: hold, status: 491)), from: phone)
        #expect(harness.wire.take().compactMap(\.request).map(\.method) == [.ack])
        return hold
    }

    /// Issue 12, RFC 3261 §14.1: the hold re-INVITE to the caller meets 491; the bridge, which did not make the
    /// caller's Call-ID, sends it again within 0-2 s with the next CSeq, instead of giving the hold up.
    @Test func aHoldReINVITEThatMeets491IsSentAgainAfterTheBackOff() throws {
        let harness = Harness()
        _ = try connectedCall(harness)
        let hold = try holdMeeting491(harness, leg: .a, phone: Harness.caller)
        harness.advance(by: .milliseconds(2001))
        let again = try #require(harness.wire.take().compactMap(\.request).first)
        #expect(again.method == .invite && again.body == hold.body)
        #expect(again.cseq?.sequence == (hold.cseq?.sequence ?? 0) + 1)
        harness.receive(.response(Harness.calleeResponse(to: again, status: 200, sdp: Harness.answer)), from: Harness.caller)
        #expect(harness.bus.types.last == "call.held")
    }

    /// The same on B, whose Call-ID the bridge made: the back-off is 2.1-4 s (RFC 3261 §14.1).
    @Test func aHoldReINVITEToALegTheBridgeCalledWaitsTwoPointOneToFourSeconds() throws {
        let harness = Harness()
        let (invite, _) = try connectedCall(harness)
        let hold = try holdMeeting491(harness, leg: .b, phone: Harness.callee)
        #expect(hold.callID == invite.callID)
        harness.advance(by: .milliseconds(2099))
        #expect(harness.wire.take().compactMap(\.request).isEmpty)
        harness.advance(by: .milliseconds(1901))
        // The retry, and perhaps its Timer A retransmission: one new transaction with the next CSeq.
        let again = harness.wire.take().compactMap(\.request)
        #expect(!again.isEmpty && again.allSatisfy { $0.method == .invite && $0.cseq?.sequence == (hold.cseq?.sequence ?? 0) + 1 })
        #expect(Set(again.compactMap(\.topVia?.branch)).count == 1)
    }

    /// RFC 6086 INFO (DTMF as `application/dtmf-relay`) in a call: relayed to the other leg with its body
    /// and type, and the other leg's answer brought back, instead of 415.
    @Test func anINFOWithDTMFIsRelayedWithItsBody() throws {
        let harness = Harness()
        let (_, ok) = try harness.answeredCall()
        let toTag = try #require(ok.to?.tag)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        harness.wire.take()
        var info = harness.callerRequest(.info, cseq: 2, toTag: toTag, branch: "z9hG4bKinfo1")
        info.headers.add("Content-Type", "application/dtmf-relay")
        info.body = Array("Signal=5\r\nDuration=160\r\n".utf8)
        harness.receive(.request(info), from: Harness.caller)
        let sent = harness.wire.take()
        #expect(!sent.compactMap(\.response).contains { $0.status == 415 })
        let relayed = try #require(sent.compactMap(\.request).first { $0.method == .info })
        #expect(relayed.contentType == "application/dtmf-relay")
        #expect(relayed.body == info.body)
        harness.receive(.response(SIPResponse(replyingTo: relayed, status: 200, toTag: relayed.to?.tag)), from: Harness.callee)
        #expect(harness.wire.take().compactMap(\.response).map(\.status) == [200])
    }

    /// A connected call transferred (leg a kept) to carol: returns the bridge's INVITE to bob and to carol.
    static func transferredCall(_ harness: Harness) throws -> (bobInvite: SIPRequest, carolInvite: SIPRequest, toTag: String) {
        let (bobInvite, ok) = try harness.answeredCall()
        let toTag = try #require(ok.to?.tag)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        let callId = try #require(harness.bus.events.first?.callId)
        harness.wire.take()
        #expect(harness.side.b2bua.execute(.transfer(callId: callId, leg: .a, target: "sip:carol@127.0.0.2:5070")) == .done(callId: callId))
        let sent = harness.wire.take().compactMap(\.request)
        #expect(sent.map(\.method) == [.bye, .invite])
        return (bobInvite, try #require(sent.last), toTag)
    }

    /// RFC 3264 §8: the caller saw bob's session; after the transfer it gets carol's offer, and after a hold command
    /// its own answer held, each under bob's origin one version higher, never carol's or its own.
    @Test func theCallerKeepsSeeingOneSessionOriginAcrossTransferAndHold() throws {
        let harness = Harness()
        let (_, carolInvite, toTag) = try Self.transferredCall(harness)
        let carolOffer = "v=0\r\no=carol 900 4 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.3\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
        harness.receive(.response(Harness.calleeResponse(to: carolInvite, status: 200, toTag: "carol1", sdp: carolOffer)), from: Harness.callee)
        let join = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(String(decoding: join.body, as: UTF8.self) == carolOffer.replacingOccurrences(of: "o=carol 900 4", with: "o=b 1 2").replacingOccurrences(of: "192.0.2.3\r\ns", with: "192.0.2.2\r\ns"))
        var ok = SIPResponse(replyingTo: join, status: 200, toTag: toTag)
        ok.headers.add("Contact", "<sip:alice@127.0.0.1:5999>")
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = Array(Harness.offer.utf8)
        harness.receive(.response(ok), from: Harness.caller)
        let carolACK = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .ack && $0.callID == carolInvite.callID })
        #expect(carolACK.body == Array(Harness.offer.utf8), "carol's first SDP from the bridge goes as it came")
        let callId = try #require(harness.bus.events.first?.callId)
        #expect(harness.side.b2bua.execute(.hold(callId: callId, leg: .a)) == .done(callId: callId))
        let hold = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        let holdText = String(decoding: hold.body, as: UTF8.self)
        #expect(holdText.contains("o=b 1 3 IN IP4 192.0.2.2") && holdText.contains("a=sendonly"))
    }

    /// Found by bench/interop-mix: bob, released by the transfer, re-INVITEs before his BYE's answer; relayed,
    /// his SDP would turn the caller's media back to him. It belongs to no call now: 481.
    @Test func aRequestFromALegTheTransferReleasedGets481AndIsNotRelayed() throws {
        let harness = Harness()
        let (bobInvite, _, _) = try Self.transferredCall(harness)
        let reinvite = Harness.calleeRequest(.invite, in: bobInvite, cseq: 2, branch: "z9hG4bKbobre", body: Harness.answer)
        harness.receive(.request(reinvite), from: Harness.callee)
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.response).map(\.status) == [481])
        #expect(sent.compactMap(\.request).isEmpty, "nothing relayed")
    }

    /// Found by bench/interop-mix: an UPDATE or INFO while the transfer joins gets a 500 the sender may retry,
    /// with a Retry-After (RFC 3311 §5.2), not a bare 500.
    @Test func anINFOWhileTheTransferJoinsGets500WithRetryAfter() throws {
        let harness = Harness()
        let (_, _, toTag) = try Self.transferredCall(harness)
        var info = harness.callerRequest(.info, cseq: 2, toTag: toTag, branch: "z9hG4bKinfo1")
        info.headers.add("Content-Type", "application/dtmf-relay")
        info.body = Array("Signal=5\r\nDuration=160\r\n".utf8)
        harness.receive(.request(info), from: Harness.caller)
        let response = try #require(harness.wire.take().compactMap(\.response).first)
        #expect(response.status == 500)
        let retryAfter = try #require(response.headers["Retry-After"].flatMap { Int($0) })
        #expect((0...10).contains(retryAfter))
    }

    /// A SIP-I trunk's INVITE: SDP beside an ISUP IAM (`multipart/mixed`, RFC 3204).
    static func sipIInvite(_ harness: Harness, isupHandling: String = "optional", closing: Bool = true) -> SIPRequest {
        var invite = harness.callerInvite()
        invite.headers.set("Content-Type", "multipart/mixed;boundary=unique-boundary-1")
        invite.body = Array(("--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\n\(Harness.offer)\r\n"
            + "--unique-boundary-1\r\nContent-Type: application/ISUP;version=itu-t92+\r\n"
            + "Content-Disposition: signal;handling=\(isupHandling)\r\n\r\n\u{01}\u{00}\u{49}\u{00}\r\n"
            + (closing ? "--unique-boundary-1--\r\n" : "")).utf8)
        return invite
    }

    /// The bridge offers the SDP part alone (to workers and to the callee) and drops the optional ISUP part,
    /// as an SBC between a SIP-I trunk and SIP phones does.
    @Test func aSIPIInviteIsOfferedWithItsSDPAlone() throws {
        let harness = Harness()
        harness.receive(.request(Self.sipIInvite(harness)), from: Harness.caller)
        #expect(harness.bus.decisionRequests.first?.offer.sdp?.media.map(\.port) == [4000])
        let route = BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@127.0.0.2:5070")], mode: .serial)
        harness.resolveAll(.decided(.bridge(route), workerId: "w1"))
        let invite = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(invite.contentType == "application/sdp")
        #expect(invite.body == Array(Harness.offer.utf8))
    }

    @Test func aSIPIInviteWhoseISUPIsRequiredGets415() throws {
        let harness = Harness()
        harness.receive(.request(Self.sipIInvite(harness, isupHandling: "required")), from: Harness.caller)
        let response = try #require(harness.wire.take().compactMap(\.response).first { $0.status >= 200 })
        #expect(response.status == 415)
        #expect(response.headers.values("Accept") == ["application/sdp", "multipart/mixed"])
        #expect(harness.bus.decisionRequests.isEmpty)
    }

    @Test func aMultipartInviteWithoutItsClosingBoundaryGets400NamingIt() throws {
        let harness = Harness()
        harness.receive(.request(Self.sipIInvite(harness, closing: false)), from: Harness.caller)
        let response = try #require(harness.wire.take().compactMap(\.response).first { $0.status >= 200 })
        #expect(response.status == 400)
        #expect(response.reason == "Bad Body (multipart body without its closing boundary)")
        #expect(harness.bus.decisionRequests.isEmpty)
    }

    /// A SIP-I callee answers with SDP and an ISUP ANM: the caller gets the SDP as application/sdp.
    @Test func aSIPICalleesMultipartAnswerReachesTheCallerAsSDP() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee()
        var ok = Harness.calleeResponse(to: invite, status: 200)
        ok.headers.add("Content-Type", "multipart/mixed; boundary=\"b1\"")
        ok.body = Array("--b1\r\nContent-Type: application/sdp\r\n\r\n\(Harness.answer)\r\n--b1\r\nContent-Type: application/ISUP\r\n\r\n\u{09}\u{00}\r\n--b1--\r\n".utf8)
        harness.receive(.response(ok), from: Harness.callee)
        let callerOK = try #require(harness.wire.take().compactMap(\.response).first { $0.status == 200 })
        #expect(callerOK.contentType == "application/sdp")
        #expect(callerOK.body == Array(Harness.answer.utf8))
    }

    /// A SIP-I trunk's BYE carries an ISUP REL in multipart/mixed: it still ends the call (RFC 3261 §15.1.1).
    @Test func aBYEWithAMultipartBodyEndsTheCall() throws {
        let harness = Harness()
        let (_, ok) = try harness.answeredCall()
        let toTag = try #require(ok.to?.tag)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        harness.wire.take()
        var bye = harness.callerRequest(.bye, cseq: 2, toTag: toTag, branch: "z9hG4bKbye1")
        bye.headers.add("Content-Type", "multipart/mixed;boundary=unique-boundary-1")
        bye.body = Array("--unique-boundary-1\r\nContent-Type: application/ISUP;version=itu-t92+\r\n\r\n\u{0C}\u{02}\u{00}\u{02}\u{80}\u{90}\r\n--unique-boundary-1--\r\n".utf8)
        harness.receive(.request(bye), from: Harness.caller)
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.response).map(\.status) == [200])
        #expect(sent.compactMap(\.request).map(\.method) == [.bye])
        guard case .callEnded? = harness.bus.events.last?.body else {
            Issue.record("no call.ended: \(harness.bus.types)")
            return
        }
    }

    /// RFC 5057: the far end answers a relayed request 481 (its dialog is gone): the requester gets the 481
    /// and the call ends with BYE to it, instead of staying half up.
    @Test func a481FromTheFarEndEndsTheCall() throws {
        let harness = Harness()
        let (_, ok) = try harness.answeredCall()
        let toTag = try #require(ok.to?.tag)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        harness.wire.take()
        var info = harness.callerRequest(.info, cseq: 2, toTag: toTag, branch: "z9hG4bKinfo2")
        info.headers.add("Content-Type", "application/dtmf-relay")
        info.body = Array("Signal=1\r\nDuration=100\r\n".utf8)
        harness.receive(.request(info), from: Harness.caller)
        let relayed = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .info })
        harness.receive(.response(SIPResponse(replyingTo: relayed, status: 481, toTag: relayed.to?.tag)), from: Harness.callee)
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.response).map(\.status) == [481])
        #expect(sent.compactMap(\.request).map(\.method) == [.bye])
        guard case .callEnded(let ended)? = harness.bus.events.last?.body else {
            Issue.record("no call.ended: \(harness.bus.types)")
            return
        }
        #expect(ended.cause == .failed)
    }

    // MARK: - Session timers (RFC 4028), per leg

    /// A connected call whose caller sent `callerHeaders` and whose callee answered with `calleeHeaders`: returns
    /// the bridge's INVITE to the callee, its 200 to the caller and the caller's To tag.
    func timedCall(_ harness: Harness, caller callerHeaders: [(String, String)], callee calleeHeaders: [(String, String)] = [])
        throws -> (calleeInvite: SIPRequest, callerOK: SIPResponse, toTag: String) {
        let (invite, ok) = try harness.answeredCall(callerHeaders: callerHeaders, calleeHeaders: calleeHeaders)
        let toTag = try #require(ok.to?.tag)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        harness.wire.take()
        return (invite, ok, toTag)
    }

    /// A caller without timer support asking 90 s: the bridge is its refresher, and as its Allow lists UPDATE it
    /// refreshes with an UPDATE without a body every 45 s, each 2xx starting the interval again.
    @Test func theBridgeRefreshesTheCallerByUPDATEAtHalfTheInterval() throws {
        let harness = Harness()
        let (_, ok, _) = try timedCall(harness, caller: [("Session-Expires", "90"), ("Allow", "INVITE, ACK, BYE, UPDATE")])
        #expect(ok.headers["Session-Expires"] == "90;refresher=uas")
        #expect(ok.headers.values("Supported").contains("timer"))
        #expect(!ok.headers.contains("Require"))
        for round in 1...2 {
            harness.advance(by: .milliseconds(44_999))
            #expect(harness.wire.take().compactMap(\.request).isEmpty, "round \(round)")
            harness.advance(by: .milliseconds(1))
            let update = try #require(harness.wire.take().compactMap(\.request).first)
            #expect(update.method == .update && update.body.isEmpty && update.callID == "caller-call-1")
            // The bridge is the UPDATE's UAC: it names itself so.
            #expect(update.headers["Session-Expires"] == "90;refresher=uac")
            var answer = SIPResponse(replyingTo: update, status: 200)
            answer.headers.add("Session-Expires", "90;refresher=uac")
            harness.receive(.response(answer), from: Harness.caller)
            #expect(harness.wire.take().isEmpty)
        }
        #expect(harness.bus.types.last == "call.connected")
    }

    /// Without UPDATE in the callee's Allow the bridge refreshes B by re-INVITE with the SDP B last got (the
    /// caller's offer, unchanged), ACKs its 2xx, and refreshes again an interval later.
    @Test func theBridgeRefreshesTheCalleeByReINVITEWithTheSDPItLastGot() throws {
        let harness = Harness()
        let (invite, _, _) = try timedCall(harness, caller: [], callee: [("Session-Expires", "120;refresher=uac")])
        #expect(invite.headers["Session-Expires"] == "1800" && invite.headers["Min-SE"] == "90")
        #expect(invite.headers.values("Supported").contains("timer"))
        harness.advance(by: .seconds(59))
        #expect(harness.wire.take().compactMap(\.request).isEmpty)
        harness.advance(by: .seconds(1))
        let reinvite = try #require(harness.wire.take().compactMap(\.request).first)
        #expect(reinvite.method == .invite && reinvite.callID == invite.callID && reinvite.cseq?.sequence == 2)
        #expect(reinvite.body == Array(Harness.offer.utf8))
        #expect(reinvite.headers["Session-Expires"] == "120;refresher=uac")
        harness.receive(.response(Harness.calleeResponse(to: reinvite, status: 200, sdp: Harness.answer,
                                                         headers: [("Session-Expires", "120;refresher=uac")])), from: Harness.callee)
        let acks = harness.wire.take().compactMap(\.request)
        #expect(acks.map(\.method) == [.ack] && acks.first?.cseq?.sequence == 2)
        harness.advance(by: .seconds(60))
        #expect(harness.wire.take().compactMap(\.request).map(\.method) == [.invite])
    }

    /// RFC 4028 §10 with RFC 3261 §14.1: the bridge's refresh UPDATE meets 491 (the caller's own request crossed
    /// it) and goes again within the caller-side back-off of 0-2 s, not half an interval later, past the session's end.
    @Test func aRefreshThatMeets491GoesAgainAfterTheBackOff() throws {
        let harness = Harness()
        _ = try timedCall(harness, caller: [("Session-Expires", "90"), ("Allow", "INVITE, ACK, BYE, UPDATE")])
        harness.advance(by: .seconds(45))
        let update = try #require(harness.wire.take().compactMap(\.request).first)
        harness.receive(.response(SIPResponse(replyingTo: update, status: 491)), from: Harness.caller)
        harness.advance(by: .seconds(2))
        // One new UPDATE (and its retransmissions, RFC 3261 §17.1.2.2).
        let again = harness.wire.take().compactMap(\.request)
        #expect(Set(again.map(\.method)) == [.update])
        #expect(Set(again.compactMap(\.cseq?.sequence)) == [(update.cseq?.sequence ?? 0) + 1])
    }

    /// A refresh the caller keeps refusing (500 with Retry-After 20) is tried again each 20 s while the session
    /// lasts; the one that would come too late is not sent: the call ends with the session, BYE to both legs.
    @Test func aRefreshRefusedUntilTheSessionEndsEndsTheCall() throws {
        let harness = Harness()
        _ = try timedCall(harness, caller: [("Session-Expires", "90"), ("Allow", "INVITE, ACK, BYE, UPDATE")])
        var tries: [SIPRequest] = []
        harness.advance(by: .seconds(45))
        for _ in 0..<3 {
            guard let update = harness.wire.take().compactMap(\.request).first(where: { $0.method == .update }) else { break }
            tries.append(update)
            var refusal = SIPResponse(replyingTo: update, status: 500)
            refusal.headers.add("Retry-After", "20")
            harness.receive(.response(refusal), from: Harness.caller)
            harness.advance(by: .seconds(20))
        }
        // At 45, 65 and 85 s; a fourth at 105 s would come after the session's end at 90 s, when the call ended.
        #expect(tries.count == 3)
        let byes = harness.wire.take().compactMap(\.request).filter { $0.method == .bye }
        #expect(Set(byes.compactMap(\.callID)).count == 2)
        #expect(harness.bus.types.last == "call.ended")
    }

    /// A callee's 422 to a relayed re-INVITE is about its own leg's interval, which the caller cannot meet: the
    /// caller gets 491 and sends again, and the relayed retry asks the callee's Min-SE.
    @Test func aCalleesFourTwentyTwoToARelayedReINVITEIsA491AndTheRetryAsksItsMinSE() throws {
        let harness = Harness()
        let (_, toTag) = try connectedCall(harness)
        let reinvite = harness.callerRequest(.invite, cseq: 2, toTag: toTag, branch: "z9hG4bKst1", body: Harness.offer)
        harness.receive(.request(reinvite), from: Harness.caller)
        let relayed = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        var tooSmall = SIPResponse(replyingTo: relayed, status: 422, toTag: relayed.to?.tag)
        tooSmall.headers.add("Min-SE", "1900")
        harness.receive(.response(tooSmall), from: Harness.callee)
        #expect(harness.wire.take().compactMap(\.response).map(\.status) == [491])
        let again = harness.callerRequest(.invite, cseq: 3, toTag: toTag, branch: "z9hG4bKst2", body: Harness.offer)
        harness.receive(.request(again), from: Harness.caller)
        let retried = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(retried.headers["Session-Expires"]?.hasPrefix("1900") == true)
    }

    /// The caller's INVITE listed no UPDATE, so the bridge refreshes it by re-INVITE; a later re-INVITE of the
    /// caller's whose Allow lists UPDATE (another phone took the call) makes the next refresh an UPDATE.
    @Test func anAllowInALaterReINVITEIsWhatTheNextRefreshGoesBy() throws {
        let harness = Harness()
        let (invite, _, toTag) = try timedCall(harness, caller: [("Session-Expires", "90"), ("Allow", "INVITE, ACK, BYE")])
        var reinvite = harness.callerRequest(.invite, cseq: 2, toTag: toTag, branch: "z9hG4bKal1", body: Harness.offer)
        reinvite.headers.add("Allow", "INVITE, ACK, BYE, UPDATE")
        reinvite.headers.add("Session-Expires", "90")
        harness.receive(.request(reinvite), from: Harness.caller)
        let relayed = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(relayed.callID == invite.callID)
        harness.receive(.response(Harness.calleeResponse(to: relayed, status: 200, sdp: Harness.answer)), from: Harness.callee)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 2, toTag: toTag, branch: "z9hG4bKal2")), from: Harness.caller)
        harness.wire.take()
        harness.advance(by: .seconds(45))
        let refresh = harness.wire.take().compactMap(\.request).filter { $0.callID == "caller-call-1" }
        #expect(Set(refresh.map(\.method)) == [.update])
    }

    /// An UPDATE the caller advertised but refuses (501) makes the bridge refresh by re-INVITE, with the SDP the
    /// caller last got (B's answer), from then on; a 422 to that is tried again at once with its Min-SE (§7.3).
    @Test func aRefusedRefreshUPDATEFallsBackToReINVITEAndA422IsRetried() throws {
        let harness = Harness()
        _ = try timedCall(harness, caller: [("Session-Expires", "90"), ("Allow", "INVITE, ACK, BYE, UPDATE")])
        harness.advance(by: .seconds(45))
        let update = try #require(harness.wire.take().compactMap(\.request).first)
        #expect(update.method == .update)
        harness.receive(.response(SIPResponse(replyingTo: update, status: 501)), from: Harness.caller)
        let reinvite = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(reinvite.body == Array(Harness.answer.utf8) && reinvite.callID == "caller-call-1")
        var tooSmall = SIPResponse(replyingTo: reinvite, status: 422)
        tooSmall.headers.add("Min-SE", "120")
        harness.receive(.response(tooSmall), from: Harness.caller)
        let retry = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(retry.headers["Session-Expires"] == "120;refresher=uac" && retry.headers["Min-SE"] == "120")
        #expect((retry.cseq?.sequence ?? 0) > (reinvite.cseq?.sequence ?? 0))
        var ok = SIPResponse(replyingTo: retry, status: 200)
        ok.headers.add("Contact", "<sip:alice@127.0.0.1:5999>")
        ok.headers.add("Session-Expires", "120;refresher=uac")
        harness.receive(.response(ok), from: Harness.caller)
        #expect(harness.wire.take().compactMap(\.request).map(\.method) == [.ack])
        harness.advance(by: .seconds(60))
        #expect(harness.wire.take().compactMap(\.request).map(\.method) == [.invite])
        #expect(harness.bus.types.last == "call.connected")
    }

    /// A caller that refreshes itself (Supported: timer) gets Require: timer; its relayed UPDATE refreshes its own leg
    /// and B's, and the 2xx it gets names its interval, not B's. When it then stops, the bridge ends the call at
    /// the expiry (RFC 4028 §10: a third of 90 s before its end) with BYE to both legs.
    @Test func aCallerThatStopsRefreshingEndsTheCallWithBYEToBothLegs() throws {
        let harness = Harness()
        let (invite, ok, toTag) = try timedCall(harness, caller: [("Supported", "timer"), ("Session-Expires", "90")],
                                                callee: [("Session-Expires", "1800;refresher=uas")])
        #expect(ok.headers["Session-Expires"] == "90;refresher=uac")
        #expect(ok.headers.values("Require").contains("timer"))

        harness.advance(by: .seconds(40))
        var update = harness.callerRequest(.update, cseq: 2, toTag: toTag, branch: "z9hG4bKup1")
        update.headers.add("Supported", "timer")
        update.headers.add("Session-Expires", "90;refresher=uac")
        harness.receive(.request(update), from: Harness.caller)
        let relayed = try #require(harness.wire.take().compactMap(\.request).first)
        #expect(relayed.method == .update && relayed.callID == invite.callID)
        // B's leg gets the bridge's own refresh headers, not the caller's.
        #expect(relayed.headers["Session-Expires"] == "1800;refresher=uas")
        harness.receive(.response(Harness.calleeResponse(to: relayed, status: 200, headers: [("Session-Expires", "1800;refresher=uas")])),
                        from: Harness.callee)
        let back = try #require(harness.wire.take().compactMap(\.response).first)
        #expect(back.status == 200)
        #expect(back.headers.values("Session-Expires") == ["90;refresher=uac"])
        #expect(back.headers.values("Require").contains("timer"))

        harness.advance(by: .seconds(59))
        #expect(!harness.wire.take().compactMap(\.request).contains { $0.method == .bye })
        harness.advance(by: .seconds(1))
        let byes = harness.wire.take().compactMap(\.request).filter { $0.method == .bye }
        #expect(Set(byes.compactMap(\.callID)) == ["caller-call-1", invite.callID])
        guard case .callEnded(let ended)? = harness.bus.events.last?.body else {
            Issue.record("no call.ended: \(harness.bus.types)")
            return
        }
        #expect(ended.cause == .sessionExpired && ended.by == .bridge)
    }

    /// RFC 4028 §9: a caller that supports timers and asks for less than Min-SE gets 422 with it, before a worker is
    /// asked or a B leg dialled.
    @Test func tooSmallAnIntervalFromTheCallerIs422BeforeAnyBLeg() throws {
        let harness = Harness()
        harness.receive(.request(harness.callerInvite(headers: [("Supported", "timer"), ("Session-Expires", "60")])), from: Harness.caller)
        let sent = harness.wire.take()
        let refusal = try #require(sent.compactMap(\.response).first { $0.status >= 200 })
        #expect(refusal.status == 422 && refusal.headers["Min-SE"] == "90")
        #expect(sent.compactMap(\.request).isEmpty)
        #expect(harness.bus.decisionRequests.isEmpty)
    }

    /// RFC 4028 §7.3: B's 422 gets one more INVITE (same Call-ID and From tag, CSeq one up) asking for its Min-SE;
    /// a second 422 is the leg's failure, not a loop.
    @Test func a422FromTheCalleeIsRetriedOnceWithItsMinSE() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee()
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 422, headers: [("Min-SE", "3600")])), from: Harness.callee)
        let retry = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(retry.callID == invite.callID && retry.from?.tag == invite.from?.tag && retry.cseq?.sequence == 2)
        #expect(retry.topVia?.branch != invite.topVia?.branch)
        #expect(retry.headers["Session-Expires"] == "3600" && retry.headers["Min-SE"] == "3600")
        #expect(retry.body == invite.body)

        harness.receive(.response(Harness.calleeResponse(to: retry, status: 422, headers: [("Min-SE", "7200")])), from: Harness.callee)
        #expect(!harness.wire.take().compactMap(\.request).contains { $0.method == .invite })
        #expect(harness.bus.types.contains("call.ended"))
    }
}
