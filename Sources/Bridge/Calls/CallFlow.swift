import BusSchema
import SIPCore

/// One call through the bridge as a pure state machine: the inbound bridge decision (leg A is the
/// caller, legs B are tried in order or in parallel) and third-party call control (originate: call A,
/// then B, and join them; transfer: replace one party). It knows legs by `LegID` and SDP as bytes; the
/// owner turns its actions into SIP (dialogs, transactions) and its events back into calls here.
///
/// The join follows RFC 3725 Flow III: A is called without SDP and its 200 (the offer) is ACKed at
/// once with an answer that holds the media inactive, then B is called without SDP, and B's offer is
/// sent to A in a re-INVITE whose answer finally ACKs B. Flow I (A's offer straight to B) would leave
/// A's 200 unacknowledged while B rings, and a person's phone gives up on that after 32 s (Timer H);
/// people rarely answer that fast, so Flow I only suits automata. Flow III keeps every transaction short
/// whatever B does, at the price of one re-INVITE to A.
///
/// ```swift
/// var flow = CallFlow(inbound: offerSDP, at: now, defaultRingTimeout: .seconds(30))
/// owner.perform(flow.handle(.decided(route), at: now))   // → .invite(leg: LegID(1), ...), .startRingTimer(...)
/// ```
struct CallFlow {
    enum Kind: String, Sendable {
        case inbound, originate
    }

    /// Where the call is; the names are those `get`/`list` report.
    enum Phase: String, Sendable {
        /// Inbound, waiting for a worker's decision.
        case routing
        /// Originate: calling party A.
        case dialingA = "dialing"
        /// Calling the B target(s) (or a transfer target).
        case ringing
        /// B answered; A is being re-INVITEd with B's offer (3PCC).
        case joining
        case connected
        case ended
    }

    enum Event: Sendable {
        /// Inbound: the worker (or the bridge's own decision) chose to bridge the call.
        case decided(BridgeRoute)
        /// Originate: place the call now.
        case originate(Originate)
        case provisional(leg: LegID, status: Int, sdp: [UInt8]?)
        /// A 2xx to the leg's initial INVITE.
        case answered(leg: LegID, sdp: [UInt8]?)
        /// A final failure of the leg's initial INVITE (408 when it timed out).
        case failed(leg: LegID, status: Int, reason: String)
        /// A 3xx to the leg's initial INVITE, with its contacts that may be called (policy-screened, by q).
        case redirected(leg: LegID, status: Int, reason: String, targets: [String])
        /// The 2xx to a re-INVITE the flow sent (join or hold).
        case reinviteAnswered(leg: LegID, sdp: [UInt8]?)
        case reinviteFailed(leg: LegID, status: Int)
        /// The back-off after a 491 to the leg's re-INVITE is over (`startGlareTimer`).
        case glareTimer(leg: LegID)
        /// Inbound: the caller's ACK for the 2xx; carries the answer when the caller sent no offer.
        case callerACK(sdp: [UInt8]?)
        case callerCancelled
        case bye(leg: LegID)
        case ringTimeout(leg: LegID)
        /// The leg is gone without a BYE: no ACK for its 2xx, or its requests time out.
        case lost(leg: LegID)
        /// A `hangup` command: for a two-party call one leg or both end it alike.
        case hangup
        case transfer(keep: Leg, target: String)
        /// The phone on `by` sent a REFER (RFC 3515) that the bridge accepted: a transfer is under way (the call is not
        /// connected meanwhile), and `by` stays up until its target is joined, so a failure leaves the call as it was.
        case referred(by: LegID)
        /// Where the REFER's target goes (the workers' decision): its targets are called for the other party.
        case referralRouted(BridgeRoute)
        /// The REFER's target is refused (a worker's reject, the fallback): the referrer learns it, the call goes on.
        case referralRefused(status: Int, reason: String)
        /// An attended transfer (RFC 3891): the party at `uri`, in another call of the bridge, takes the referrer's place
        /// (the owner moves its leg here on `.adopt`); `sdp` is what that party last sent.
        case referralReplaces(uri: String, sdp: [UInt8]?)
        /// An attended transfer took this answered party into the call at `to`: the rest of this call ends, without a BYE
        /// to that party.
        case legMoved(leg: LegID, to: String)
        case hold(leg: Leg, on: Bool)
        /// An offer of this party's that the other party accepted in a relayed re-INVITE (the 2xx to it, or with an
        /// offerless re-INVITE the ACK that answered it): tracks hold by the phones.
        case peerOffer(leg: LegID, sdp: [UInt8]?)
        case shutdown
        /// The call reached the bridge's maximum duration.
        case durationLimit
        /// The leg's session timer ran out without a refresh (RFC 4028 §10): BYE to every leg, the silent one too.
        case sessionExpired(leg: LegID)
        /// Inbound, after `.askNextStep`: the workers' next route for the caller.
        case rerouted(BridgeRoute)
        /// Inbound, after `.askNextStep`: the workers' final answer to the caller (a reject, or a redirect's 302).
        case stepEnded(status: Int, reason: String, headers: [String: String])
        /// Inbound, after `.askNextStep`: no usable answer in time; the caller gets the failure it would have got.
        case stepFallback
        /// Inbound, an `answer` decision: the bridge answers the caller itself with this SDP (rtpengine's), and the
        /// call is connected with one party.
        case selfAnswered(sdp: [UInt8])
        /// Inbound, an `answer` decision the bridge could not carry out (no media, no offer to answer): the caller's failure.
        case selfAnswerFailed(status: Int, reason: String)
    }

