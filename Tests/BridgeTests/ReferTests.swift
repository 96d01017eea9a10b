import BusSchema
import NIOCore
import SIPCore
import Testing
@testable import Bridge

/// A phone's REFER (RFC 3515) carried out by the bridge: bob, the callee, transfers alice, the caller, to carol.
@Suite struct ReferTests {
    typealias Harness = SIPSideHarness

    static let carol = "sip:carol@127.0.0.2:5071"
    static let carolAnswer = "v=0\r\no=c 1 1 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.3\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"

    /// A connected call (the caller ACKed): the bridge's INVITE to bob.
    static func connectedCall(_ harness: Harness) throws -> SIPRequest {
        let (invite, ok) = try harness.answeredCall()
        let toTag = try #require(ok.to?.tag)
        harness.receive(.request(harness.callerRequest(.ack, cseq: 1, toTag: toTag, branch: "z9hG4bKack1")), from: Harness.caller)
        harness.wire.take()
        return invite
    }

    /// Bob's REFER in his dialog with the bridge.
    static func refer(in invite: SIPRequest, to target: String?, cseq: UInt32 = 2, headers: [(String, String)] = []) -> SIPRequest {
        var refer = Harness.calleeRequest(.refer, in: invite, cseq: cseq, branch: "z9hG4bKrefer\(cseq)")
        refer.headers.add("Contact", "<sip:bob@127.0.0.2:5070>")
        if let target { refer.headers.add("Refer-To", "<\(target)>") }
        for (name, value) in headers { refer.headers.add(name, value) }
        return refer
    }

    /// What the bridge sent for an accepted REFER: its answer, the NOTIFYs to bob, the INVITE to carol.
    struct Sent {
        var responses: [SIPResponse]
        var notifies: [SIPRequest]
        var invites: [SIPRequest]

        init(_ sent: [FakeTransport.Sent]) {
            responses = sent.compactMap(\.response)
            notifies = sent.compactMap(\.request).filter { $0.method == .notify }
            invites = sent.compactMap(\.request).filter { $0.method == .invite }
        }
    }

    static func sipfrag(_ notify: SIPRequest) -> String {
        String(decoding: notify.body, as: UTF8.self)
    }

    /// The workers' answer to the REFER's decision request (the last one asked).
    static func decide(_ harness: Harness, _ resolution: BusEndpoints.Resolution) throws {
        let request = try #require(harness.bus.decisionRequests.last)
        harness.side.gate.resolve([(requestId: request.requestId, resolution: resolution)])
        harness.loop.run()
    }

    static let toCarol = BusEndpoints.Resolution.decided(.bridge(BridgeRoute(targets: [BridgeTarget(uri: carol)])), workerId: "w1")

