import Foundation
import SIPCore
import Testing

// Alice (atlanta.com) calls Bob (biloxi.com) through p1.atlanta.com then p2.biloxi.com; both record-route, so the
// INVITE reaches Bob with Record-Route p2, p1 (the last proxy on top), and the responses carry it back unchanged.

private let callID = "a84b4c76e66710@pc33.atlanta.com"
private let p1 = NameAddress("<sip:p1.atlanta.com;lr>")!
private let p2 = NameAddress("<sip:p2.biloxi.com;lr>")!
private let aliceContact = NameAddress("<sip:alice@pc33.atlanta.com>")!
private let bobContact = NameAddress("<sip:bob@192.0.2.4>")!

/// The INVITE as Alice sends it.
private let invite = SIPRequest(
    method: .invite, uri: .sip(SIPURI(user: "bob", host: "biloxi.com")),
    headers: [
        ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8"),
        ("Max-Forwards", "70"),
        ("To", "Bob <sip:bob@biloxi.com>"),
        ("From", "Alice <sip:alice@atlanta.com>;tag=1928301774"),
        ("Call-ID", callID),
        ("CSeq", "314159 INVITE"),
        ("Contact", aliceContact.description),
    ])

/// The INVITE as Bob receives it.
private let receivedInvite = recordRouted(invite)

private func recordRouted<Message: SIPMessageFields>(_ message: Message, _ routes: [NameAddress] = [p2, p1]) -> Message {
    var message = message
    message.headers.add("Record-Route", routes.map(\.description).joined(separator: ", "))
    return message
}

/// A response from Bob as Alice receives it.
private func response(
    _ status: Int, toTag: String? = "a6c85cf", contact: NameAddress? = bobContact, routes: [NameAddress] = [p2, p1]
) -> SIPResponse {
    var response = recordRouted(SIPResponse(replyingTo: invite, status: status, toTag: toTag), routes)
    if let contact { response.headers.add("Contact", contact.description) }
    return response
}

private let ok = response(200)

private func via(_ branch: String) -> Via {
    Via(transport: "UDP", host: "pc33.atlanta.com", branch: Via.magicCookie + branch)
}

private let alice = "Alice <sip:alice@atlanta.com>;tag=1928301774"
private let bob = "Bob <sip:bob@biloxi.com>;tag=a6c85cf"

/// A request Bob sends in the dialog, as Alice receives it.
private func fromBob(_ method: SIPMethod, cseq: UInt32, contact: NameAddress? = nil) -> SIPRequest {
    inDialog(method, cseq: cseq, from: bob, to: alice, contact: contact)
}

/// A request Alice sends in the dialog, as Bob receives it.
private func fromAlice(_ method: SIPMethod, cseq: UInt32, contact: NameAddress? = nil) -> SIPRequest {
    inDialog(method, cseq: cseq, from: alice, to: bob, contact: contact)
}

private func inDialog(_ method: SIPMethod, cseq: UInt32, from: String, to: String, contact: NameAddress?) -> SIPRequest {
    var request = SIPRequest(
        method: method, uri: .sip(SIPURI(host: "192.0.2.99")),
        headers: [
            ("Via", "SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKnashds9"), ("Max-Forwards", "69"), ("From", from), ("To", to),
            ("Call-ID", callID), ("CSeq", "\(cseq) \(method)"),
        ])
    if let contact { request.headers.add("Contact", contact.description) }
    return request
}

@Suite("Dialog creation")
struct DialogCreationTests {
    @Test func uacDialogFromA2xxReversesTheRecordRoute() throws {
        let dialog = try #require(Dialog(uac: invite, response: ok))
        #expect(dialog.id == DialogID(callID: callID, localTag: "1928301774", remoteTag: "a6c85cf"))
        #expect(dialog.role == .uac)
        #expect(dialog.state == .confirmed)
        #expect(dialog.localSequence == 314159)
        #expect(dialog.remoteSequence == nil)
        #expect(dialog.localURI == NameAddress("Alice <sip:alice@atlanta.com>"))
        #expect(dialog.remoteURI == NameAddress("Bob <sip:bob@biloxi.com>"))
        #expect(dialog.remoteTarget == bobContact.uri)
        #expect(dialog.routeSet == [p1, p2])
        #expect(dialog.secure == false)
        #expect(dialog.localContact == aliceContact)
    }