    /// An SDP that one leg's event carries to another leg, as an anchored call's media needs to know it: `sender` wrote
    /// it, `receiver` gets it (nil: every B leg the caller's offer goes to), and whether it is an offer or the answer
    /// to the receiver's offer.
    struct SDPExchange: Equatable {
        let sender: LegID
        let receiver: LegID?
        let offer: Bool

        /// The inbound caller's initial offer, before any leg it goes to is dialled.
        static let callerOffer = SDPExchange(sender: .first, receiver: nil, offer: true)
    }

    enum Action: Sendable, Equatable {
        /// Call the leg (the owner publishes `call.dialing`, which names the leg's SIP Call-ID).
        case invite(leg: LegID, uri: String, sdp: [UInt8]?, callerId: CallerID?, headers: [String: String], attempt: Int)
        case reinvite(leg: LegID, sdp: [UInt8]?)
        /// The leg's re-INVITE met 491 (RFC 3261 §14.1): wait the back-off the leg's dialog gives, then `.glareTimer`.
        case startGlareTimer(leg: LegID)
        /// ACK the 2xx of the leg's initial INVITE, with the answer when the INVITE had no offer.
        case ack(leg: LegID, sdp: [UInt8]?)
        case cancel(leg: LegID)
        case bye(leg: LegID)
        /// B leg `leg`'s provisional (or answer) to the caller: each B early dialog is one of the caller's.
        case provisionalToCaller(leg: LegID, status: Int, sdp: [UInt8]?)
        case answerCaller(leg: LegID, sdp: [UInt8]?)
        /// The caller's INVITE fails; `reasonHeader` (RFC 3326) names the B leg's own status when it differs;
        /// `headers` are a worker's (a reject's, or a redirect's Contact).
        case rejectCaller(status: Int, reason: String, reasonHeader: String? = nil, headers: [String: String] = [:])
        case startRingTimer(leg: LegID, after: Duration)
        case cancelRingTimer(leg: LegID)
        case publish(EventBody)
        /// NOTIFY the referrer on the leg of its REFER's progress (RFC 3515 §2.4.4): `status` as a sipfrag status line.
        case notify(leg: LegID, status: Int, reason: String)
        /// The referrer's part is over: the leg is hung up after its final NOTIFY, unless it hangs up itself.
        case release(leg: LegID)
        /// The leg is the answered party `.referralReplaces` named: its SIP moves into this call under this number.
        case adopt(leg: LegID)
        /// The call's answered legs changed: persist them (so a restart can end them with BYE).
        case persist
        /// The call is over; pending legs are the owner's to clean up.
        case finished
        /// Every target of a route with `on_failure: ask` failed and the caller still waits: ask the workers for the
        /// next step (`.rerouted`, `.stepEnded` or `.stepFallback` comes back). The caller keeps its ringback.
        case askNextStep(RouteFailure)
    }

    let kind: Kind
    private(set) var phase: Phase
    private(set) var legs: [LegID: FlowLeg] = [:]
    let createdAt: ContinuousClock.Instant
    private(set) var connectedAt: ContinuousClock.Instant?
    let defaultRingTimeout: Duration
    /// The inbound caller's offer (nil for a caller that sent none); an anchored call's is rtpengine's rewrite of it.
    private(set) var callerOffer: [UInt8]?
    /// The session id of the SDP the bridge writes itself (Flow III's held answer to A).
    private let ownSessionID = UInt64.random(in: 1...(1 << 62))
    /// The SDP the caller gets from B is an answer: the caller made the offer.
    var callerOffered: Bool { callerOffer != nil }
    private var attempts: TargetAttempts?
    /// Inbound: B answered a caller that sent no offer; B's ACK waits for the caller's answer.
    private var ackAwaitingCaller: LegID?
    /// Legs with a hold/unhold re-INVITE in flight, and what it asked for.
    private var holdPending: [LegID: Bool] = [:]
    /// 491s in a row to the leg's re-INVITE; after `maxGlareRetries` the re-INVITE is given up as failed.
    private var glareRetries: [LegID: Int] = [:]
    /// A peer that answers 491 every time is refusing, not crossing us; three retries cover a real glare.
    static let maxGlareRetries = 3
    private var nextLeg = LegID(1)
    /// A REFER the flow is carrying out.
    private struct Referral {
        let referrer: LegID
        let transferee: LegID
        /// Its targets are being called, or (attended) the replacing party is being joined.
        var routed = false
        /// Attended: the party joined has its dialog already.
        var replaces = false
    }