    /// Bob REFERs alice to carol: checks the 202, NOTIFY 100, the decision request and the INVITE to carol once a
    /// worker routes it there; returns that INVITE.
    static func referred(_ harness: Harness, bobInvite: SIPRequest) throws -> SIPRequest {
        harness.receive(.request(refer(in: bobInvite, to: carol, headers: [("Referred-By", "<sip:bob@127.0.0.2>")])), from: Harness.callee)
        var sent = Sent(harness.wire.take())
        #expect(sent.invites.isEmpty, "the workers decide first")
        let request = try #require(harness.bus.decisionRequests.last)
        #expect(request.offer.requestUri.uri == carol)
        #expect(request.offer.from.uri == "sip:alice@127.0.0.1", "the party who will talk to the target")
        #expect(request.offer.transfer == TransferOffer(callId: try #require(harness.bus.events.first?.callId), referrer: .b,
                                                         referredBy: "<sip:bob@127.0.0.2>"))
        #expect(harness.bus.types.filter { $0 == "call.offered" }.count == 1, "the call was offered once")
        try decide(harness, toCarol)
        sent.invites = Sent(harness.wire.take()).invites
        #expect(sent.responses.map(\.status) == [202])
        let trying = try #require(sent.notifies.first)
        #expect(trying.callID == bobInvite.callID)
        #expect(trying.headers["Event"] == "refer;id=2")
        #expect(trying.headers["Subscription-State"]?.hasPrefix("active") == true)
        #expect(trying.contentType == "message/sipfrag;version=2.0")
        #expect(sipfrag(trying) == "SIP/2.0 100 Trying\r\n")
        harness.receive(.response(SIPResponse(replyingTo: trying, status: 200)), from: Harness.callee)
        let carolInvite = try #require(sent.invites.first)
        #expect(carolInvite.uri.description == carol)
        #expect(carolInvite.body.isEmpty, "carol is called without an offer; alice's re-INVITE carries hers")
        #expect(carolInvite.headers["Referred-By"] == "<sip:bob@127.0.0.2>")
        #expect(carolInvite.from?.uri.description == "sip:alice@127.0.0.1", "carol sees the party she will talk to")
        return carolInvite
    }

    @Test func aBlindREFERJoinsTheOtherPartyToTheTargetAndReleasesTheReferrer() throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        let carolInvite = try Self.referred(harness, bobInvite: bobInvite)
        harness.receive(.response(Harness.calleeResponse(to: carolInvite, status: 200, toTag: "carol1", sdp: Self.carolAnswer)), from: Harness.callee)
        // Alice is re-INVITEd with carol's offer; bob still has his call meanwhile.
        let reinvite = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(reinvite.callID == "caller-call-1")
        // Carol's media under the origin alice saw bob's session by (RFC 3264 §8).
        let text = String(decoding: reinvite.body, as: UTF8.self)
        #expect(text.contains("o=b 1 2 IN IP4 192.0.2.2") && text.contains("c=IN IP4 192.0.2.3") && text.contains("m=audio 6000"))
        var ok = SIPResponse(replyingTo: reinvite, status: 200)
        ok.headers.add("Contact", "<sip:alice@127.0.0.1:5999>")
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = Array(Harness.offer.utf8)
        harness.receive(.response(ok), from: Harness.caller)

        let sent = harness.wire.take().compactMap(\.request)
        let ackToCarol = try #require(sent.first { $0.method == .ack && $0.callID == carolInvite.callID })
        #expect(ackToCarol.body == Array(Harness.offer.utf8), "alice's answer completes carol's INVITE")
        let done = try #require(sent.first { $0.method == .notify })
        #expect(Self.sipfrag(done) == "SIP/2.0 200 OK\r\n")
        #expect(done.headers["Subscription-State"] == "terminated;reason=noresource")
        #expect(!sent.contains { $0.method == .bye }, "bob gets a moment to hang up himself")
        let transferred = harness.bus.events.compactMap { if case .callTransferred(let t) = $0.body { t } else { nil } }
        #expect(transferred == [Transferred(leg: .a, target: Self.carol, by: .b)])
        #expect(harness.bus.types.last == "call.connected")

        harness.advance(by: Referrals.referrerGrace)
        let bye = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .bye })
        #expect(bye.callID == bobInvite.callID)
        #expect(!harness.bus.types.contains("call.ended"), "alice and carol talk on")
    }

    @Test func aReferrerThatHangsUpItselfGetsNoBYE() throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        let carolInvite = try Self.referred(harness, bobInvite: bobInvite)
        // Bob hangs up as soon as his REFER is accepted: the transfer goes on.
        harness.receive(.request(Harness.calleeRequest(.bye, in: bobInvite, cseq: 3, branch: "z9hG4bKbobbye")), from: Harness.callee)
        #expect(harness.wire.take().compactMap(\.response).map(\.status) == [200])
        #expect(!harness.bus.types.contains("call.ended"))
        harness.receive(.response(Harness.calleeResponse(to: carolInvite, status: 200, toTag: "carol1", sdp: Self.carolAnswer)), from: Harness.callee)
        let reinvite = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        var ok = SIPResponse(replyingTo: reinvite, status: 200)
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = Array(Harness.offer.utf8)
        harness.receive(.response(ok), from: Harness.caller)
        harness.advance(by: Referrals.referrerGrace)
        let sent = harness.wire.take().compactMap(\.request)
        #expect(!sent.contains { $0.method == .bye || $0.method == .notify })
        #expect(harness.bus.types.last == "call.connected")
    }

    @Test func aBusyTargetIsNotifiedAndTheCallStaysUp() throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        let carolInvite = try Self.referred(harness, bobInvite: bobInvite)
        harness.receive(.response(Harness.calleeResponse(to: carolInvite, status: 486, toTag: "carol1")), from: Harness.callee)
        let sent = harness.wire.take().compactMap(\.request)
        let notify = try #require(sent.first { $0.method == .notify })
        #expect(Self.sipfrag(notify) == "SIP/2.0 486 Busy Here\r\n")
        #expect(notify.headers["Subscription-State"] == "terminated;reason=noresource")
        #expect(!sent.contains { $0.method == .bye })
        #expect(!harness.bus.types.contains("call.ended"))
        #expect(!harness.bus.types.contains("call.transferred"))
        // Alice and bob are still bridged: bob's re-INVITE reaches alice.
        harness.receive(.request(Harness.calleeRequest(.invite, in: bobInvite, cseq: 3, branch: "z9hG4bKbobre", body: Harness.answer)),
                        from: Harness.callee)
        #expect(harness.wire.take().compactMap(\.request).contains { $0.method == .invite && $0.callID == "caller-call-1" })
    }

    @Test func aTargetThePolicyRefusesGets403AndNothingIsDialled() throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        harness.receive(.request(Self.refer(in: bobInvite, to: DestinationGuardTests.premium)), from: Harness.callee)
        let sent = harness.wire.take()
        let response = try #require(sent.compactMap(\.response).first)
        #expect(response.status == 403)
        #expect(response.headers["Warning"]?.hasPrefix("399 switchboard \"destination policy: ") == true)
        #expect(sent.compactMap(\.request).isEmpty, "no NOTIFY, no INVITE")
    }

    @Test(arguments: [
        (nil, 400), ("tel:+12025550100", 403), ("sip:carol@127.0.0.2:5071?Subject=hi", 403),
    ] as [(String?, Int)])
    func aREFERWithoutAUsableReferToIsRefused(target: String?, status: Int) throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        harness.receive(.request(Self.refer(in: bobInvite, to: target)), from: Harness.callee)
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.response).map(\.status) == [status])
        #expect(sent.compactMap(\.request).isEmpty)
    }

    @Test func aWorkersRejectIsNotifiedAndTheCallStaysUp() throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        harness.receive(.request(Self.refer(in: bobInvite, to: Self.carol)), from: Harness.callee)
        #expect(Sent(harness.wire.take()).responses.map(\.status) == [202])
        try Self.decide(harness, .decided(.reject(status: 404, reason: "Not In Plan", headers: [:]), workerId: "w1"))
        let sent = harness.wire.take().compactMap(\.request)
        #expect(sent.map(\.method) == [.notify], "no INVITE")
        #expect(sent.first.map(Self.sipfrag) == "SIP/2.0 404 Not In Plan\r\n")
        #expect(sent.first?.headers["Subscription-State"] == "terminated;reason=noresource")
        harness.receive(.request(Harness.calleeRequest(.invite, in: bobInvite, cseq: 3, branch: "z9hG4bKbobre", body: Harness.answer)),
                        from: Harness.callee)
        #expect(harness.wire.take().compactMap(\.request).contains { $0.method == .invite && $0.callID == "caller-call-1" }, "still bridged")
    }

    @Test func aWorkerTargetThePolicyRefusesIsNotified403() throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        harness.receive(.request(Self.refer(in: bobInvite, to: Self.carol)), from: Harness.callee)
        harness.wire.take()
        try Self.decide(harness, .decided(.bridge(BridgeRoute(targets: [BridgeTarget(uri: DestinationGuardTests.premium)])), workerId: "w1"))
        let sent = harness.wire.take().compactMap(\.request)
        #expect(sent.map(\.method) == [.notify])
        #expect(sent.first.map(Self.sipfrag) == "SIP/2.0 403 Forbidden\r\n")
    }

    /// No worker answers: the bridge's decision fallback (503 by default) decides, as for a new call.
    @Test func noDecisionByTheDeadlineNotifiesTheFallback() throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        harness.receive(.request(Self.refer(in: bobInvite, to: Self.carol)), from: Harness.callee)
        let trying = try #require(Sent(harness.wire.take()).notifies.first)
        harness.receive(.response(SIPResponse(replyingTo: trying, status: 200)), from: Harness.callee)
        harness.advance(by: .seconds(3))
        let sent = harness.wire.take().compactMap(\.request)
        #expect(sent.map(\.method) == [.notify])
        #expect(sent.first.map(Self.sipfrag)?.hasPrefix("SIP/2.0 503 ") == true)
        #expect(!harness.bus.types.contains("call.ended"))
    }

    /// Bob hangs up while the workers decide: the transfer goes on, and alice is joined to carol.
    @Test func aReferrerThatHangsUpBeforeTheDecisionDoesNotEndTheCall() throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        harness.receive(.request(Self.refer(in: bobInvite, to: Self.carol)), from: Harness.callee)
        harness.wire.take()
        harness.receive(.request(Harness.calleeRequest(.bye, in: bobInvite, cseq: 3, branch: "z9hG4bKbobbye")), from: Harness.callee)
        harness.wire.take()
        #expect(!harness.bus.types.contains("call.ended"))
        try Self.decide(harness, Self.toCarol)
        #expect(harness.wire.take().compactMap(\.request).contains { $0.method == .invite && $0.uri.description == Self.carol })
    }

    /// Bob's second call through the bridge, to carol, answered and ACKed: the bridge's INVITE to carol and its tag
    /// in bob's dialog.
    static func bobCallsCarol(_ harness: Harness) throws -> (carolInvite: SIPRequest, bobsTag: String) {
        var invite = harness.callerInvite(branch: "z9hG4bKbobcall", callID: "bob-call-2")
        invite.headers.set("Via", "SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKbobcall;rport")
        invite.headers.set("From", "<sip:bob@127.0.0.2>;tag=bobY")
        invite.headers.set("Contact", "<sip:bob@127.0.0.2:5070>")
        invite.body = Array(Harness.answer.utf8)
        harness.receive(.request(invite), from: Harness.callee)
        try decide(harness, toCarol)
        let carolInvite = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        harness.receive(.response(Harness.calleeResponse(to: carolInvite, status: 200, toTag: "carol1", sdp: carolAnswer)), from: Harness.callee)
        let ok = try #require(harness.wire.take().compactMap(\.response).first { $0.status == 200 })
        let tag = try #require(ok.to?.tag)
        var ack = SIPRequest(method: .ack, uri: SIPAnyURI("sip:switchboard@127.0.0.1:5080")!)
        ack.headers.add("Via", "SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKboback;rport")
        ack.headers.add("Max-Forwards", "70")
        ack.headers.add("From", "<sip:bob@127.0.0.2>;tag=bobY")
        ack.headers.add("To", "<sip:bob@127.0.0.1>;tag=\(tag)")
        ack.headers.add("Call-ID", "bob-call-2")
        ack.headers.add("CSeq", "1 ACK")
        harness.receive(.request(ack), from: Harness.callee)
        harness.wire.take()
        return (carolInvite, tag)
    }

    /// RFC 3891: bob talks to alice (call X) and to carol (call Y), both through the bridge, and REFERs alice to carol
    /// with Replaces naming his dialog of Y. The bridge joins alice and carol in X; bob's legs of both calls end.
    @Test func anAttendedREFERJoinsTheTwoOtherPartiesInTheBridge() throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        let callX = try #require(harness.bus.events.first?.callId)
        let (carolInvite, tag) = try Self.bobCallsCarol(harness)
        let callY = try #require(harness.bus.events.last?.callId)
        #expect(callX != callY)
        let replaces = "bob-call-2%3Bto-tag%3D\(tag)%3Bfrom-tag%3DbobY"
        harness.receive(.request(Self.refer(in: bobInvite, to: "sip:carol@127.0.0.2:5071?Replaces=\(replaces)")), from: Harness.callee)
        var sent = harness.wire.take()
        #expect(sent.compactMap(\.response).map(\.status) == [202])
        let requests = sent.compactMap(\.request)
        #expect(requests.contains { $0.method == .notify && Self.sipfrag($0) == "SIP/2.0 100 Trying\r\n" })
        #expect(requests.contains { $0.method == .bye && $0.callID == "bob-call-2" }, "bob's leg of Y ends")
        #expect(!requests.contains { $0.method == .bye && $0.callID == carolInvite.callID }, "carol stays")
        let reinvite = try #require(requests.first { $0.method == .invite && $0.callID == "caller-call-1" })
        #expect(String(decoding: reinvite.body, as: UTF8.self).contains("192.0.2.3"), "alice gets carol's media")
        let endedY = harness.bus.events.filter { $0.callId == callY }.map(\.body.type)
        #expect(endedY.suffix(2) == ["call.transferred", "call.ended"])

        var ok = SIPResponse(replyingTo: reinvite, status: 200)
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = Array(Harness.offer.utf8)
        harness.receive(.response(ok), from: Harness.caller)
        sent = harness.wire.take()
        let toCarol = try #require(sent.compactMap(\.request).first { $0.method == .invite && $0.callID == carolInvite.callID })
        #expect(String(decoding: toCarol.body, as: UTF8.self).contains("192.0.2.1"), "carol gets alice's media")
        #expect(sent.compactMap(\.request).contains { $0.method == .notify && Self.sipfrag($0) == "SIP/2.0 200 OK\r\n" })
        let transferred = harness.bus.events.filter { $0.callId == callX }.compactMap { if case .callTransferred(let t) = $0.body { t } else { nil } }
        #expect(transferred == [Transferred(leg: .a, target: "sip:carol@127.0.0.2:5071", by: .b)])
        guard case .callConnected(let connected)? = harness.bus.events.last(where: { $0.callId == callX })?.body else {
            Issue.record("no call.connected: \(harness.bus.types)")
            return
        }
        #expect(connected == Connected(a: "sip:alice@127.0.0.1", b: "sip:carol@127.0.0.2:5071"))
        harness.advance(by: Referrals.referrerGrace)
        #expect(harness.wire.take().compactMap(\.request).contains { $0.method == .bye && $0.callID == bobInvite.callID })

        // Carol hangs up: alice gets the BYE, and call X ends.
        harness.receive(.response(SIPResponse(replyingTo: toCarol, status: 200)), from: Harness.callee)
        harness.receive(.request(Harness.calleeRequest(.bye, in: carolInvite, cseq: 5, branch: "z9hG4bKcarolbye")), from: Harness.callee)
        #expect(harness.wire.take().compactMap(\.request).contains { $0.method == .bye && $0.callID == "caller-call-1" })
        #expect(harness.bus.events.last?.callId == callX)
        #expect(harness.bus.types.last == "call.ended")
    }

    @Test func aReplacesThatNamesNoDialogOfTheBridgeGets403() throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        harness.receive(.request(Self.refer(in: bobInvite, to: "sip:carol@127.0.0.2:5071?Replaces=elsewhere%3Bto-tag%3Dx%3Bfrom-tag%3Dy")),
                        from: Harness.callee)
        let sent = harness.wire.take()
        #expect(sent.compactMap(\.response).map(\.status) == [403])
        #expect(sent.compactMap(\.response).first?.reason == "Replaces Names No Call Of This Bridge")
        #expect(sent.compactMap(\.request).isEmpty)
    }

    @Test func aSecondREFERWhileOneRunsGets491() throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        _ = try Self.referred(harness, bobInvite: bobInvite)
        harness.receive(.request(Self.refer(in: bobInvite, to: Self.carol, cseq: 3)), from: Harness.callee)
        #expect(harness.wire.take().compactMap(\.response).map(\.status) == [491])
    }

    /// RFC 4488: the referrer asked for no subscription, so no NOTIFY, and the 202 says so.
    @Test func referSubFalseGetsNoNOTIFY() throws {
        let harness = Harness()
        let bobInvite = try Self.connectedCall(harness)
        harness.receive(.request(Self.refer(in: bobInvite, to: Self.carol, headers: [("Refer-Sub", "false")])), from: Harness.callee)
        let sent = Sent(harness.wire.take())
        #expect(sent.responses.map(\.status) == [202])
        #expect(sent.responses.first?.headers["Refer-Sub"] == "false")
        #expect(sent.notifies.isEmpty)
        try Self.decide(harness, Self.toCarol)
        let carolInvite = try #require(Sent(harness.wire.take()).invites.first)
        harness.receive(.response(Harness.calleeResponse(to: carolInvite, status: 486, toTag: "carol1")), from: Harness.callee)
        #expect(!harness.wire.take().compactMap(\.request).contains { $0.method == .notify })
    }
}
