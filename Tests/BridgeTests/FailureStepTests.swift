import BusSchema
import NIOCore
import SIPCore
import Testing
@testable import Bridge

/// The failure step of the decision protocol on the B2BUA's seams (embedded loop, fake bus and wire): a `bridge`
/// decision with `on_failure: ask` whose targets all fail sends the workers a second `decision.request` with the
/// failure, and their answer (or the fallback) is what the caller gets next.
@Suite struct FailureStepTests {
    typealias Harness = SIPSideHarness

    /// Caller → bridge → bob (ringing, then 486): returns the harness with the step's request out.
    func bobBusy(ask: Bool = true) throws -> (Harness, callId: String) {
        let harness = Harness()
        harness.receive(.request(harness.callerInvite()), from: Harness.caller)
        let callId = try #require(harness.bus.decisionRequests.first?.requestId)
        let route = BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@127.0.0.2:5070")], onFailure: ask ? .ask : .end)
        harness.resolveAll(.decided(.bridge(route), workerId: "pbx"))
        let invite = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 180)), from: Harness.callee)
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 486)), from: Harness.callee)
        return (harness, callId)
    }

    func resolve(_ harness: Harness, _ requestId: String, _ resolution: BusEndpoints.Resolution) {
        harness.side.gate.resolve([(requestId: requestId, resolution: resolution)])
        harness.loop.run()
    }

    /// The final responses to the caller's INVITE among what was sent.
    func callerFinals(_ sent: [FakeTransport.Sent]) -> [SIPResponse] {
        sent.compactMap(\.response).filter { $0.status >= 200 && $0.callID == "caller-call-1" && $0.cseq?.method == .invite }
    }

    @Test func aBusyTargetAsksTheWorkersWithTheFailureAndTheCallerWaits() throws {
        let (harness, callId) = try bobBusy()
        let step = try #require(harness.bus.decisionRequests.last)
        #expect(step.requestId == "\(callId)-f1")
        let failure = try #require(step.offer.failure)
        #expect((failure.status, failure.reason, failure.cause, failure.step) == (486, "Busy Here", .busy, 1))
        #expect(failure.targets == [Target(uri: "sip:bob@127.0.0.2:5070")])
        #expect(failure.ringMs >= 0)
        #expect(step.offer.to.user == "bob", "the same offer")
        // No final answer to the caller while the workers decide; bob's 486 was ACKed.
        let sent = harness.wire.take()
        #expect(callerFinals(sent).isEmpty)
        #expect(sent.compactMap(\.request).map(\.method) == [.ack])
        #expect(!harness.bus.types.contains("call.ended"))
    }

    @Test func theWorkersNextBridgeIsDialledAndAnswersTheCaller() throws {
        let (harness, callId) = try bobBusy()
        harness.wire.take()
        resolve(harness, "\(callId)-f1", .decided(.bridge(BridgeRoute(targets: [BridgeTarget(uri: "sip:carol@127.0.0.2:5070")])), workerId: "pbx"))
        let invite = try #require(harness.wire.take().compactMap(\.request).first { $0.method == .invite })
        #expect(invite.uri.description == "sip:carol@127.0.0.2:5070")
        guard case .callRouted(let routed)? = harness.bus.events.last(where: { $0.body.type == "call.routed" })?.body else {
            Issue.record("no call.routed: \(harness.bus.types)")
            return
        }
        #expect(routed.step == 1 && routed.action == .bridge && routed.targets == [Target(uri: "sip:carol@127.0.0.2:5070")])
        harness.receive(.response(Harness.calleeResponse(to: invite, status: 200, toTag: "carol1", sdp: Harness.answer)), from: Harness.callee)
        #expect(callerFinals(harness.wire.take()).map(\.status) == [200])
        #expect(harness.bus.types.last == "call.connected")
    }

    @Test func aRejectAtTheStepIsTheCallersAnswer() throws {
        let (harness, callId) = try bobBusy()
        harness.wire.take()
        resolve(harness, "\(callId)-f1", .decided(.reject(status: 603, reason: "Decline", headers: ["Retry-After": "60"]), workerId: "pbx"))
        let final = try #require(callerFinals(harness.wire.take()).first)
        #expect(final.status == 603 && final.reason == "Decline")
        #expect(final.headers["Retry-After"] == "60")
        guard case .callEnded(let ended)? = harness.bus.events.last?.body else { Issue.record("\(harness.bus.types)"); return }
        #expect(ended.cause == .rejected && ended.status == 603)
    }

    @Test func aRedirectAtTheStepIsA302ToTheCaller() throws {
        let (harness, callId) = try bobBusy()
        harness.wire.take()
        resolve(harness, "\(callId)-f1", .decided(.redirect([Target(uri: "sip:vm@127.0.0.2", q: 0.5)]), workerId: "pbx"))
        let final = try #require(callerFinals(harness.wire.take()).first)
        #expect(final.status == 302)
        #expect(final.headers["Contact"] == "<sip:vm@127.0.0.2>;q=0.5")
        guard case .callEnded(let ended)? = harness.bus.events.last?.body else { Issue.record("\(harness.bus.types)"); return }
        #expect(ended.cause == .busy, "the call ended for bob's busy; the caller was sent on")
    }

    @Test(arguments: [BusEndpoints.Resolution.fallback(.noWorker), .fallback(.timeout)])
    func withoutAnAnswerTheCallerGetsTheFailure(resolution: BusEndpoints.Resolution) throws {
        let (harness, callId) = try bobBusy()
        harness.wire.take()
        resolve(harness, "\(callId)-f1", resolution)
        #expect(callerFinals(harness.wire.take()).map(\.status) == [486])
        guard case .callEnded(let ended)? = harness.bus.events.last?.body else { Issue.record("\(harness.bus.types)"); return }
        #expect(ended.cause == .busy && ended.status == 486)
    }

    /// A worker that dies between the steps: nobody answers, and the deadline gives the caller bob's 486.
    @Test func theDeadlineEndsAStepNobodyAnswers() throws {
        let (harness, _) = try bobBusy()
        harness.wire.take()
        harness.advance(by: .milliseconds(2_999))
        #expect(callerFinals(harness.wire.take()).isEmpty)
        harness.advance(by: .milliseconds(1))
        #expect(callerFinals(harness.wire.take()).map(\.status) == [486])
        #expect(harness.bus.types.last == "call.ended")
    }

    @Test func aCallerCANCELDuringTheStepEndsTheCallAndDropsTheRequest() throws {
        let (harness, callId) = try bobBusy()
        harness.wire.take()
        harness.receive(.request(SIPRequest(cancelling: harness.callerInvite())), from: Harness.caller)
        #expect(harness.wire.take().compactMap(\.response).map(\.status) == [200, 487])
        guard case .callEnded(let ended)? = harness.bus.events.last?.body else { Issue.record("\(harness.bus.types)"); return }
        #expect(ended.cause == .callerCancelled)
        // The late answer finds nothing: no INVITE, no event.
        let events = harness.bus.events.count
        resolve(harness, "\(callId)-f1", .decided(.bridge(BridgeRoute(targets: [BridgeTarget(uri: "sip:carol@127.0.0.2:5070")])), workerId: "pbx"))
        harness.advance(by: .seconds(5))
        #expect(harness.wire.take().compactMap(\.request).isEmpty)
        #expect(harness.bus.events.count == events)
    }

    @Test func aRouteThatDoesNotAskEndsAsBefore() throws {
        let (harness, _) = try bobBusy(ask: false)
        #expect(harness.bus.decisionRequests.count == 1)
        #expect(callerFinals(harness.wire.take()).map(\.status) == [486])
    }

    @Test func aStepsTargetsPassTheDestinationPolicy() throws {
        let (harness, callId) = try bobBusy()
        harness.wire.take()
        resolve(harness, "\(callId)-f1", .decided(.bridge(BridgeRoute(targets: [BridgeTarget(uri: "sip:+18095551234@127.0.0.2")])), workerId: "pbx"))
        let final = try #require(callerFinals(harness.wire.take()).first)
        #expect(final.status == 403)
        #expect(final.headers["Warning"]?.contains("destination policy") == true)
    }
}