    private var referral: Referral?
    /// The failure the caller gets if the workers' next step does not come (`.askNextStep` is out).
    private var pendingStep: (failure: CallerFailure, cause: EndCause)?
    /// Failure steps asked so far in this call.
    private(set) var failureSteps = 0
    /// Most failure steps one call may ask: a worker that keeps answering with routes that fail (or with itself)
    /// cannot keep a caller ringing for ever.
    static let maxFailureSteps = 10
    /// The current route's first leg: a failure step reports on this route's legs only.
    private var stepFirstLeg = LegID.first

    /// An inbound call: leg `.first` is the caller, already offering `offer`.
    init(inbound offer: [UInt8]?, callerURI: String, at now: ContinuousClock.Instant, defaultRingTimeout: Duration) {
        kind = .inbound
        phase = .routing
        createdAt = now
        callerOffer = offer
        self.defaultRingTimeout = defaultRingTimeout
        legs[.first] = FlowLeg(role: .a, uri: callerURI, startedAt: now)
    }

    /// A call the bridge places itself (Click2Call); nothing happens before `.originate`.
    init(originateAt now: ContinuousClock.Instant, defaultRingTimeout: Duration) {
        kind = .originate
        phase = .dialingA
        createdAt = now
        callerOffer = nil
        self.defaultRingTimeout = defaultRingTimeout
    }

    /// An anchored call's caller offer, as rtpengine rewrote it, before the legs it goes to are dialled.
    mutating func anchorCallerOffer(_ sdp: [UInt8]) {
        guard phase == .routing else { return }
        callerOffer = sdp
    }

    /// The answered leg playing `role`, if any.
    func answeredLeg(_ role: Leg) -> LegID? {
        legs.first { $0.value.role == role && $0.value.state == .answered }?.key
    }

    /// The leg that most recently took `role` (for `get`, whatever its state).
    func currentLeg(_ role: Leg) -> LegID? {
        legs.filter { $0.value.role == role }.max { $0.key < $1.key }?.key
    }