    @Test func uacEarlyDialogIsConfirmedByThe2xx() throws {
        let ringingContact = NameAddress("<sip:bob@ringing.biloxi.com>")!
        var dialog = try #require(Dialog(uac: invite, response: response(180, contact: ringingContact, routes: [p1])))
        #expect(dialog.state == .early)
        #expect(dialog.routeSet == [p1])
        #expect(dialog.remoteTarget == ringingContact.uri)
        dialog.confirm(with: ok)
        #expect(dialog.state == .confirmed)
        #expect(dialog.routeSet == [p1, p2])
        #expect(dialog.remoteTarget == bobContact.uri)
        // Another 2xx changes nothing once confirmed.
        dialog.confirm(with: response(200, contact: ringingContact, routes: [p1]))
        #expect(dialog.remoteTarget == bobContact.uri)
        #expect(dialog.routeSet == [p1, p2])
    }

    @Test func noDialogWithoutToTagContactOrSuitableStatus() {
        #expect(Dialog(uac: invite, response: response(100)) == nil)
        #expect(Dialog(uac: invite, response: response(180, toTag: nil)) == nil)
        #expect(Dialog(uac: invite, response: response(200, contact: nil)) == nil)
        #expect(Dialog(uac: invite, response: response(486)) == nil)
        var noContact = receivedInvite
        noContact.headers.remove("Contact")
        #expect(Dialog(uac: noContact, response: ok) == nil)
        #expect(Dialog(uas: noContact, localTag: "a6c85cf", localContact: bobContact) == nil)
    }

    @Test func anotherForksAnswerMakesTheSameDialogAsTheInviteWould() throws {
        var dialog = try #require(Dialog(uac: invite, response: ok))
        _ = dialog.makeRequest(.invite, via: via("reinvite"))
        let otherContact = NameAddress("<sip:bob@198.51.100.7>")!
        let other = response(200, toTag: "fork2", contact: otherContact, routes: [p1])
        let fork = try #require(Dialog(forkOf: dialog, response: other))
        #expect(fork == Dialog(uac: invite, response: other))
        #expect(fork.localSequence == 314159)
        #expect(fork.routeSet == [p1])
        #expect(Dialog(forkOf: dialog, response: response(180, toTag: "fork2")) == nil)
        #expect(Dialog(forkOf: dialog, response: response(200, toTag: nil)) == nil)
        #expect(Dialog(forkOf: dialog, response: response(200, contact: nil)) == nil)
        var elsewhere = other
        elsewhere.headers.set("Call-ID", "another-call")
        #expect(Dialog(forkOf: dialog, response: elsewhere) == nil)
        let uas = try #require(Dialog(uas: receivedInvite, localTag: "a6c85cf", localContact: bobContact))
        #expect(Dialog(forkOf: uas, response: other) == nil)
    }

    @Test func uasDialogKeepsTheRecordRouteOrder() throws {
        let dialog = try #require(Dialog(uas: receivedInvite, localTag: "a6c85cf", localContact: bobContact, state: .early))
        #expect(dialog.id == DialogID(callID: callID, localTag: "a6c85cf", remoteTag: "1928301774"))
        #expect(dialog.role == .uas)
        #expect(dialog.state == .early)
        #expect(dialog.localSequence == 0)
        #expect(dialog.remoteSequence == 314159)
        #expect(dialog.localURI == NameAddress("Bob <sip:bob@biloxi.com>"))
        #expect(dialog.remoteURI == NameAddress("Alice <sip:alice@atlanta.com>"))
        #expect(dialog.remoteTarget == aliceContact.uri)
        #expect(dialog.routeSet == [p2, p1])
    }

    @Test func uasConfirmsWithItsOwn2xxWithoutTakingItsContact() throws {
        var dialog = try #require(Dialog(uas: receivedInvite, localTag: "a6c85cf", localContact: bobContact, state: .early))
        dialog.confirm(with: SIPResponse(replyingTo: receivedInvite, status: 200, toTag: "a6c85cf"))
        #expect(dialog.state == .confirmed)
        #expect(dialog.remoteTarget == aliceContact.uri)
        #expect(dialog.routeSet == [p2, p1])
    }

    /// RFC 3261 §14.1: after a 491 the UA that generated the Call-ID (the dialog's UAC) waits 2.1-4 s, the other
    /// 0-2 s, in steps of 10 ms.
    @Test func glareRetryDelaysFollowWhoMadeTheCallID() throws {
        let uac = try #require(Dialog(uac: invite, response: ok))
        let uas = try #require(Dialog(uas: receivedInvite, localTag: "a6c85cf", localContact: bobContact))
        var random = SystemRandomNumberGenerator()
        let owned = (0..<500).map { _ in uac.glareRetryDelay(using: &random) }
        let other = (0..<500).map { _ in uas.glareRetryDelay(using: &random) }
        #expect(owned.allSatisfy { $0 >= .milliseconds(2100) && $0 <= .seconds(4) })
        #expect(other.allSatisfy { $0 >= .zero && $0 <= .seconds(2) })
        #expect((owned + other).allSatisfy { $0.components.attoseconds % 10_000_000_000_000_000 == 0 })
        #expect(Set(owned).count > 1 && Set(other).count > 1)
    }

