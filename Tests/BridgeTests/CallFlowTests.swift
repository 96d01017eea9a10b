import BusSchema
import SIPCore
import Testing
@testable import Bridge

/// Drives a `CallFlow` by hand: a manual clock that runs the ring timers the flow starts, so
/// timeouts and durations are tested without waiting.
struct FlowDriver {
    var flow: CallFlow
    var now: ContinuousClock.Instant
    /// Ring timers the flow asked for: leg → when it fires.
    var timers: [LegID: ContinuousClock.Instant] = [:]
    var published: [EventBody] = []

    init(_ flow: CallFlow, at now: ContinuousClock.Instant) {
        self.flow = flow
        self.now = now
    }

    @discardableResult
    mutating func send(_ event: CallFlow.Event) -> [CallFlow.Action] {
        let actions = flow.handle(event, at: now)
        for action in actions {
            switch action {
            case .startRingTimer(let leg, let delay): timers[leg] = now + delay
            case .cancelRingTimer(let leg): timers[leg] = nil
            case .publish(let body): published.append(body)
            default: break
            }
        }
        return actions
    }

    /// Moves the clock on, firing the ring timers that fall due, in time order.
    mutating func advance(by duration: Duration) -> [CallFlow.Action] {
        let end = now + duration
        var actions: [CallFlow.Action] = []
        while let (leg, due) = timers.filter({ $0.value <= end }).min(by: { $0.value < $1.value }) {
            timers[leg] = nil
            now = due
            actions += send(.ringTimeout(leg: leg))
        }
        now = end
        return actions
    }

    var types: [String] { published.map(\.type) }
}

@Suite struct CallFlowTests {
    let t0 = ContinuousClock.now
    let offer = Array("v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n".utf8)
    let answer = Array("v=0\r\no=b 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=sendrecv\r\n".utf8)

    func inbound(_ targets: [BridgeTarget], mode: ForkMode = .serial, offer: [UInt8]? = nil) -> (FlowDriver, [CallFlow.Action]) {
        var driver = FlowDriver(CallFlow(inbound: offer ?? self.offer, callerURI: "sip:alice@x", at: t0, defaultRingTimeout: .seconds(30)), at: t0)
        let actions = driver.send(.decided(BridgeRoute(targets: targets, mode: mode)))
        return (driver, actions)
    }

