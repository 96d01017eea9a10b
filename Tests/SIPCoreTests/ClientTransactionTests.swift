import SIPCore
import Testing

/// Stands in for the owner of a client transaction: carries out its actions on a virtual clock, running the timers it
/// starts and cancels. `advance(by:firing:)` fires the due timers in deadline order into the transaction, and the log
/// records when each action happened.
struct ManualTimerClock {
    private(set) var now: Duration = .zero
    /// Every action carried out, with the virtual time it was carried out at.
    private(set) var log: [(at: Duration, action: ClientTransactionAction)] = []
    /// Running timers in the order started, so that timers due at the same instant fire in that order.
    private var running: [(timer: ClientTimerID, deadline: Duration)] = []

    mutating func perform(_ actions: [ClientTransactionAction]) {
        for action in actions {
            log.append((now, action))
            switch action {
            case .startTimer(let timer, let delay):
                running.removeAll { $0.timer == timer }
                running.append((timer, now + delay))
            case .cancelTimer(let timer):
                running.removeAll { $0.timer == timer }
            case .terminated:
                running = []
            case .send, .deliver:
                break
            }
        }
    }

    mutating func advance(by duration: Duration, firing transaction: inout some TimerDriven) {
        let end = now + duration
        while let due = running.filter({ $0.deadline <= end }).min(by: { $0.deadline < $1.deadline }) {
            running.removeAll { $0.timer == due.timer }
            now = due.deadline
            perform(transaction.timerFired(due.timer))
        }
        now = end
    }

    /// The times between consecutive sends of a request.
    var sendIntervals: [Duration] {
        let times = log.compactMap { entry -> Duration? in
            if case .send = entry.action { entry.at } else { nil }
        }
        return zip(times.dropFirst(), times).map { $0 - $1 }
    }

    /// The last action carried out and when.
    var last: (at: Duration, action: ClientTransactionAction)? { log.last }
}

protocol TimerDriven {
    mutating func timerFired(_ timer: ClientTimerID) -> [ClientTransactionAction]
}

extension ClientInviteTransaction: TimerDriven {}
extension ClientNonInviteTransaction: TimerDriven {}

private let invite = SIPRequest(
    method: .invite, uri: .sip(SIPURI(user: "bob", host: "biloxi.com")),
    headers: [
        ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8"),
        ("Max-Forwards", "70"),
        ("Route", "<sip:p1.atlanta.com;lr>"),
        ("Route", "<sip:p2.biloxi.com;lr>"),
        ("To", "Bob <sip:bob@biloxi.com>"),
        ("From", "Alice <sip:alice@atlanta.com>;tag=1928301774"),
        ("Call-ID", "a84b4c76e66710@pc33.atlanta.com"),
        ("CSeq", "314159 INVITE"),
        ("Contact", "<sip:alice@pc33.atlanta.com>"),
        ("Content-Type", "application/sdp"),
    ],
    body: Array("v=0\r\n".utf8))
private let ringing = SIPResponse(replyingTo: invite, status: 180, toTag: "a6c85cf")
private let busy = SIPResponse(replyingTo: invite, status: 486, toTag: "a6c85cf")
private let ok = SIPResponse(replyingTo: invite, status: 200, toTag: "a6c85cf")

@Suite("Client timers")
struct ClientTimersTests {
    @Test func defaultsAndDerivedValues() {
        let timers = SIPTimers()
        #expect(timers.timerA == .milliseconds(500))
        #expect(timers.timerB == .seconds(32))
        #expect(timers.timerD(reliable: false) == .seconds(32))
        #expect(timers.timerD(reliable: true) == .zero)
        #expect(timers.timerE == .milliseconds(500))
        #expect(timers.timerF == .seconds(32))
        #expect(timers.timerK(reliable: false) == .seconds(5))
        #expect(timers.timerK(reliable: true) == .zero)
        #expect(timers.timerM == .seconds(32))
    }

    @Test func timerDStaysAt32SecondsWhenT1Shrinks() {
        let timers = SIPTimers(t1: .milliseconds(100))
        #expect(timers.timerB == .milliseconds(6400))
        #expect(timers.timerD(reliable: false) == .seconds(32))
    }
}