    @Test func sipsRequestURIMakesTheDialogSecure() throws {
        var secureInvite = invite
        secureInvite.uri = .sip(SIPURI(scheme: "sips", user: "bob", host: "biloxi.com"))
        #expect(try #require(Dialog(uac: secureInvite, response: ok)).secure)
    }

    @Test func rfc2543PeerWithoutFromTagGivesAnEmptyRemoteTag() throws {
        var untagged = receivedInvite
        untagged.headers.set("From", "Alice <sip:alice@atlanta.com>")
        let dialog = try #require(Dialog(uas: untagged, localTag: "a6c85cf", localContact: bobContact))
        #expect(dialog.id.remoteTag == "")
        var bye = dialog
        #expect(bye.makeRequest(.bye, via: via("b1")).headers["To"] == "\"Alice\" <sip:alice@atlanta.com>")
    }
}

@Suite("Requests in a dialog")
struct DialogRequestTests {
    @Test func looseRoutingSendsToTheRemoteTargetThroughTheRouteSet() throws {
        var dialog = try #require(Dialog(uac: invite, response: ok))
        let bye = dialog.makeRequest(.bye, via: via("b1"))
        #expect(bye == SIPRequest(
            method: .bye, uri: bobContact.uri,
            headers: [
                ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKb1"),
                ("Max-Forwards", "70"),
                ("From", "\"Alice\" <sip:alice@atlanta.com>;tag=1928301774"),
                ("To", "\"Bob\" <sip:bob@biloxi.com>;tag=a6c85cf"),
                ("Call-ID", callID),
                ("CSeq", "314160 BYE"),
                ("Route", "<sip:p1.atlanta.com;lr>"),
                ("Route", "<sip:p2.biloxi.com;lr>"),
            ]))
        #expect(dialog.localSequence == 314160)
    }

    @Test func targetRefreshCarriesContactBodyAndExtraHeaders() throws {
        var dialog = try #require(Dialog(uac: invite, response: ok))
        let sdp = Array("v=0\r\n".utf8)
        let reinvite = dialog.makeRequest(
            .invite, via: via("r1"), body: sdp, contentType: "application/sdp", extraHeaders: [("Subject", "hold")])
        #expect(reinvite.cseq == CSeq(sequence: 314160, method: .invite))
        #expect(reinvite.contacts == [aliceContact])
        #expect(reinvite.contentType == "application/sdp")
        #expect(reinvite.headers["Subject"] == "hold")
        #expect(reinvite.body == sdp)
        let info = dialog.makeRequest(.info, via: via("i1"))
        #expect(info.cseq == CSeq(sequence: 314161, method: .info))
        #expect(info.contacts == [])
        #expect(info.contentType == nil)
    }

    @Test func strictRoutingPutsTheFirstRouteInTheRequestURIAndTheTargetLast() throws {
        let strict = NameAddress("<sip:p1.atlanta.com;transport=udp;method=INVITE?X-Hop=1>")!
        var dialog = try #require(Dialog(uac: invite, response: response(200, routes: [p2, strict])))
        #expect(dialog.routeSet == [strict, p2])
        let bye = dialog.makeRequest(.bye, via: via("b1"))
        #expect(bye.uri == SIPAnyURI("sip:p1.atlanta.com;transport=udp"))
        #expect(bye.headers.values("Route") == [p2, bobContact].map(\.description))
    }

    @Test func ackForA2xxTakesTheInvitesCSeqAndANewBranch() throws {
        var dialog = try #require(Dialog(uac: invite, response: ok))
        let ack = dialog.makeACK(for: ok, via: via("a1"))
        #expect(ack.method == .ack)
        #expect(ack.uri == bobContact.uri)
        #expect(ack.cseq == CSeq(sequence: 314159, method: .ack))
        #expect(ack.topVia?.branch == "z9hG4bKa1")
        #expect(ack.headers.values("Route") == [p1, p2].map(\.description))
        #expect(ack.contacts == [])
        #expect(dialog.localSequence == 314159)
        // The ACK for a re-INVITE's 2xx takes that re-INVITE's number, not the next one.
        let reinvite = dialog.makeRequest(.invite, via: via("r1"))
        let reinviteOK = SIPResponse(replyingTo: reinvite, status: 200, toTag: "a6c85cf")
        let sdp = Array("v=0\r\n".utf8)
        let lateAnswer = dialog.makeACK(for: reinviteOK, via: via("a2"), body: sdp, contentType: "application/sdp")
        #expect(lateAnswer.cseq == CSeq(sequence: 314160, method: .ack))
        #expect(lateAnswer.body == sdp)
        #expect(lateAnswer.contentType == "application/sdp")
    }

    @Test func cancelAndACKDoNotAdvanceTheLocalSequence() throws {
        var dialog = try #require(Dialog(uac: invite, response: ok))
        #expect(dialog.makeRequest(.ack, via: via("a1")).cseq == CSeq(sequence: 314159, method: .ack))
        #expect(dialog.makeRequest(.cancel, via: via("c1")).cseq == CSeq(sequence: 314159, method: .cancel))
        #expect(dialog.localSequence == 314159)
    }

    @Test func refreshTargetFollowsThe2xxContact() throws {
        var dialog = try #require(Dialog(uac: invite, response: ok))
        let moved = NameAddress("<sip:bob@198.51.100.9>")!
        dialog.refreshTarget(with: response(200, contact: moved))
        #expect(dialog.remoteTarget == moved.uri)
        #expect(dialog.routeSet == [p1, p2])
        dialog.refreshTarget(with: response(200, contact: nil))
        #expect(dialog.remoteTarget == moved.uri)
    }
}