/// The step on the pure flow: causes, how long the targets rang, and the cap.
@Suite struct FailureStepFlowTests {
    let t0 = ContinuousClock.now

    func asking(_ targets: [BridgeTarget]) -> FlowDriver {
        var driver = FlowDriver(CallFlow(inbound: nil, callerURI: "sip:alice@x", at: t0, defaultRingTimeout: .seconds(30)), at: t0)
        driver.send(.decided(BridgeRoute(targets: targets, onFailure: .ask)))
        return driver
    }

    static func asked(_ actions: [CallFlow.Action]) -> RouteFailure? {
        actions.lazy.compactMap { if case .askNextStep(let failure) = $0 { failure } else { nil } }.first
    }

    @Test func aRingTimeoutIsNoAnswerWithHowLongItRang() throws {
        var driver = asking([BridgeTarget(uri: "sip:bob@x", ringTimeoutMs: 5000)])
        _ = driver.advance(by: .milliseconds(1000))
        driver.send(.provisional(leg: LegID(1), status: 180, sdp: nil))
        let cancel = driver.advance(by: .milliseconds(4000))
        #expect(cancel.contains(.cancel(leg: LegID(1))))
        let failureActions = driver.send(.failed(leg: LegID(1), status: 487, reason: "Request Terminated"))
        let failure = try #require(Self.asked(failureActions))
        #expect(failure == RouteFailure(status: 480, reason: "Temporarily Unavailable", cause: .noAnswer, ringMs: 4000,
                                        targets: [Target(uri: "sip:bob@x")], step: 1))
    }

    /// Kamailio's 480 for a user with no registration comes before anything rang.
    @Test func anUnregisteredUsers480HasNotRung() throws {
        var driver = asking([BridgeTarget(uri: "sip:bob@x")])
        let failureActions = driver.send(.failed(leg: LegID(1), status: 480, reason: "Temporarily Unavailable"))
        let failure = try #require(Self.asked(failureActions))
        #expect(failure.ringMs == 0 && failure.status == 480)
    }

    @Test func aServerErrorReachesTheWorkerAsItIs() throws {
        var driver = asking([BridgeTarget(uri: "sip:gw@x")])
        let failureActions = driver.send(.failed(leg: LegID(1), status: 503, reason: "Service Unavailable"))
        let failure = try #require(Self.asked(failureActions))
        #expect((failure.status, failure.reason, failure.cause) == (503, "Service Unavailable", .unavailable))
        // The fallback gives the caller what the bridge always gives for a B leg's 5xx.
        let actions = driver.send(.stepFallback)
        #expect(actions.contains(.rejectCaller(status: 480, reason: "Temporarily Unavailable", reasonHeader: "SIP;cause=503;text=\"Service Unavailable\"")))
    }

    @Test func aParallelRouteAsksOnceEveryTargetFailed() throws {
        var driver = FlowDriver(CallFlow(inbound: nil, callerURI: "sip:alice@x", at: t0, defaultRingTimeout: .seconds(30)), at: t0)
        driver.send(.decided(BridgeRoute(targets: [BridgeTarget(uri: "sip:a@x"), BridgeTarget(uri: "sip:b@x")], mode: .parallel, onFailure: .ask)))
        let first = driver.send(.failed(leg: LegID(1), status: 486, reason: "Busy Here"))
        #expect(Self.asked(first) == nil)
        let failureActions = driver.send(.failed(leg: LegID(2), status: 404, reason: "Not Found"))
        let failure = try #require(Self.asked(failureActions))
        #expect(failure.status == 486 && failure.targets.map(\.uri) == ["sip:a@x", "sip:b@x"], "the best failure of the step")
    }

    @Test func stepsAreCappedSoALoopEnds() throws {
        var driver = asking([BridgeTarget(uri: "sip:bob@x")])
        var leg = LegID(1)
        for step in 1...CallFlow.maxFailureSteps {
            let failureActions = driver.send(.failed(leg: leg, status: 486, reason: "Busy Here"))
            let failure = try #require(Self.asked(failureActions))
            #expect(failure.step == step)
            let dialled = driver.send(.rerouted(BridgeRoute(targets: [BridgeTarget(uri: "sip:bob@x")], onFailure: .ask)))
            leg = leg.next
            #expect(dialled.contains { if case .invite(let invited, _, _, _, _, _) = $0 { invited == leg } else { false } })
        }
        let last = driver.send(.failed(leg: leg, status: 486, reason: "Busy Here"))
        #expect(Self.asked(last) == nil)
        #expect(last.contains(.rejectCaller(status: 486, reason: "Busy Here")))
        #expect(driver.types.last == "call.ended")
    }

    @Test func stepAnswersWithoutAPendingStepAreIgnored() {
        var driver = asking([BridgeTarget(uri: "sip:bob@x")])
        let rerouted = driver.send(.rerouted(BridgeRoute(targets: [BridgeTarget(uri: "sip:carol@x")])))
        let fallback = driver.send(.stepFallback)
        let ended = driver.send(.stepEnded(status: 486, reason: "Busy Here", headers: [:]))
        #expect(rerouted.isEmpty && fallback.isEmpty && ended.isEmpty)
    }
}