@Suite("INVITE client transaction")
struct ClientInviteTransactionTests {
    /// The ACK of RFC 3261 §17.1.1.3 for `busy`: the INVITE's fields, the response's To.
    private static let ackForBusy = SIPRequest(
        method: .ack, uri: invite.uri,
        headers: [
            ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8"),
            ("Max-Forwards", "70"),
            ("From", "Alice <sip:alice@atlanta.com>;tag=1928301774"),
            ("To", "Bob <sip:bob@biloxi.com>;tag=a6c85cf"),
            ("Call-ID", "a84b4c76e66710@pc33.atlanta.com"),
            ("CSeq", "314159 ACK"),
            ("Route", "<sip:p1.atlanta.com;lr>"),
            ("Route", "<sip:p2.biloxi.com;lr>"),
        ])

    @Test func timerARetransmitsWithDoublingIntervalsUntilTimerB() {
        var tx = ClientInviteTransaction(request: invite, reliable: false)
        var clock = ManualTimerClock()
        clock.perform(tx.start())
        #expect(clock.log.map(\.action) == [
            .send(invite), .startTimer(.timerA, after: .milliseconds(500)), .startTimer(.timerB, after: .seconds(32)),
        ])
        clock.advance(by: .seconds(40), firing: &tx)
        #expect(clock.sendIntervals == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16)])
        #expect(clock.last?.at == .seconds(32))
        #expect(clock.last?.action == .terminated(.timeout))
        #expect(tx.state == .terminated)
    }

    @Test func reliableTransportSendsOnceAndTimesOut() {
        var tx = ClientInviteTransaction(request: invite, reliable: true)
        var clock = ManualTimerClock()
        clock.perform(tx.start())
        #expect(clock.log.map(\.action) == [.send(invite), .startTimer(.timerB, after: .seconds(32))])
        clock.advance(by: .seconds(40), firing: &tx)
        #expect(clock.sendIntervals == [])
        #expect(clock.last?.at == .seconds(32))
        #expect(clock.last?.action == .terminated(.timeout))
    }

    @Test func provisionalStopsRetransmissionAndTimerB() {
        var tx = ClientInviteTransaction(request: invite, reliable: false)
        var clock = ManualTimerClock()
        clock.perform(tx.start())
        clock.advance(by: .seconds(1), firing: &tx)
        #expect(tx.receive(ringing) == [.cancelTimer(.timerA), .cancelTimer(.timerB), .deliver(ringing)])
        #expect(tx.state == .proceeding)
        #expect(tx.receive(ringing) == [.deliver(ringing)])
        #expect(tx.timerFired(.timerA) == [])
        #expect(tx.timerFired(.timerB) == [])
        #expect(tx.state == .proceeding)
    }

    @Test func failureIsAcknowledgedAndItsRetransmissionsAbsorbedUntilTimerD() {
        var tx = ClientInviteTransaction(request: invite, reliable: false)
        var clock = ManualTimerClock()
        clock.perform(tx.start())
        clock.perform(tx.receive(ringing))
        let actions = tx.receive(busy)
        #expect(actions == [.send(Self.ackForBusy), .deliver(busy), .startTimer(.timerD, after: .seconds(32))])
        #expect(tx.state == .completed)
        clock.perform(actions)
        #expect(tx.receive(busy) == [.send(Self.ackForBusy)])
        #expect(tx.receive(ringing) == [])
        #expect(tx.receive(ok) == [])
        clock.advance(by: .milliseconds(31_999), firing: &tx)
        #expect(tx.state == .completed)
        clock.advance(by: .milliseconds(1), firing: &tx)
        #expect(clock.last?.action == .terminated(.normal))
        #expect(tx.state == .terminated)
        #expect(tx.receive(busy) == [])
    }

    @Test func failureOverTCPIsAcknowledgedAndTerminatesAtOnce() {
        var tx = ClientInviteTransaction(request: invite, reliable: true)
        _ = tx.start()
        #expect(tx.receive(busy) == [.cancelTimer(.timerB), .send(Self.ackForBusy), .deliver(busy), .terminated(.normal)])
        #expect(tx.state == .terminated)
    }

    @Test func successIsAcceptedAndItsRetransmissionsDeliveredUntilTimerM() {
        var tx = ClientInviteTransaction(request: invite, reliable: false, timers: SIPTimers(t1: .milliseconds(100)))
        var clock = ManualTimerClock()
        clock.perform(tx.start())
        let actions = tx.receive(ok)
        #expect(actions == [
            .cancelTimer(.timerA), .cancelTimer(.timerB), .deliver(ok), .startTimer(.timerM, after: .milliseconds(6400)),
        ])
        #expect(tx.state == .accepted)
        clock.perform(actions)
        // RFC 6026 §8.4: each 2xx, retransmitted or from another fork, goes to the TU, which sends the ACK.
        #expect(tx.receive(ok) == [.deliver(ok)])
        let forked = SIPResponse(replyingTo: invite, status: 200, toTag: "other-fork")
        #expect(tx.receive(forked) == [.deliver(forked)])
        #expect(tx.receive(busy) == [])
        #expect(tx.receive(ringing) == [])
        clock.advance(by: .milliseconds(6400), firing: &tx)
        #expect(clock.last?.action == .terminated(.normal))
        #expect(tx.state == .terminated)
        #expect(tx.receive(ok) == [])
    }

    @Test func cancelledInviteWithoutFinalResponseTimesOutAfter64T1() {
        var tx = ClientInviteTransaction(request: invite, reliable: false)
        var clock = ManualTimerClock()
        clock.perform(tx.start())
        clock.perform(tx.receive(ringing))
        clock.advance(by: .seconds(60), firing: &tx)
        #expect(tx.state == .proceeding)
        clock.perform(tx.cancelSent())
        #expect(tx.cancelSent() == [])
        clock.advance(by: .milliseconds(31_999), firing: &tx)
        #expect(tx.state == .proceeding)
        clock.advance(by: .milliseconds(1), firing: &tx)
        #expect(clock.last?.action == .terminated(.timeout))
        #expect(clock.last?.at == .seconds(92))
        #expect(tx.state == .terminated)
    }

    @Test func finalResponseAfterCancelStopsTheGuard() {
        var tx = ClientInviteTransaction(request: invite, reliable: false)
        var clock = ManualTimerClock()
        clock.perform(tx.start())
        clock.perform(tx.receive(ringing))
        #expect(tx.cancelSent() == [.startTimer(.cancelled, after: .seconds(32))])
        let terminated = SIPResponse(replyingTo: invite, status: 487, toTag: "a6c85cf")
        #expect(tx.receive(terminated).prefix(1) == [.cancelTimer(.cancelled)])
        #expect(tx.state == .completed)
        #expect(tx.timerFired(.cancelled) == [])
        #expect(tx.cancelSent() == [])
    }

    @Test func staleTimersAreIgnoredAndTransportErrorsTerminate() {
        var tx = ClientInviteTransaction(request: invite, reliable: false)
        _ = tx.start()
        #expect(tx.timerFired(.timerD) == [])
        #expect(tx.timerFired(.timerM) == [])
        #expect(tx.transportError() == [.terminated(.transportError)])
        #expect(tx.transportError() == [])
        #expect(tx.timerFired(.timerA) == [])
    }

    @Test func cancelCopiesTheInvitesTransactionFields() {
        var forwarded = invite
        forwarded.headers.set(
            "Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8, SIP/2.0/UDP lb.atlanta.com;branch=z9hG4bKlb")
        let cancel = SIPRequest(cancelling: forwarded)
        #expect(cancel == SIPRequest(
            method: .cancel, uri: invite.uri,
            headers: [
                ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8"),
                ("Max-Forwards", "70"),
                ("From", "Alice <sip:alice@atlanta.com>;tag=1928301774"),
                ("To", "Bob <sip:bob@biloxi.com>"),
                ("Call-ID", "a84b4c76e66710@pc33.atlanta.com"),
                ("CSeq", "314159 CANCEL"),
                ("Route", "<sip:p1.atlanta.com;lr>"),
                ("Route", "<sip:p2.biloxi.com;lr>"),
            ]))
        #expect(TransactionKey.forCancelledInvite(cancel) == TransactionKey.forServer(invite))
    }
}

