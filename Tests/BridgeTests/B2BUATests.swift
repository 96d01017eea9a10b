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

    /// RFC 3261 §13.3.1.4: the caller learns what it may send in the dialog (and that no extension is supported).
    @Test func the2xxToTheCallerNamesAllowAndSupported() throws {
        let (_, ok) = try Harness().answeredCall()
        #expect(ok.headers.values("Allow") == ["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE", "UPDATE", "INFO"])
        #expect(ok.headers.contains("Supported"))
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
}
