import SIPCore
import Testing

private func request(_ method: SIPMethod, branch: String = "z9hG4bK74bf9", cseqMethod: SIPMethod? = nil, toTag: String? = nil) -> SIPRequest {
    SIPRequest(
        method: method, uri: .sip(SIPURI(user: "bob", host: "biloxi.com")),
        headers: [
            ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=\(branch)"),
            ("Max-Forwards", "70"),
            ("To", "Bob <sip:bob@biloxi.com>" + (toTag.map { ";tag=\($0)" } ?? "")),
            ("From", "Alice <sip:alice@atlanta.com>;tag=9fxced76sl"),
            ("Call-ID", "3848276298220188511@atlanta.com"),
            ("CSeq", "1 \(cseqMethod ?? method)"),
        ])
}

private let invite = request(.invite)
private let trying = SIPResponse(replyingTo: invite, status: 100)
private let ringing = SIPResponse(replyingTo: invite, status: 180, toTag: "t1")
private let busy = SIPResponse(replyingTo: invite, status: 486, toTag: "t1")
private let ok = SIPResponse(replyingTo: invite, status: 200, toTag: "t1")

@Suite("SIP timers")
struct SIPTimersTests {
    @Test func defaultsAndDerivedValues() {
        let timers = SIPTimers()
        #expect(timers.t1 == .milliseconds(500))
        #expect(timers.t2 == .seconds(4))
        #expect(timers.t4 == .seconds(5))
        #expect(timers.timerG == .milliseconds(500))
        #expect(timers.timerH == .seconds(32))
        #expect(timers.timerL == .seconds(32))
        #expect(timers.timerI(reliable: false) == .seconds(5))
        #expect(timers.timerI(reliable: true) == .zero)
        #expect(timers.timerJ(reliable: false) == .seconds(32))
        #expect(timers.timerJ(reliable: true) == .zero)
    }
}

@Suite("INVITE server transaction")
struct ServerInviteTransactionTests {
    @Test func failureOverUDPRetransmitsUntilACKThenWaitsTimerI() {
        var tx = ServerInviteTransaction(reliable: false)
        #expect(tx.state == .proceeding)
        #expect(tx.receivedRetransmission() == [])
        #expect(tx.sendProvisional(trying) == [.send(trying)])
        #expect(tx.sendProvisional(ringing) == [.send(ringing)])
        #expect(tx.receivedRetransmission() == [.send(ringing)])
        #expect(tx.sendFinal(busy) == [.send(busy), .startTimer(.timerG, after: .milliseconds(500)), .startTimer(.timerH, after: .seconds(32))])
        #expect(tx.state == .completed)
        #expect(tx.receivedRetransmission() == [.send(busy)])
        #expect(tx.timerFired(.timerG) == [.send(busy), .startTimer(.timerG, after: .seconds(1))])
        #expect(tx.timerFired(.timerG) == [.send(busy), .startTimer(.timerG, after: .seconds(2))])
        #expect(tx.timerFired(.timerG) == [.send(busy), .startTimer(.timerG, after: .seconds(4))])
        #expect(tx.timerFired(.timerG) == [.send(busy), .startTimer(.timerG, after: .seconds(4))])
        #expect(tx.sendProvisional(ringing) == [])
        #expect(tx.receivedACK() == [.cancelTimer(.timerG), .cancelTimer(.timerH), .startTimer(.timerI, after: .seconds(5))])
        #expect(tx.state == .confirmed)
        #expect(tx.receivedACK() == [])
        #expect(tx.receivedRetransmission() == [])
        #expect(tx.timerFired(.timerG) == [])
        #expect(tx.timerFired(.timerI) == [.terminated(.normal)])
        #expect(tx.state == .terminated)
    }

    @Test func failureOverTCPHasNoTimerGAndTerminatesOnACK() {
        var tx = ServerInviteTransaction(reliable: true)
        #expect(tx.sendFinal(busy) == [.send(busy), .startTimer(.timerH, after: .seconds(32))])
        #expect(tx.receivedACK() == [.cancelTimer(.timerH), .terminated(.normal)])
        #expect(tx.state == .terminated)
    }

    @Test func timerHReportsTheMissingACK() {
        var tx = ServerInviteTransaction(reliable: false)
        _ = tx.sendFinal(busy)
        #expect(tx.timerFired(.timerH) == [.terminated(.timeout)])
        #expect(tx.state == .terminated)
        #expect(tx.receivedACK() == [])
    }

