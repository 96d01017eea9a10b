import BusSchema
import NIOCore
import SIPCore
import Testing
@testable import Bridge

/// The caller's early dialogs (one per B early dialog, RFC 3261 §13.2.1), on the embedded loop, fake bus and fake
/// wire of `SIPSideHarness`.
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
        var cancel = SIPRequest(method: .cancel, uri: harness.callerInvite().uri)
        for name in ["Via", "Max-Forwards", "From", "To", "Call-ID"] { cancel.headers.add(name, harness.callerInvite().headers[name]!) }
        cancel.headers.add("CSeq", "1 CANCEL")
        harness.receive(.request(cancel), from: Harness.caller)
        let answers = harness.wire.take().compactMap(\.response)
        #expect(answers.first { $0.cseq?.method == .cancel }?.to?.tag == early)
        #expect(answers.first { $0.status == 487 }?.to?.tag == early)
    }
}