    mutating func handle(_ event: Event, at now: ContinuousClock.Instant) -> [Action] {
        guard phase != .ended else { return lateEvent(event) }
        switch event {
        case .decided(let route):
            guard phase == .routing else { return [] }
            attempts = TargetAttempts(route: route, join: .answerCaller)
            phase = .ringing
            return startAttempts(at: now)
        case .originate(let originate):
            guard phase == .dialingA, legs.isEmpty else { return [] }
            legs[.first] = FlowLeg(role: .a, uri: originate.a.uri, startedAt: now)
            // Party B is called once A answers: the route is kept for then.
            attempts = TargetAttempts(route: BridgeRoute(targets: [BridgeTarget(uri: originate.b.uri, ringTimeoutMs: originate.b.ringTimeoutMs)],
                                                         mode: .serial, callerId: originate.b.callerId, headers: originate.headers),
                                      join: .reinvite(waiting: .first))
            return dial(.first, uri: originate.a.uri, sdp: nil, callerId: originate.a.callerId, headers: originate.headers,
                        ringTimeout: originate.a.ringTimeoutMs, attempt: 1)
        case .provisional(let leg, let status, let sdp):
            return provisional(leg, status: status, sdp: sdp, at: now)
        case .answered(let leg, let sdp):
            return answered(leg, sdp: sdp, at: now)
        case .failed(let leg, let status, let reason):
            return failed(leg, status: status, reason: reason, at: now)
        case .redirected(let leg, let status, let reason, let targets):
            // A B target's redirect is followed (TargetAttempts.redirect); originate's party A is not routed.
            if phase == .ringing, let info = legs[leg], info.state == .calling || info.state == .ringing {
                attempts?.redirect(to: targets)
            }
            return failed(leg, status: status, reason: reason, at: now)
        case .reinviteAnswered(let leg, let sdp):
            return reinviteAnswered(leg, sdp: sdp, at: now)
        case .reinviteFailed(let leg, let status):
            if status == 491, reinviteWanted(leg), glareRetries[leg, default: 0] < Self.maxGlareRetries {
                // RFC 3261 §14.1: a glare; the same re-INVITE goes again after the back-off.
                glareRetries[leg, default: 0] += 1
                return [.startGlareTimer(leg: leg)]
            }
            glareRetries[leg] = nil
            if holdPending.removeValue(forKey: leg) != nil {
                // The party refused the hold change: the call goes on as it was.
                return []
            }
            guard phase == .joining else { return [] }
            return end(cause: .failed, status: status, by: .bridge, at: now)
        case .glareTimer(let leg):
            guard reinviteWanted(leg), legs[leg]?.state == .answered else { return [] }
            return [.reinvite(leg: leg, sdp: legs[leg]?.sentSDP)]
        case .callerACK(let sdp):
            guard let leg = ackAwaitingCaller else { return [] }
            ackAwaitingCaller = nil
            legs[leg]?.sentSDP = sdp
            return [.ack(leg: leg, sdp: sdp)]
        case .callerCancelled:
            guard kind == .inbound, phase == .routing || phase == .ringing else { return [] }
            return end(cause: .callerCancelled, status: 487, by: .a, at: now)
        case .bye(let leg):
            guard let info = legs[leg], info.state != .ended else { return [] }
            legs[leg]?.state = .ended
            // A referrer may hang up once its REFER is accepted: the transfer goes on without it.
            if referral?.referrer == leg { return [] }
            let by: Initiator = info.role == .a ? .a : .b
            // A leg that hangs up during a transfer or a join takes the whole call down: nobody is left to talk.
            return end(cause: phase == .connected ? .normalClearing : .callerCancelled, status: nil, by: by, at: now)
        case .ringTimeout(let leg):
            guard let info = legs[leg], info.state == .calling || info.state == .ringing else { return [] }
            legs[leg]?.timedOut = true
            return [.cancel(leg: leg)]
        case .lost(let leg):
            guard let info = legs[leg], info.state != .ended else { return [] }
            legs[leg]?.state = .ended
            return end(cause: .failed, status: nil, by: .bridge, at: now)
        case .hangup:
            return end(cause: .hangupCommand, status: kind == .inbound && phase != .connected ? 480 : nil,
                       by: .command, at: now)
        case .transfer(let keep, let target):
            return transfer(keep: keep, to: target, at: now)
        case .referred(let referrer):
            return refer(from: referrer)
        case .referralRouted(let route):
            return referralRouted(route, at: now)
        case .referralRefused(let status, let reason):
            guard referral?.routed == false else { return [] }
            return referralFailed(status: status, reason: reason, legStatus: status, at: now)
        case .referralReplaces(let uri, let sdp):
            return referralReplaces(uri: uri, sdp: sdp, at: now)
        case .legMoved(let leg, let target):
            guard let info = legs[leg], info.state == .answered, phase == .connected else { return [] }
            legs[leg]?.state = .ended
            // The referrer's leg is the one left: its phone asked for this.
            let by: Initiator = info.role == .a ? .b : .a
            return [.publish(.callTransferred(Transferred(leg: info.role, target: target, by: by)))]
                + end(cause: .normalClearing, status: nil, by: by, at: now)
        case .hold(let role, let on):
            guard let leg = answeredLeg(role), phase == .connected, holdPending[leg] == nil else { return [] }
            holdPending[leg] = on
            let sdp = legs[leg]?.sentSDP.map { (on ? SDPDirection.sendonly : .sendrecv).applied(to: $0) }
            legs[leg]?.sentSDP = sdp
            return [.reinvite(leg: leg, sdp: sdp)]
        case .peerOffer(let leg, let sdp):
            guard let info = legs[leg], let sdp else { return [] }
            let other = legs.first { $0.value.role != info.role && $0.value.state == .answered }?.key
            if let other { legs[other]?.sentSDP = sdp }
            let direction = SDPDirection.direction(of: sdp)
            let held = direction == .sendonly || direction == .inactive
            guard held != info.held else { return [] }
            legs[leg]?.held = held
            let change = HoldChange(leg: info.role, by: info.role == .a ? .a : .b)
            return [.publish(held ? .callHeld(change) : .callResumed(change))]
        case .shutdown:
            return end(cause: .shutdown, status: 503, by: .bridge, at: now)
        case .durationLimit:
            return end(cause: .limit, status: nil, by: .bridge, at: now)
        case .sessionExpired(let leg):
            guard legs[leg]?.state == .answered else { return [] }
            return end(cause: .sessionExpired, status: nil, by: .bridge, at: now)
        case .rerouted(let route):
            guard let step = pendingStep else { return [] }
            pendingStep = nil
            attempts = TargetAttempts(route: route, join: .answerCaller)
            stepFirstLeg = nextLeg
            let started = startAttempts(at: now)
            return started.isEmpty ? endWithFailure(step.failure, cause: step.cause, at: now) : started
        case .stepEnded(let status, let reason, let headers):
            guard let step = pendingStep else { return [] }
            pendingStep = nil
            // A redirect (3xx) ends the call for the failure's cause; a reject for its own status.
            let cause = (300...399).contains(status) ? step.cause : EndCause(status: status)
            return end(cause: cause, status: status, reason: reason, headers: headers, by: .bridge, at: now)
        case .stepFallback:
            guard let step = pendingStep else { return [] }
            pendingStep = nil
            return endWithFailure(step.failure, cause: step.cause, at: now)
        case .selfAnswered(let sdp):
            guard kind == .inbound, phase == .routing else { return [] }
            legs[.first]?.state = .answered
            legs[.first]?.sentSDP = sdp
            return [.answerCaller(leg: .first, sdp: sdp)] + connect(at: now)
        case .selfAnswerFailed(let status, let reason):
            guard phase == .routing else { return [] }
            return end(cause: .failed, status: status, reason: reason, by: .bridge, at: now)
        }
    }