    @Test func successGoesToAcceptedAndAbsorbsRetransmissions() {
        var tx = ServerInviteTransaction(reliable: false, timers: SIPTimers(t1: .milliseconds(100)))
        _ = tx.sendProvisional(ringing)
        #expect(tx.sendFinal(ok) == [.send(ok), .startTimer(.timerL, after: .milliseconds(6400))])
        #expect(tx.state == .accepted)
        #expect(tx.receivedRetransmission() == [])
        #expect(tx.receivedACK() == [])
        #expect(tx.sendFinal(ok) == [.send(ok)])
        #expect(tx.sendFinal(busy) == [])
        #expect(tx.timerFired(.timerL) == [.terminated(.normal)])
        #expect(tx.state == .terminated)
    }

    @Test func transportErrorTerminates() {
        var tx = ServerInviteTransaction(reliable: true)
        #expect(tx.transportError() == [.terminated(.transportError)])
        #expect(tx.transportError() == [])
        #expect(tx.sendFinal(ok) == [])
    }
}

@Suite("Non-INVITE server transaction")
struct ServerNonInviteTransactionTests {
    private static let bye = request(.bye, toTag: "t1")
    private static let byeOK = SIPResponse(replyingTo: bye, status: 200)

    @Test func overUDPAbsorbsRetransmissionsUntilTimerJ() {
        var tx = ServerNonInviteTransaction(reliable: false)
        #expect(tx.state == .trying)
        #expect(tx.receivedRetransmission() == [])
        let progress = SIPResponse(replyingTo: Self.bye, status: 100)
        #expect(tx.sendProvisional(progress) == [.send(progress)])
        #expect(tx.state == .proceeding)
        #expect(tx.receivedRetransmission() == [.send(progress)])
        #expect(tx.sendFinal(Self.byeOK) == [.send(Self.byeOK), .startTimer(.timerJ, after: .seconds(32))])
        #expect(tx.state == .completed)
        #expect(tx.receivedRetransmission() == [.send(Self.byeOK)])
        #expect(tx.sendFinal(SIPResponse(replyingTo: Self.bye, status: 500)) == [])
        #expect(tx.timerFired(.timerG) == [])
        #expect(tx.timerFired(.timerJ) == [.terminated(.normal)])
        #expect(tx.state == .terminated)
    }

    @Test func overTCPTerminatesWithTheFinalResponse() {
        var tx = ServerNonInviteTransaction(reliable: true)
        #expect(tx.sendFinal(Self.byeOK) == [.send(Self.byeOK), .terminated(.normal)])
        #expect(tx.state == .terminated)
        #expect(tx.receivedRetransmission() == [])
    }

    @Test func transportErrorTerminates() {
        var tx = ServerNonInviteTransaction(reliable: false)
        _ = tx.sendFinal(Self.byeOK)
        #expect(tx.transportError() == [.terminated(.transportError)])
    }
}

@Suite("Transaction matching")
struct TransactionKeyTests {
    @Test func ackMatchesItsInviteAndCancelIsSeparate() throws {
        let inviteKey = try #require(TransactionKey.forServer(invite))
        #expect(TransactionKey.forServer(request(.ack, toTag: "t1")) == inviteKey)
        let cancel = request(.cancel)
        #expect(TransactionKey.forServer(cancel) != inviteKey)
        #expect(TransactionKey.forCancelledInvite(cancel) == inviteKey)
        #expect(TransactionKey.forServer(request(.bye)) != inviteKey)
        #expect(TransactionKey.forServer(request(.invite, branch: "z9hG4bKother")) != inviteKey)
    }

    @Test func sentByIsNormalised() throws {
        var other = invite
        other.headers.set("Via", "SIP/2.0/UDP PC33.atlanta.com:5060;branch=z9hG4bK74bf9")
        #expect(TransactionKey.forServer(other) == TransactionKey.forServer(invite))
        other.headers.set("Via", "SIP/2.0/UDP pc33.atlanta.com:5070;branch=z9hG4bK74bf9")
        #expect(TransactionKey.forServer(other) != TransactionKey.forServer(invite))
    }

    @Test func rfc2543RequestsMatchOnTheirFields() throws {
        let legacyInvite = request(.invite, branch: "74bf9")
        let key = try #require(TransactionKey.forServer(legacyInvite))
        #expect(TransactionKey.forServer(legacyInvite) == key)
        #expect(TransactionKey.forServer(request(.ack, branch: "74bf9", cseqMethod: .ack, toTag: "t1")) == key)
        var nextInvite = legacyInvite
        nextInvite.headers.set("CSeq", "2 INVITE")
        #expect(TransactionKey.forServer(nextInvite) != key)
        var noVia = legacyInvite
        noVia.headers.remove("Via")
        #expect(TransactionKey.forServer(noVia) == nil)
    }
}