    @Test func inboundCallIsBridgedWithTheCallersOfferAndEndsWhenTheCallerHangsUp() {
        var (driver, actions) = inbound([BridgeTarget(uri: "sip:bob@x")])
        #expect(actions == [.invite(leg: LegID(1), uri: "sip:bob@x", sdp: offer, callerId: nil, headers: [:], attempt: 1),
                            .startRingTimer(leg: LegID(1), after: .seconds(30))])
        #expect(driver.send(.provisional(leg: LegID(1), status: 180, sdp: nil)) ==
            [.publish(.callRinging(Ringing(leg: .b, status: 180, earlyMedia: false))), .provisionalToCaller(leg: LegID(1), status: 180, sdp: nil)])
        _ = driver.advance(by: .seconds(4))
        let answered = driver.send(.answered(leg: LegID(1), sdp: answer))
        #expect(answered.contains(.answerCaller(leg: LegID(1), sdp: answer)))
        #expect(answered.contains(.ack(leg: LegID(1), sdp: nil)))
        #expect(answered.contains(.persist))
        #expect(driver.flow.phase == .connected)
        _ = driver.advance(by: .seconds(60))
        let hangup = driver.send(.bye(leg: LegID(0)))
        #expect(hangup.contains(.bye(leg: LegID(1))))
        #expect(hangup.last == .finished)
        #expect(driver.types == ["call.ringing", "call.answered", "call.connected", "call.ended"])
        guard case .callEnded(let ended) = driver.published.last else { Issue.record("no call.ended"); return }
        #expect(ended.cause == .normalClearing && ended.by == .a)
        #expect(ended.talkMs == 60_000 && ended.durationMs == 64_000)
        guard case .callAnswered(let answeredEvent) = driver.published[1] else { Issue.record("no call.answered"); return }
        #expect(answeredEvent.setupMs == 4_000)
    }

    @Test func busyTargetMovesToTheNextOne() {
        var (driver, _) = inbound([BridgeTarget(uri: "sip:bob@x"), BridgeTarget(uri: "sip:carol@x", ringTimeoutMs: 5000)])
        let actions = driver.send(.failed(leg: LegID(1), status: 486, reason: "Busy Here"))
        #expect(actions.contains(.invite(leg: LegID(2), uri: "sip:carol@x", sdp: offer, callerId: nil, headers: [:], attempt: 2)))
        #expect(actions.contains(.startRingTimer(leg: LegID(2), after: .seconds(5))))
        #expect(driver.types == ["call.leg_failed"])
        guard case .callLegFailed(let failed) = driver.published[0] else { return }
        #expect(failed.cause == .busy)
    }

    @Test func ringTimeoutCancelsAndTheLastFailureAnswersTheCaller480() {
        var (driver, _) = inbound([BridgeTarget(uri: "sip:bob@x", ringTimeoutMs: 2000)])
        #expect(driver.advance(by: .milliseconds(1999)) == [])
        #expect(driver.advance(by: .milliseconds(1)) == [.cancel(leg: LegID(1))])
        let actions = driver.send(.failed(leg: LegID(1), status: 487, reason: "Request Terminated"))
        #expect(actions.contains(.rejectCaller(status: 480, reason: "Temporarily Unavailable")))
        #expect(actions.last == .finished)
        guard case .callEnded(let ended) = driver.published.last else { Issue.record("no call.ended"); return }
        #expect(ended.cause == .noAnswer && ended.status == 480)
    }

    @Test func everySerialTargetFailingReportsTheBestStatus() {
        var (driver, _) = inbound([BridgeTarget(uri: "sip:bob@x"), BridgeTarget(uri: "sip:carol@x")])
        driver.send(.failed(leg: LegID(1), status: 486, reason: "Busy Here"))
        let actions = driver.send(.failed(leg: LegID(2), status: 503, reason: "Service Unavailable"))
        // Busy ranks above a server failure (RFC 3261 §16.7).
        #expect(actions.contains(.rejectCaller(status: 486, reason: "Busy Here")))
    }

    /// A B leg's 5xx relayed as is would read as this bridge failing: the proxy in front would fail over
    /// to another bridge, which dials every target again.
    @Test func aBLegs5xxReachesTheCallerAs480NamingItInAReasonHeader() {
        var (driver, _) = inbound([BridgeTarget(uri: "sip:bob@x")])
        let actions = driver.send(.failed(leg: LegID(1), status: 503, reason: "Service Unavailable"))
        #expect(actions.contains(.rejectCaller(status: 480, reason: "Temporarily Unavailable",
                                               reasonHeader: "SIP;cause=503;text=\"Service Unavailable\"")))
        guard case .callEnded(let ended) = driver.published.last else { Issue.record("no call.ended"); return }
        #expect(ended.cause == .unavailable && ended.status == 480)
    }

    @Test func aBLegsChallengeIsNotRelayedTheNextTargetIsTriedAndTheCallerGets403() {
        var (driver, _) = inbound([BridgeTarget(uri: "sip:bob@x"), BridgeTarget(uri: "sip:carol@x")])
        let next = driver.send(.failed(leg: LegID(1), status: 407, reason: "Proxy Authentication Required"))
        #expect(next.contains(.invite(leg: LegID(2), uri: "sip:carol@x", sdp: offer, callerId: nil, headers: [:], attempt: 2)))
        let actions = driver.send(.failed(leg: LegID(2), status: 401, reason: "Unauthorized"))
        #expect(actions.contains(.rejectCaller(status: 403, reason: "Forbidden", reasonHeader: "SIP;cause=407;text=\"Proxy Authentication Required\"")))
    }

    @Test func aBLegsRedirectIsFollowedBeforeTheNextTarget() {
        var (driver, _) = inbound([BridgeTarget(uri: "sip:bob@x"), BridgeTarget(uri: "sip:carol@x")])
        let redirected = driver.send(.redirected(leg: LegID(1), status: 302, reason: "Moved Temporarily", targets: ["sip:dave@x", "sip:erin@x"]))
        #expect(redirected.contains(.invite(leg: LegID(2), uri: "sip:dave@x", sdp: offer, callerId: nil, headers: [:], attempt: 2)))
        let next = driver.send(.failed(leg: LegID(2), status: 486, reason: "Busy Here"))
        #expect(next.contains(.invite(leg: LegID(3), uri: "sip:erin@x", sdp: offer, callerId: nil, headers: [:], attempt: 3)))
        let last = driver.send(.failed(leg: LegID(3), status: 404, reason: "Not Found"))
        #expect(last.contains(.invite(leg: LegID(4), uri: "sip:carol@x", sdp: offer, callerId: nil, headers: [:], attempt: 4)))
        #expect(driver.send(.answered(leg: LegID(4), sdp: answer)).contains(.answerCaller(leg: LegID(4), sdp: answer)))
    }

    @Test func redirectsAreCappedPerCallAndAnUnfollowedOneReachesTheCallerAs480() {
        var (driver, _) = inbound([BridgeTarget(uri: "sip:bob@x")])
        let contacts = (1...6).map { "sip:r\($0)@x" }
        var actions = driver.send(.redirected(leg: LegID(1), status: 302, reason: "Moved Temporarily", targets: contacts))
        var dialled: [String] = []
        var leg = LegID(2)
        while let uri = actions.lazy.compactMap({ if case .invite(_, let uri, _, _, _, _) = $0 { uri } else { nil } }).first {
            dialled.append(uri)
            // Each redirect target redirects again: the call's limit still holds.
            actions = driver.send(.redirected(leg: leg, status: 301, reason: "Moved Permanently", targets: ["sip:more@x"]))
            leg = leg.next
        }
        #expect(dialled == Array(contacts.prefix(TargetAttempts.maxRedirectTargets)))
        #expect(actions.contains(.rejectCaller(status: 480, reason: "Temporarily Unavailable",
                                               reasonHeader: "SIP;cause=302;text=\"Moved Temporarily\"")))
    }

    @Test func aReasonHeadersTextIsAQuotedString() {
        let failure = CallerFailure(status: 500, reason: #"Bad "gateway" \ oops"#)
        #expect(failure.reasonHeader == #"SIP;cause=500;text="Bad \"gateway\" \\ oops""#)
        #expect(CallerFailure(status: 486, reason: "Busy Here").reasonHeader == nil)
    }

    @Test func parallelFirstAnswerWinsOthersAreCancelledAndLateAnswersHungUp() {
        var (driver, actions) = inbound([BridgeTarget(uri: "sip:bob@x"), BridgeTarget(uri: "sip:carol@x")], mode: .parallel)
        #expect(actions.filter { if case .invite = $0 { true } else { false } }.count == 2)
        let answered = driver.send(.answered(leg: LegID(2), sdp: answer))
        #expect(answered.contains(.cancel(leg: LegID(1))))
        #expect(driver.send(.answered(leg: LegID(1), sdp: answer)) == [.ack(leg: LegID(1), sdp: nil), .bye(leg: LegID(1))])
    }

    @Test func callerCancelWhileRingingCancelsEveryLeg() {
        var (driver, _) = inbound([BridgeTarget(uri: "sip:bob@x")])
        driver.send(.provisional(leg: LegID(1), status: 180, sdp: nil))
        let actions = driver.send(.callerCancelled)
        #expect(actions.contains(.cancel(leg: LegID(1))))
        #expect(actions.contains(.rejectCaller(status: 487, reason: "Request Terminated")))
        guard case .callEnded(let ended) = driver.published.last else { Issue.record("no call.ended"); return }
        #expect(ended.cause == .callerCancelled && ended.talkMs == 0)
        #expect(driver.flow.handle(.failed(leg: LegID(1), status: 487, reason: ""), at: t0) == [])
    }

    @Test func callerWithoutOfferGetsTheOfferOfBAndItsACKAnswersB() {
        var driver = FlowDriver(CallFlow(inbound: nil, callerURI: "sip:alice@x", at: t0, defaultRingTimeout: .seconds(30)), at: t0)
        let actions = driver.send(.decided(BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@x")])))
        #expect(actions.first == .invite(leg: LegID(1), uri: "sip:bob@x", sdp: nil, callerId: nil, headers: [:], attempt: 1))
        let answered = driver.send(.answered(leg: LegID(1), sdp: offer))
        #expect(answered.contains(.answerCaller(leg: LegID(1), sdp: offer)))
        #expect(!answered.contains(.ack(leg: LegID(1), sdp: nil)))
        #expect(driver.send(.callerACK(sdp: answer)) == [.ack(leg: LegID(1), sdp: answer)])
    }

    // MARK: - 3PCC (RFC 3725 Flow III)

    func originate(_ a: String = "sip:alice@x", _ b: String = "sip:bob@x") -> (FlowDriver, [CallFlow.Action]) {
        var driver = FlowDriver(CallFlow(originateAt: t0, defaultRingTimeout: .seconds(30)), at: t0)
        let actions = driver.send(.originate(Originate(a: Party(uri: a, ringTimeoutMs: 10_000), b: Party(uri: b))))
        return (driver, actions)
    }

    @Test func click2CallFollowsFlowIII() throws {
        var (driver, actions) = originate()
        #expect(actions == [.invite(leg: LegID(0), uri: "sip:alice@x", sdp: nil, callerId: nil, headers: [:], attempt: 1),
                            .startRingTimer(leg: LegID(0), after: .seconds(10))])
        _ = driver.advance(by: .seconds(3))
        let aAnswered = driver.send(.answered(leg: LegID(0), sdp: offer))
        // A's 200 is ACKed at once, with its media held, and B is called without SDP.
        let acks = aAnswered.compactMap { if case .ack(LegID(0), let sdp?) = $0 { sdp } else { nil } }
        #expect(acks.count == 1)
        let held = try #require(acks.first)
        #expect(SDPDirection.direction(of: held) == .inactive)
        // The held answer is A's offer, but under the bridge's own origin: A must not get its session back.
        let heldText = String(decoding: held, as: UTF8.self)
        #expect(heldText.contains("o=switchboard ") && !heldText.contains("o=a 1 "))
        #expect(heldText.contains("m=audio 4000 RTP/AVP 0"))
        #expect(aAnswered.contains(.invite(leg: LegID(1), uri: "sip:bob@x", sdp: nil, callerId: nil, headers: [:], attempt: 1)))
        _ = driver.advance(by: .seconds(5))
        let bAnswered = driver.send(.answered(leg: LegID(1), sdp: answer))
        #expect(bAnswered.contains(.reinvite(leg: LegID(0), sdp: answer)))
        #expect(driver.flow.phase == .joining)
        let joined = driver.send(.reinviteAnswered(leg: LegID(0), sdp: offer))
        #expect(joined.first == .ack(leg: LegID(1), sdp: offer))
        #expect(driver.flow.phase == .connected)
        #expect(driver.types == ["call.answered", "call.answered", "call.connected"])
        _ = driver.advance(by: .seconds(10))
        let hangup = driver.send(.hangup)
        #expect(hangup.contains(.bye(leg: LegID(0))) && hangup.contains(.bye(leg: LegID(1))))
        guard case .callEnded(let ended) = driver.published.last else { Issue.record("no call.ended"); return }
        #expect(ended.cause == .hangupCommand && ended.by == .command && ended.talkMs == 10_000)
    }

    @Test func click2CallWhereARejectsNeverCallsB() {
        var (driver, _) = originate()
        let actions = driver.send(.failed(leg: LegID(0), status: 603, reason: "Decline"))
        #expect(!actions.contains { if case .invite = $0 { true } else { false } })
        guard case .callEnded(let ended) = driver.published.last else { Issue.record("no call.ended"); return }
        #expect(ended.cause == .rejected && ended.status == 603 && ended.by == .a)
    }

    @Test func click2CallWhereANeverAnswersTimesOut() {
        var (driver, _) = originate()
        #expect(driver.advance(by: .seconds(10)) == [.cancel(leg: LegID(0))])
        driver.send(.failed(leg: LegID(0), status: 487, reason: "Request Terminated"))
        guard case .callEnded(let ended) = driver.published.last else { Issue.record("no call.ended"); return }
        #expect(ended.cause == .noAnswer)
    }

    @Test func click2CallWhereBIsBusyHangsUpA() {
        var (driver, _) = originate()
        driver.send(.answered(leg: LegID(0), sdp: offer))
        let actions = driver.send(.failed(leg: LegID(1), status: 486, reason: "Busy Here"))
        #expect(actions.contains(.bye(leg: LegID(0))))
        guard case .callEnded(let ended) = driver.published.last else { Issue.record("no call.ended"); return }
        #expect(ended.cause == .busy && ended.by == .b)
    }

    func connected() -> FlowDriver {
        var (driver, _) = originate()
        driver.send(.answered(leg: LegID(0), sdp: offer))
        driver.send(.answered(leg: LegID(1), sdp: answer))
        driver.send(.reinviteAnswered(leg: LegID(0), sdp: offer))
        return driver
    }

    @Test func holdReinvitesWithSendonlyAndResumeWithSendrecv() {
        var driver = connected()
        let hold = driver.send(.hold(leg: .b, on: true))
        guard case .reinvite(LegID(1), let sdp?) = hold.first else { Issue.record("no re-INVITE: \(hold)"); return }
        #expect(SDPDirection.direction(of: sdp) == .sendonly)
        #expect(driver.send(.hold(leg: .b, on: true)) == [])  // one at a time
        driver.send(.reinviteAnswered(leg: LegID(1), sdp: answer))
        #expect(driver.flow.legs[LegID(1)]?.held == true)
        let resume = driver.send(.hold(leg: .b, on: false))
        guard case .reinvite(LegID(1), let resumed?) = resume.first else { Issue.record("no re-INVITE"); return }
        #expect(SDPDirection.direction(of: resumed) == .sendrecv)
        driver.send(.reinviteAnswered(leg: LegID(1), sdp: answer))
        #expect(driver.types.suffix(2) == ["call.held", "call.resumed"])
    }

    /// RFC 3261 §14.1: a hold re-INVITE that meets 491 goes again after the back-off, with the same SDP; after
    /// `maxGlareRetries` 491s in a row the hold is given up and the call goes on.
    @Test func aHoldThatMeets491IsRetriedAfterTheBackOff() {
        var driver = connected()
        let hold = driver.send(.hold(leg: .b, on: true))
        guard case .reinvite(LegID(1), let sdp?) = hold.first else { Issue.record("no re-INVITE: \(hold)"); return }
        for _ in 0..<CallFlow.maxGlareRetries {
            #expect(driver.send(.reinviteFailed(leg: LegID(1), status: 491)) == [.startGlareTimer(leg: LegID(1))])
            #expect(driver.send(.glareTimer(leg: LegID(1))) == [.reinvite(leg: LegID(1), sdp: sdp)])
        }
        #expect(driver.send(.reinviteFailed(leg: LegID(1), status: 491)).isEmpty)
        #expect(driver.send(.glareTimer(leg: LegID(1))).isEmpty)
        #expect(driver.flow.phase == .connected)
        // The next hold starts a fresh count, and its answer publishes it.
        _ = driver.send(.hold(leg: .b, on: true))
        #expect(driver.send(.reinviteFailed(leg: LegID(1), status: 491)) == [.startGlareTimer(leg: LegID(1))])
        _ = driver.send(.glareTimer(leg: LegID(1)))
        driver.send(.reinviteAnswered(leg: LegID(1), sdp: answer))
        #expect(driver.types.last == "call.held")
    }

    /// The 3PCC join's re-INVITE of A that meets 491 is retried rather than ending the call.
    @Test func aJoinThatMeets491IsRetried() {
        var (driver, _) = originate()
        driver.send(.answered(leg: LegID(0), sdp: offer))
        driver.send(.answered(leg: LegID(1), sdp: answer))
        #expect(driver.send(.reinviteFailed(leg: LegID(0), status: 491)) == [.startGlareTimer(leg: LegID(0))])
        #expect(driver.send(.glareTimer(leg: LegID(0))) == [.reinvite(leg: LegID(0), sdp: answer)])
        let joined = driver.send(.reinviteAnswered(leg: LegID(0), sdp: offer))
        #expect(joined.first == .ack(leg: LegID(1), sdp: offer))
        #expect(driver.flow.phase == .connected)
    }

    @Test func blindTransferReleasesTheOtherLegAndJoinsTheTarget() {
        var driver = connected()
        let actions = driver.send(.transfer(keep: .a, target: "sip:carol@x"))
        #expect(actions.first == .bye(leg: LegID(1)))
        #expect(actions.contains(.invite(leg: LegID(2), uri: "sip:carol@x", sdp: nil, callerId: nil, headers: [:], attempt: 1)))
        driver.send(.answered(leg: LegID(2), sdp: answer))
        #expect(driver.flow.phase == .joining)
        let joined = driver.send(.reinviteAnswered(leg: LegID(0), sdp: offer))
        #expect(joined.first == .ack(leg: LegID(2), sdp: offer))
        #expect(driver.flow.phase == .connected)
        #expect(driver.flow.answeredLeg(.b) == LegID(2))
    }

    @Test func aPeerHoldReinviteIsPublished() {
        var driver = connected()
        let actions = driver.send(.peerOffer(leg: LegID(0), sdp: SDPDirection.sendonly.applied(to: offer)))
        #expect(actions == [.publish(.callHeld(HoldChange(leg: .a, by: .a)))])
    }

    @Test func aLegLostWithoutBYEEndsTheCall() {
        var driver = connected()
        let actions = driver.send(.lost(leg: LegID(1)))
        #expect(actions.contains(.bye(leg: LegID(0))))
        #expect(!actions.contains(.bye(leg: LegID(1))))
        guard case .callEnded(let ended) = driver.published.last else { Issue.record("no call.ended"); return }
        #expect(ended.cause == .failed && ended.by == .bridge)
    }

    @Test func theDurationLimitEndsAConnectedCall() {
        var driver = connected()
        let actions = driver.send(.durationLimit)
        #expect(actions.contains(.bye(leg: LegID(0))) && actions.contains(.bye(leg: LegID(1))))
        guard case .callEnded(let ended) = driver.published.last else { Issue.record("no call.ended"); return }
        #expect(ended.cause == .limit && ended.by == .bridge)
    }

    @Test func shutdownEndsRingingCallsWith503() {
        var (driver, _) = inbound([BridgeTarget(uri: "sip:bob@x")])
        let actions = driver.send(.shutdown)
        #expect(actions.contains(.rejectCaller(status: 503, reason: "Service Unavailable")))
        #expect(actions.contains(.cancel(leg: LegID(1))))
    }
}
