import BusSchema
import NIOCore
import SIPCore
import Testing
@testable import Bridge

/// The caller's early dialogs (one per B early dialog, RFC 3261 §13.2.1) and reliable provisionals on both legs
/// (RFC 3262), on the embedded loop, fake bus and fake wire of `SIPSideHarness`.
@Suite struct B2BUAEarlyDialogTests {
    typealias Harness = SIPSideHarness

    static let carol = try! SocketAddress(ipAddress: "127.0.0.2", port: 5071)
    static let carolAnswer = "v=0\r\no=c 1 1 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.3\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"

    /// Serial LCR: bob plays a 183 announcement and fails with `status`, then carol is called. Returns the To tag
    /// of bob's early dialog to the caller and the bridge's INVITE to carol.
    func bobAnnouncesThenFails(_ harness: Harness, status: Int) throws -> (bobEarly: String, carolInvite: SIPRequest) {
        harness.receive(.request(harness.callerInvite()), from: Harness.caller)
        let route = BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@127.0.0.2:5070"), BridgeTarget(uri: "sip:carol@127.0.0.2:5071")],
                                mode: .serial)
        harness.resolveAll(.decided(.bridge(route), workerId: "w1"))
        let bobInvite = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        harness.receive(.response(Harness.calleeResponse(to: bobInvite, status: 183, sdp: Harness.answer)), from: Harness.callee)
        let bobEarly = try #require(callerResponses(harness).first { $0.status == 183 }?.to?.tag)
        harness.receive(.response(Harness.calleeResponse(to: bobInvite, status: status)), from: Harness.callee)
        let sent = harness.wire.take()
        #expect(!sent.contains { $0.response?.cseq?.method == .invite }, "bob's failure is not the call's end")
        let carolInvite = try #require(sent.compactMap(\.request).first { $0.method == .invite && $0.uri.description.contains("carol") })
        return (bobEarly, carolInvite)
    }

    func callerResponses(_ harness: Harness) -> [SIPResponse] {
        harness.wire.take().compactMap(\.response).filter { $0.cseq?.method == .invite }
    }

    /// The caller's CANCEL of its INVITE (RFC 3261 §9.1).
    func callerCancel(_ harness: Harness) -> SIPRequest {
        var cancel = SIPRequest(method: .cancel, uri: harness.callerInvite().uri)
        for name in ["Via", "Max-Forwards", "From", "To", "Call-ID"] { cancel.headers.add(name, harness.callerInvite().headers[name]!) }
        cancel.headers.add("CSeq", "1 CANCEL")
        return cancel
    }

    func prack(_ harness: Harness, toTag: String, rack: String, cseq: UInt32 = 2, branch: String = "z9hG4bKprack1") -> SIPRequest {
        var prack = harness.callerRequest(.prack, cseq: cseq, toTag: toTag, branch: branch)
        prack.headers.add("RAck", rack)
        return prack
    }

    // MARK: - One caller early dialog per B early dialog

    /// RFC 3261 §13.2.1, RFC 6337 §3.1: bob's 183 announcement and carol's 183 are two early dialogs to the caller,
    /// and carol's 200 comes in hers, so the caller takes carol's SDP and not bob's.
    @Test func eachBLegsEarlyDialogHasItsOwnToTagAndTheAnswerComesInTheAnsweringOne() throws {
        let harness = Harness()
        let (bobEarly, carolInvite) = try bobAnnouncesThenFails(harness, status: 503)
        harness.receive(.response(Harness.calleeResponse(to: carolInvite, status: 183, toTag: "carol1", sdp: Self.carolAnswer)), from: Self.carol)
        let carolEarly = try #require(callerResponses(harness).first { $0.status == 183 }?.to?.tag)
        #expect(carolEarly != bobEarly)
        harness.receive(.response(Harness.calleeResponse(to: carolInvite, status: 200, toTag: "carol1", sdp: Self.carolAnswer)), from: Self.carol)
        let ok = try #require(callerResponses(harness).first { $0.status == 200 })
        #expect(ok.to?.tag == carolEarly)
        #expect(ok.body == Array(Self.carolAnswer.utf8))

        // The caller's ACK and BYE name carol's tag and find the call.
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: carolEarly, branch: "z9hG4bKack1")), from: Harness.caller)
        harness.advance(by: .seconds(1))
        #expect(callerResponses(harness).isEmpty, "the ACK stopped the 200")
        harness.receive(.request(harness.callerRequest(.bye, cseq: 2, toTag: carolEarly, branch: "z9hG4bKbye1")), from: Harness.caller)
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.response).contains { $0.status == 200 && $0.cseq?.method == .bye })
        #expect(sent.compactMap(\.request).contains { $0.method == .bye && $0.callID == carolInvite.callID })
    }

    /// A B leg whose SDP the caller never saw answers in a dialog of its own: a fresh To tag, not bob's.
    @Test func anAnswerFromALegThatSentNoProvisionalGetsAFreshToTag() throws {
        let harness = Harness()
        let (bobEarly, carolInvite) = try bobAnnouncesThenFails(harness, status: 486)
        harness.receive(.response(Harness.calleeResponse(to: carolInvite, status: 200, toTag: "carol1", sdp: Self.carolAnswer)), from: Self.carol)
        let ok = try #require(callerResponses(harness).first { $0.status == 200 })
        let tag = try #require(ok.to?.tag)
        #expect(tag != bobEarly)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: tag, branch: "z9hG4bKack1")), from: Harness.caller)
        harness.advance(by: .seconds(1))
        #expect(callerResponses(harness).isEmpty, "the ACK with the fresh tag stopped the 200")
        #expect(harness.bus.types.contains("call.connected"))
    }

    /// The first early dialog has the tag of the INVITE transaction, so the 200 to a CANCEL and the 487 name the
    /// dialog the caller knows (RFC 3261 §9.2).
    @Test func theCANCELsAnswersNameTheFirstEarlyDialogsTag() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee()
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 183, sdp: Harness.answer)), from: Harness.callee)
        let early = try #require(callerResponses(harness).first?.to?.tag)
        harness.receive(.request(callerCancel(harness)), from: Harness.caller)
        let answers = harness.wire.take().compactMap(\.response)
        #expect(answers.first { $0.cseq?.method == .cancel }?.to?.tag == early)
        #expect(answers.first { $0.status == 487 }?.to?.tag == early)
    }

    // MARK: - Reliable provisionals to the caller (RFC 3262 §3)

    /// A caller requiring 100rel is no longer refused 420: B's 183 reaches it reliably, again after T1 and 2·T1,
    /// until its PRACK, which gets 200.
    @Test func aReliable183IsRetransmittedUntilItsPRACK() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee(callerHeaders: [("Require", "100rel")])
        #expect(!harness.wire.take().contains { $0.status == 420 })
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 183, sdp: Harness.answer)), from: Harness.callee)
        let early = try #require(callerResponses(harness).first { $0.status == 183 })
        #expect(early.headers.values("Require") == ["100rel"])
        let rseq = try #require(early.headers["RSeq"].flatMap { UInt32($0) })
        harness.advance(by: .milliseconds(500))
        #expect(callerResponses(harness).map(\.status) == [183])
        harness.advance(by: .milliseconds(999))
        #expect(callerResponses(harness).isEmpty)
        harness.advance(by: .milliseconds(1))
        #expect(callerResponses(harness).map { $0.headers["RSeq"] } == ["\(rseq)"])

        harness.receive(.request(prack(harness, toTag: try #require(early.to?.tag), rack: "\(rseq) 1 INVITE")), from: Harness.caller)
        #expect(harness.wire.take().compactMap(\.response).map(\.status) == [200])
        harness.advance(by: .seconds(10))
        #expect(callerResponses(harness).isEmpty, "the PRACK stopped the 183")
    }

    /// A PRACK that names no provisional out (another RSeq) gets 481 and stops nothing.
    @Test func aPRACKOfAnUnknownRSeqGets481() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee(callerHeaders: [("Supported", "100rel")])
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 180)), from: Harness.callee)
        let early = try #require(callerResponses(harness).first { $0.status == 180 })
        let rseq = try #require(early.headers["RSeq"].flatMap { UInt32($0) })
        harness.receive(.request(prack(harness, toTag: try #require(early.to?.tag), rack: "\(rseq &+ 7) 1 INVITE")), from: Harness.caller)
        #expect(harness.wire.take().compactMap(\.response).map(\.status) == [481])
        harness.advance(by: .milliseconds(500))
        #expect(callerResponses(harness).map(\.status) == [180])
    }

    /// RFC 3262 §3: no second reliable provisional before the first is PRACKed, and a 2xx waits for the PRACK of
    /// one with SDP.
    @Test func laterProvisionalsAndThe2xxWaitForThePRACK() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee(callerHeaders: [("Supported", "100rel, timer")])
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 180)), from: Harness.callee)
        let ringing = try #require(callerResponses(harness).first)
        let tag = try #require(ringing.to?.tag)
        let rseq = try #require(ringing.headers["RSeq"].flatMap { UInt32($0) })
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 183, sdp: Harness.answer)), from: Harness.callee)
        #expect(callerResponses(harness).isEmpty, "the 183 waits for the 180's PRACK")
        harness.receive(.request(prack(harness, toTag: tag, rack: "\(rseq) 1 INVITE")), from: Harness.caller)
        let afterPRACK = harness.wire.take().compactMap(\.response)
        #expect(afterPRACK.map(\.status) == [200, 183])
        #expect(afterPRACK.last?.headers["RSeq"] == "\(rseq + 1)")

        harness.receive(.response(Harness.calleeResponse(to: invite, status: 200, sdp: Harness.answer)), from: Harness.callee)
        #expect(!callerResponses(harness).contains { $0.status == 200 }, "the 2xx waits for the PRACK of the 183 with SDP")
        harness.receive(.request(prack(harness, toTag: tag, rack: "\(rseq + 1) 1 INVITE", cseq: 3, branch: "z9hG4bKprack2")), from: Harness.caller)
        let answered = harness.wire.take().compactMap(\.response)
        #expect(answered.map(\.status) == [200, 200])
        #expect(answered.last?.cseq?.method == .invite && answered.last?.to?.tag == tag)
    }

    /// RFC 3262 §3: no PRACK within 64·T1 fails the INVITE with a 5xx, and the ringing B leg is CANCELled.
    @Test func noPRACKWithin64T1FailsTheInviteAndCancelsB() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee(ringTimeoutMs: 120_000, callerHeaders: [("Require", "100rel")])
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 183, sdp: Harness.answer)), from: Harness.callee)
        harness.wire.take()
        // Again at 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s.
        harness.advance(by: .milliseconds(31_900))
        #expect(callerResponses(harness).map(\.status) == Array(repeating: 183, count: 6))
        harness.advance(by: .milliseconds(100))
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.response).filter { $0.cseq?.method == .invite }.map(\.status) == [504])
        #expect(sent.compactMap(\.request).contains { $0.method == .cancel && $0.callID == invite.callID })
        #expect(harness.bus.types.last == "call.ended")
    }

    /// The caller CANCELs while its 2xx waits for the PRACK of the 183: it gets 487, never the 2xx, and B (answered
    /// already) gets BYE.
    @Test func aCANCELWhileThe2xxWaitsForThePRACKGets487AndBIsHungUp() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee(callerHeaders: [("Supported", "100rel")])
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 183, sdp: Harness.answer)), from: Harness.callee)
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 200, sdp: Harness.answer)), from: Harness.callee)
        #expect(!callerResponses(harness).contains { $0.status == 200 })
        harness.receive(.request(callerCancel(harness)), from: Harness.caller)
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.response).map(\.status) == [200, 487])
        #expect(sent.compactMap(\.request).contains { $0.method == .bye && $0.callID == invite.callID })
        harness.advance(by: .seconds(40))
        #expect(!callerResponses(harness).contains { $0.status == 200 })
        #expect(harness.bus.types.last == "call.ended")
    }

    /// Without 100rel from the caller the 18x go as before: no Require, no RSeq, not repeated.
    @Test func withoutHundredRelTheProvisionalIsUnreliable() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee()
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 183, sdp: Harness.answer)), from: Harness.callee)
        let early = try #require(callerResponses(harness).first)
        #expect(early.headers["RSeq"] == nil && !early.headers.contains("Require"))
        harness.advance(by: .seconds(2))
        #expect(callerResponses(harness).isEmpty)
    }

    // MARK: - Reliable provisionals from B (RFC 3262 §4)

    /// The bridge's INVITE offers 100rel; B's reliable 183 gets one PRACK in its early dialog (a retransmission is
    /// neither PRACKed again nor passed on), and the confirmed dialog's CSeq goes on past it.
    @Test func aCalleesReliable183IsPRACKedOnce() throws {
        let harness = Harness()
        let invite = try harness.bridgeToCallee()
        #expect(invite.headers.values("Supported") == ["100rel", "timer"])
        let reliable = Harness.calleeResponse(to: invite, status: 183, sdp: Harness.answer, headers: [("Require", "100rel"), ("RSeq", "4711")])
        harness.receive(.response(reliable), from: Harness.callee)
        var sent = harness.wire.take()
        let pracks = sent.compactMap(\.request).filter { $0.method == .prack }
        #expect(pracks.count == 1)
        let prack = try #require(pracks.first)
        #expect(prack.headers["RAck"] == "4711 1 INVITE")
        #expect(prack.cseq?.sequence == 2 && prack.to?.tag == "bob1" && prack.callID == invite.callID)
        #expect(prack.uri.description == "sip:bob@127.0.0.2:5070")
        #expect(sent.compactMap(\.response).filter { $0.status == 183 }.count == 1)

        harness.receive(.response(reliable), from: Harness.callee)
        sent = harness.wire.take()
        #expect(sent.isEmpty, "a retransmission is not PRACKed twice nor passed on")
        harness.receive(.response(SIPResponse(replyingTo: prack, status: 200)), from: Harness.callee)
        #expect(harness.wire.take().isEmpty, "the PRACK's 200 is absorbed")

        harness.receive(.response(Harness.calleeResponse(to: invite, status: 200, sdp: Harness.answer)), from: Harness.callee)
        let ok = try #require(callerResponses(harness).first { $0.status == 200 })
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: try #require(ok.to?.tag), branch: "z9hG4bKack1")), from: Harness.caller)
        harness.receive(.request(harness.callerRequest(.bye, cseq: 2, toTag: try #require(ok.to?.tag), branch: "z9hG4bKbye1")), from: Harness.caller)
        let bye = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .bye && $0.callID == invite.callID })
        #expect(bye.cseq?.sequence == 3, "after the PRACK's CSeq 2")
    }
}