@Suite("Non-INVITE client transaction")
struct ClientNonInviteTransactionTests {
    private static let bye = SIPRequest(
        method: .bye, uri: .sip(SIPURI(user: "bob", host: "192.0.2.4")),
        headers: [
            ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds10"),
            ("Max-Forwards", "70"),
            ("From", "Alice <sip:alice@atlanta.com>;tag=1928301774"),
            ("To", "Bob <sip:bob@biloxi.com>;tag=a6c85cf"),
            ("Call-ID", "a84b4c76e66710@pc33.atlanta.com"),
            ("CSeq", "231 BYE"),
        ])
    private static let trying = SIPResponse(replyingTo: bye, status: 100)
    private static let byeOK = SIPResponse(replyingTo: bye, status: 200)

    @Test func timerEDoublesUpToT2UntilTimerF() {
        var tx = ClientNonInviteTransaction(request: Self.bye, reliable: false)
        var clock = ManualTimerClock()
        clock.perform(tx.start())
        #expect(clock.log.map(\.action) == [
            .send(Self.bye), .startTimer(.timerE, after: .milliseconds(500)), .startTimer(.timerF, after: .seconds(32)),
        ])
        clock.advance(by: .seconds(40), firing: &tx)
        let capped = Array(repeating: Duration.seconds(4), count: 6)
        #expect(clock.sendIntervals == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4)] + capped)
        #expect(clock.last?.at == .seconds(32))
        #expect(clock.last?.action == .terminated(.timeout))
        #expect(tx.state == .terminated)
    }

    @Test func provisionalMovesTimerEToT2AndTimerFStillTimesOut() {
        var tx = ClientNonInviteTransaction(request: Self.bye, reliable: false)
        var clock = ManualTimerClock()
        clock.perform(tx.start())
        clock.advance(by: .seconds(1), firing: &tx)
        #expect(tx.receive(Self.trying) == [.deliver(Self.trying)])
        #expect(tx.state == .proceeding)
        clock.advance(by: .seconds(40), firing: &tx)
        // Trying would have waited 2 s after the 1 s interval; proceeding waits T2 every time.
        #expect(clock.sendIntervals.prefix(4) == [.milliseconds(500), .seconds(1), .seconds(4), .seconds(4)])
        #expect(clock.last?.at == .seconds(32))
        #expect(clock.last?.action == .terminated(.timeout))
    }

    @Test func finalResponseIsDeliveredOnceAndTimerKAbsorbsRetransmissions() {
        var tx = ClientNonInviteTransaction(request: Self.bye, reliable: false)
        var clock = ManualTimerClock()
        clock.perform(tx.start())
        let actions = tx.receive(Self.byeOK)
        #expect(actions == [
            .cancelTimer(.timerE), .cancelTimer(.timerF), .deliver(Self.byeOK), .startTimer(.timerK, after: .seconds(5)),
        ])
        #expect(tx.state == .completed)
        clock.perform(actions)
        #expect(tx.receive(Self.byeOK) == [])
        #expect(tx.receive(Self.trying) == [])
        #expect(tx.timerFired(.timerE) == [])
        clock.advance(by: .seconds(5), firing: &tx)
        #expect(clock.last?.at == .seconds(5))
        #expect(clock.last?.action == .terminated(.normal))
        #expect(tx.state == .terminated)
    }

    @Test func overTCPThereIsNoTimerEAndTimerKIsZero() {
        var tx = ClientNonInviteTransaction(request: Self.bye, reliable: true)
        #expect(tx.start() == [.send(Self.bye), .startTimer(.timerF, after: .seconds(32))])
        #expect(tx.receive(Self.trying) == [.deliver(Self.trying)])
        #expect(tx.receive(Self.byeOK) == [.cancelTimer(.timerF), .deliver(Self.byeOK), .terminated(.normal)])
        #expect(tx.state == .terminated)
    }

    @Test func transportErrorTerminates() {
        var tx = ClientNonInviteTransaction(request: Self.bye, reliable: false)
        _ = tx.start()
        #expect(tx.transportError() == [.terminated(.transportError)])
        #expect(tx.transportError() == [])
        #expect(tx.receive(Self.byeOK) == [])
    }
}

@Suite("Client transaction matching")
struct ClientTransactionKeyTests {
    @Test func responsesMatchOnBranchAndCSeqMethod() throws {
        let inviteKey = try #require(TransactionKey.forClient(request: invite))
        #expect(TransactionKey.forClient(response: ringing) == inviteKey)
        #expect(TransactionKey.forClient(response: busy) == inviteKey)
        let cancel = SIPRequest(cancelling: invite)
        let cancelKey = try #require(TransactionKey.forClient(request: cancel))
        #expect(cancelKey != inviteKey)
        #expect(TransactionKey.forClient(response: SIPResponse(replyingTo: cancel, status: 200)) == cancelKey)
    }

    @Test func clientAndServerKeysNeverMeet() {
        #expect(TransactionKey.forClient(request: invite) != TransactionKey.forServer(invite))
    }

    @Test func noKeyWithoutBranchOrCSeq() {
        var noBranch = ok
        noBranch.headers.set("Via", "SIP/2.0/UDP pc33.atlanta.com")
        #expect(TransactionKey.forClient(response: noBranch) == nil)
        var noCSeq = ok
        noCSeq.headers.remove("CSeq")
        #expect(TransactionKey.forClient(response: noCSeq) == nil)
    }
}