@Suite("Requests received in a dialog")
struct DialogReceiveTests {
    @Test func lowerCSeqIsOutOfOrderAndLeavesTheDialogAlone() throws {
        var dialog = try #require(Dialog(uas: receivedInvite, localTag: "a6c85cf", localContact: bobContact))
        let reinvite = fromAlice(.invite, cseq: 314160, contact: NameAddress("<sip:alice@198.51.100.1>")!)
        #expect(dialog.matches(reinvite))
        #expect(dialog.receive(reinvite) == .inOrder)
        #expect(dialog.remoteSequence == 314160)
        #expect(dialog.remoteTarget == SIPAnyURI("sip:alice@198.51.100.1"))
        let stale = fromAlice(.invite, cseq: 314159, contact: NameAddress("<sip:alice@203.0.113.66>")!)
        #expect(dialog.receive(stale) == .outOfOrder)
        #expect(dialog.remoteSequence == 314160)
        #expect(dialog.remoteTarget == SIPAnyURI("sip:alice@198.51.100.1"))
        #expect(dialog.receive(fromAlice(.ack, cseq: 314159)) == .inOrder)
        #expect(dialog.remoteSequence == 314160)
        #expect(dialog.receive(reinvite) == .inOrder)
    }

    @Test func onlyTargetRefreshRequestsMoveTheRemoteTarget() throws {
        var dialog = try #require(Dialog(uac: invite, response: ok))
        let elsewhere = NameAddress("<sip:bob@203.0.113.5>")!
        #expect(dialog.receive(fromBob(.info, cseq: 7, contact: elsewhere)) == .inOrder)
        #expect(dialog.remoteSequence == 7)
        #expect(dialog.remoteTarget == bobContact.uri)
        #expect(dialog.receive(fromBob(.update, cseq: 8, contact: elsewhere)) == .inOrder)
        #expect(dialog.remoteTarget == elsewhere.uri)
        #expect(dialog.receive(fromBob(.bye, cseq: 6)) == .outOfOrder)
    }

    @Test func identifiersMatchTheirDialog() throws {
        let dialog = try #require(Dialog(uac: invite, response: ok))
        let bye = fromBob(.bye, cseq: 1)
        #expect(DialogID.forIncoming(bye) == dialog.id)
        #expect(dialog.matches(bye))
        #expect(!dialog.matches(inDialog(.bye, cseq: 1, from: "Bob <sip:bob@biloxi.com>;tag=zzz", to: alice, contact: nil)))
        #expect(DialogID.forResponse(ok) == dialog.id)
        #expect(dialog.matches(ok))
        #expect(!dialog.matches(response(200, toTag: "other-fork")))
        #expect(DialogID.forIncoming(invite) == nil)
        #expect(DialogID.forResponse(SIPResponse(replyingTo: invite, status: 100)) == nil)
    }
}

@Suite("Dialog persistence")
struct DialogCodingTests {
    @Test func roundTripsThroughJSONWithURIsAsText() throws {
        var dialog = try #require(Dialog(uac: invite, response: ok))
        _ = dialog.receive(fromBob(.info, cseq: 7))
        let json = try JSONEncoder().encode(dialog)
        #expect(try JSONDecoder().decode(Dialog.self, from: json) == dialog)
        let text = try #require(String(data: json, encoding: .utf8))
        #expect(text.contains(#""remoteTarget":"sip:bob@192.0.2.4""#))
    }

    @Test func anUnparsableURIFailsToDecode() {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([SIPAnyURI].self, from: Data(#"["not a uri"]"#.utf8))
        }
    }
}