    /// Where the SDP an event carries goes next, for an anchored call's media; nil when the event carries none or the
    /// flow does not pass it on (a hold's answer, a parallel 2xx that lost, the bridge's own Flow III answer).
    func sdpExchange(for event: Event) -> SDPExchange? {
        switch event {
        case .provisional(let leg, _, let sdp?) where sdp.isEmpty == false:
            guard kind == .inbound, legs[leg]?.role == .b, case .answerCaller = attempts?.join,
                  legs[leg]?.state == .calling || legs[leg]?.state == .ringing else { return nil }
            return SDPExchange(sender: leg, receiver: .first, offer: callerOffer == nil)
        case .answered(let leg, let sdp?) where sdp.isEmpty == false:
            guard phase == .ringing, legs[leg]?.state == .calling || legs[leg]?.state == .ringing else { return nil }
            switch attempts?.join {
            case .answerCaller?: return SDPExchange(sender: leg, receiver: .first, offer: callerOffer == nil)
            case .reinvite(let waiting)?: return SDPExchange(sender: leg, receiver: waiting, offer: true)
            case nil: return nil
            }
        case .reinviteAnswered(let leg, let sdp?) where sdp.isEmpty == false:
            guard holdPending[leg] == nil, phase == .joining, referral?.replaces != true, case .reinvite(let waiting) = attempts?.join,
                  waiting == leg, let joined = legs.filter({ $0.key != leg && $0.value.state == .answered }).keys.max() else { return nil }
            return SDPExchange(sender: leg, receiver: joined, offer: false)
        case .callerACK(let sdp?) where sdp.isEmpty == false:
            return ackAwaitingCaller.map { SDPExchange(sender: .first, receiver: $0, offer: false) }
        default:
            return nil
        }
    }

    /// After the end, a leg that still answers (a race with CANCEL, a second parallel 2xx) is ACKed and
    /// hung up, so no phone stays off-hook.
    private func lateEvent(_ event: Event) -> [Action] {
        if case .answered(let leg, _) = event { return [.ack(leg: leg, sdp: nil), .bye(leg: leg)] }
        return []
    }

    // MARK: - Dialing

    private mutating func startAttempts(at now: ContinuousClock.Instant) -> [Action] {
        guard let targets = attempts?.start() else { return [] }
        return targets.flatMap { dialB($0.target, attempt: $0.attempt, at: now) }
    }

    private mutating func nextSerialAttempt(at now: ContinuousClock.Instant) -> [Action]? {
        guard let next = attempts?.nextSerial() else { return nil }
        return dialB(next.target, attempt: next.attempt, at: now)
    }

    private mutating func dialB(_ target: BridgeTarget, attempt: Int, at now: ContinuousClock.Instant) -> [Action] {
        guard let route = attempts?.route else { return [] }
        let leg = nextLeg
        nextLeg = nextLeg.next
        // A referral's targets replace the referrer, in its role.
        legs[leg] = FlowLeg(role: referral.flatMap { legs[$0.referrer]?.role } ?? .b, uri: target.uri, startedAt: now)
        // The caller's offer goes to B unchanged (media flows between the phones); a 3PCC B leg starts without one.
        let sdp: [UInt8]? = if case .answerCaller = attempts?.join { callerOffer } else { nil }
        return dial(leg, uri: target.uri, sdp: sdp, callerId: route.callerId, headers: route.headers,
                    ringTimeout: target.ringTimeoutMs, attempt: attempt)
    }

    private mutating func dial(_ leg: LegID, uri: String, sdp: [UInt8]?, callerId: CallerID?, headers: [String: String],
                               ringTimeout: Int?, attempt: Int) -> [Action] {
        if legs[leg] == nil { legs[leg] = FlowLeg(role: .a, uri: uri, startedAt: createdAt) }
        legs[leg]?.sentSDP = sdp
        return [
            .invite(leg: leg, uri: uri, sdp: sdp, callerId: callerId, headers: headers, attempt: attempt),
            .startRingTimer(leg: leg, after: ringTimeout.map { .milliseconds($0) } ?? defaultRingTimeout),
        ]
    }

    private mutating func provisional(_ leg: LegID, status: Int, sdp: [UInt8]?, at now: ContinuousClock.Instant) -> [Action] {
        guard status > 100, let info = legs[leg], info.state == .calling || info.state == .ringing else { return [] }
        let first = info.state == .calling
        legs[leg]?.state = .ringing
        if first { legs[leg]?.ringingAt = now }
        var actions: [Action] = []
        if first || sdp != nil {
            actions.append(.publish(.callRinging(Ringing(leg: info.role, status: status, earlyMedia: sdp != nil))))
        }
        if kind == .inbound, info.role == .b, case .answerCaller = attempts?.join {
            actions.append(.provisionalToCaller(leg: leg, status: status, sdp: sdp))
        }
        return actions
    }

    private mutating func answered(_ leg: LegID, sdp: [UInt8]?, at now: ContinuousClock.Instant) -> [Action] {
        guard let info = legs[leg], info.state == .calling || info.state == .ringing, phase == .dialingA || phase == .ringing else {
            // A second parallel 2xx, or one that raced its CANCEL: take it and hang it up.
            return [.ack(leg: leg, sdp: nil), .bye(leg: leg)]
        }
        legs[leg]?.state = .answered
        var actions: [Action] = [.cancelRingTimer(leg: leg),
                                 .publish(.callAnswered(Answered(leg: info.role, uri: info.uri, setupMs: Self.ms(now - info.startedAt))))]
        if phase == .dialingA {
            // Flow III step 1: A's offer is answered with media held inactive until B's offer arrives.
            guard let sdp else {
                legs[leg]?.state = .ended
                return actions + [.ack(leg: leg, sdp: nil), .bye(leg: leg)] + end(cause: .failed, status: nil, by: .a, at: now)
            }
            // The answer is A's own offer held inactive, under an origin of the bridge's: A must not see its own
            // session identity come back (RFC 4566 §5.2).
            let answer = SDPOrigin.replacingOrigin(of: SDPDirection.inactive.applied(to: sdp), username: "switchboard",
                                                   sessionID: ownSessionID)
            legs[leg]?.sentSDP = answer
            phase = .ringing
            return actions + [.ack(leg: leg, sdp: answer), .persist] + (nextSerialAttempt(at: now) ?? [])
        }
        // A B leg won: every other B attempt still ringing is cancelled (RFC 3261 §16.7 for parallel forks).
        for (other, otherInfo) in legs where other != leg && otherInfo.role == info.role
            && (otherInfo.state == .calling || otherInfo.state == .ringing) {
            legs[other]?.state = .ended
            actions += [.cancelRingTimer(leg: other), .cancel(leg: other)]
        }
        switch attempts?.join {
        case .answerCaller, nil:
            legs[.first]?.state = .answered
            legs[.first]?.sentSDP = sdp
            if callerOffer == nil {
                // The caller made no offer: B's offer goes to the caller and its answer comes in the ACK.
                ackAwaitingCaller = leg
                actions.append(.answerCaller(leg: leg, sdp: sdp))
            } else {
                actions += [.answerCaller(leg: leg, sdp: sdp), .ack(leg: leg, sdp: nil)]
            }
            return actions + connect(at: now)
        case .reinvite(let waiting):
            phase = .joining
            legs[waiting]?.sentSDP = sdp
            return actions + [.reinvite(leg: waiting, sdp: sdp)]
        }
    }

    /// Whether the flow still wants the leg's re-INVITE answered: a hold change, or the 3PCC join's re-INVITE.
    private func reinviteWanted(_ leg: LegID) -> Bool {
        if holdPending[leg] != nil { return true }
        if phase == .joining, case .reinvite(let waiting) = attempts?.join { return waiting == leg }
        return false
    }

    private mutating func reinviteAnswered(_ leg: LegID, sdp: [UInt8]?, at now: ContinuousClock.Instant) -> [Action] {
        glareRetries[leg] = nil
        if let on = holdPending.removeValue(forKey: leg), let info = legs[leg] {
            legs[leg]?.held = on
            let change = HoldChange(leg: info.role, by: .command)
            return [.publish(on ? .callHeld(change) : .callResumed(change))]
        }
        // The newest answered leg: a referrer stays answered until its target is joined.
        guard phase == .joining, case .reinvite(let waiting) = attempts?.join, waiting == leg,
              let joined = legs.filter({ $0.key != leg && $0.value.state == .answered }).keys.max() else { return [] }
        if referral?.replaces == true {
            // Attended: the joined party's dialog exists already, so the transferee's answer reaches it in a re-INVITE.
            let offer = sdp.map { SDPDirection.sendrecv.applied(to: $0) }
            legs[joined]?.sentSDP = offer
            return [.reinvite(leg: joined, sdp: offer)] + referralDone(joined) + connect(at: now)
        }
        // Flow III's last step: A's answer to B's offer completes B's INVITE.
        legs[joined]?.sentSDP = sdp
        return [.ack(leg: joined, sdp: sdp)] + referralDone(joined) + connect(at: now)
    }

    /// The REFER's target is joined to the transferee: the referrer gets its final NOTIFY and is released.
    private mutating func referralDone(_ joined: LegID) -> [Action] {
        guard let referrer = referral?.referrer, let transferee = referral?.transferee, let role = legs[transferee]?.role,
              let target = legs[joined]?.uri else { return [] }
        referral = nil
        var actions: [Action] = [.publish(.callTransferred(Transferred(leg: role, target: target, by: role == .a ? .b : .a)))]
        if legs[referrer]?.state == .answered {
            legs[referrer]?.state = .ended
            actions = [.notify(leg: referrer, status: 200, reason: "OK"), .release(leg: referrer)] + actions
        }
        return actions
    }

    private mutating func connect(at now: ContinuousClock.Instant) -> [Action] {
        phase = .connected
        connectedAt = now
        let a = answeredLeg(.a).flatMap { legs[$0]?.uri } ?? ""
        let b = answeredLeg(.b).flatMap { legs[$0]?.uri } ?? ""
        return [.publish(.callConnected(Connected(a: a, b: b))), .persist]
    }

    private mutating func failed(_ leg: LegID, status: Int, reason: String, at now: ContinuousClock.Instant) -> [Action] {
        guard let info = legs[leg], info.state == .calling || info.state == .ringing else { return [] }
        legs[leg]?.state = .ended
        let cause = info.timedOut ? EndCause.noAnswer : EndCause(status: status)
        var actions: [Action] = [.cancelRingTimer(leg: leg),
                                 .publish(.callLegFailed(LegFailed(leg: info.role, uri: info.uri, status: status, reason: reason, cause: cause)))]
        if phase == .dialingA {
            return actions + end(cause: cause, status: status, by: .a, at: now)
        }
        let reported = info.timedOut ? (480, "Temporarily Unavailable") : (status, reason)
        attempts?.failed(status: reported.0, reason: reported.1)
        if let next = nextSerialAttempt(at: now) { return actions + next }
        // Parallel: wait for the other forks.
        if legs.values.contains(where: { $0.role == info.role && ($0.state == .calling || $0.state == .ringing) }) { return actions }
        let best = attempts?.best ?? CallerFailure(status: reported.0, reason: reported.1)
        if referral != nil {
            return actions + referralFailed(status: best.status, reason: best.reason, legStatus: best.legStatus, at: now)
        }
        let timedOut = legs.contains { $0.key >= stepFirstLeg && $0.value.role == .b && $0.value.timedOut }
        let finalCause = timedOut && best.status == 480 ? EndCause.noAnswer : EndCause(status: best.legStatus)
        if let ask = askNextStep(after: best, cause: finalCause, at: now) { return actions + ask }
        return actions + endWithFailure(best, cause: finalCause, at: now)
    }

    private mutating func endWithFailure(_ failure: CallerFailure, cause: EndCause, at now: ContinuousClock.Instant) -> [Action] {
        end(cause: cause, status: failure.status, reason: failure.reason, reasonHeader: failure.reasonHeader, by: .b, at: now)
    }

    /// The failure step: when the route asked for it, the call is an inbound caller's still waiting, and the cap
    /// is not reached, the workers get the failure and choose what comes next. Nil: the caller gets the failure.
    private mutating func askNextStep(after failure: CallerFailure, cause: EndCause, at now: ContinuousClock.Instant) -> [Action]? {
        guard kind == .inbound, case .answerCaller = attempts?.join, attempts?.route.onFailure == .ask,
              failureSteps < Self.maxFailureSteps, let route = attempts?.route else { return nil }
        failureSteps += 1
        pendingStep = (failure, cause)
        // How long the longest-ringing target of this route rang: 0 when none rang (an unregistered user's 480).
        let rang = legs.filter { $0.key >= stepFirstLeg }.compactMap(\.value.ringingAt).min().map { now - $0 } ?? .zero
        return [.askNextStep(RouteFailure(status: failure.legStatus, reason: failure.legReason, cause: cause,
                                          ringMs: Int(Self.ms(rang).rounded()),
                                          targets: route.targets.map { Target(uri: $0.uri) }, step: failureSteps))]
    }

    private mutating func transfer(keep role: Leg, to target: String, at now: ContinuousClock.Instant) -> [Action] {
        guard phase == .connected, let kept = answeredLeg(role) else { return [] }
        let replacedRole: Leg = role == .a ? .b : .a
        var actions: [Action] = []
        if let replaced = answeredLeg(replacedRole) {
            legs[replaced]?.state = .ended
            actions.append(.bye(leg: replaced))
        }
        actions.append(.publish(.callTransferred(Transferred(leg: role, target: target, by: .command))))
        attempts = TargetAttempts(route: BridgeRoute(targets: [BridgeTarget(uri: target)], mode: .serial), join: .reinvite(waiting: kept),
                                  dialled: 1)
        phase = .ringing
        let leg = nextLeg
        nextLeg = nextLeg.next
        legs[leg] = FlowLeg(role: replacedRole, uri: target, startedAt: now)
        return actions + dial(leg, uri: target, sdp: nil, callerId: nil, headers: [:], ringTimeout: nil, attempt: 1)
    }

    /// A phone's REFER (RFC 3515), carried out by the bridge once its route is known: the transfer is under way from
    /// now, so the referrer may hang up without ending the call.
    private mutating func refer(from referrer: LegID) -> [Action] {
        guard phase == .connected, referral == nil, let info = legs[referrer], info.state == .answered,
              let transferee = answeredLeg(info.role == .a ? .b : .a) else { return [.notify(leg: referrer, status: 503, reason: "Service Unavailable")] }
        referral = Referral(referrer: referrer, transferee: transferee)
        phase = .ringing
        return []
    }

    /// The route's targets are called for the transferee (each new leg takes the referrer's role), and one that answers
    /// is joined to it by re-INVITE, as a transfer command does. Unlike the command, the referrer stays up meanwhile.
    private mutating func referralRouted(_ route: BridgeRoute, at now: ContinuousClock.Instant) -> [Action] {
        guard let transferee = referral?.transferee, referral?.routed == false else { return [] }
        referral?.routed = true
        var route = route
        route.callerId = route.callerId ?? CallerID(uri: legs[transferee]?.uri)
        attempts = TargetAttempts(route: route, join: .reinvite(waiting: transferee))
        let started = startAttempts(at: now)
        return started.isEmpty ? referralFailed(status: 480, reason: "Temporarily Unavailable", legStatus: 480, at: now) : started
    }

    /// The replacing party joins in the referrer's role, answered already: the transferee is re-INVITEd with what that
    /// party last sent (sendrecv again: the referrer may have held it), and its answer goes to that party next.
    private mutating func referralReplaces(uri: String, sdp: [UInt8]?, at now: ContinuousClock.Instant) -> [Action] {
        guard let current = referral, !current.routed, let role = legs[current.referrer]?.role else { return [] }
        referral?.routed = true
        referral?.replaces = true
        let leg = nextLeg
        nextLeg = nextLeg.next
        legs[leg] = FlowLeg(role: role, uri: uri, state: .answered, startedAt: now)
        attempts = TargetAttempts(route: BridgeRoute(targets: []), join: .reinvite(waiting: current.transferee))
        phase = .joining
        let offer = sdp.map { SDPDirection.sendrecv.applied(to: $0) }
        legs[current.transferee]?.sentSDP = offer
        return [.adopt(leg: leg), .reinvite(leg: current.transferee, sdp: offer)]
    }

    /// RFC 3515 §2.4.5: the referrer learns the failure, and the call goes on as before the REFER. A referrer that hung
    /// up already leaves nobody to go back to.
    private mutating func referralFailed(status: Int, reason: String, legStatus: Int, at now: ContinuousClock.Instant) -> [Action] {
        guard let referrer = referral?.referrer else { return [] }
        referral = nil
        guard legs[referrer]?.state == .answered else {
            return end(cause: EndCause(status: legStatus), status: nil, by: .bridge, at: now)
        }
        phase = .connected
        return [.notify(leg: referrer, status: status, reason: reason)]
    }

    // MARK: - Ending

    /// Ends the call: cancels what rings, hangs up what is answered, answers the caller if it still waits.
    private mutating func end(cause: EndCause, status: Int?, reason: String? = nil, reasonHeader: String? = nil,
                              headers: [String: String] = [:], by: Initiator, at now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        for (leg, info) in legs.sorted(by: { $0.key < $1.key }) {
            switch info.state {
            case .calling, .ringing:
                if leg == .first, kind == .inbound {
                    let final = status ?? 480
                    actions.append(.rejectCaller(status: final, reason: reason ?? Self.reason(final), reasonHeader: reasonHeader, headers: headers))
                } else {
                    actions += [.cancelRingTimer(leg: leg), .cancel(leg: leg)]
                }
            case .answered:
                actions.append(.bye(leg: leg))
            case .ended:
                break
            }
            legs[leg]?.state = .ended
        }
        if kind == .inbound, phase == .routing || phase == .ringing, !actions.contains(where: { if case .rejectCaller = $0 { true } else { false } }) {
            let final = status ?? 480
            actions.append(.rejectCaller(status: final, reason: reason ?? Self.reason(final), reasonHeader: reasonHeader, headers: headers))
        }
        let talk = connectedAt.map { Self.ms(now - $0) } ?? 0
        phase = .ended
        actions.append(.publish(.callEnded(Ended(cause: cause, status: connectedAt == nil ? status : nil, by: by,
                                                 durationMs: Self.ms(now - createdAt), talkMs: talk))))
        actions.append(.finished)
        return actions
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 480: "Temporarily Unavailable"
        case 486: "Busy Here"
        case 487: "Request Terminated"
        case 503: "Service Unavailable"
        default: "Call Failed"
        }
    }

    static func ms(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}

extension CallFlow.Event {
    /// The event with the SDP it carries replaced (an anchored call's, by rtpengine's rewrite); others unchanged.
    func replacingSDP(_ sdp: [UInt8]) -> CallFlow.Event {
        switch self {
        case .provisional(let leg, let status, _): .provisional(leg: leg, status: status, sdp: sdp)
        case .answered(let leg, _): .answered(leg: leg, sdp: sdp)
        case .reinviteAnswered(let leg, _): .reinviteAnswered(leg: leg, sdp: sdp)
        case .callerACK: .callerACK(sdp: sdp)
        default: self
        }
    }

    var sdp: [UInt8]? {
        switch self {
        case .provisional(_, _, let sdp), .answered(_, let sdp), .reinviteAnswered(_, let sdp), .callerACK(let sdp): sdp
        default: nil
        }
    }
}
