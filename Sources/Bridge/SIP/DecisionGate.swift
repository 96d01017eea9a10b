import BusSchema
import CallPolicy
import Logging
import Metrics
import NIOCore
import SIPCore

/// Where a new INVITE waits for a worker's decision: offers it on the bus, sends 100 Trying if no answer
/// came within the trying delay, answers the fallback at the deadline (or at once when the bus says no
/// worker can take it), and turns a decision into a 302, a reject, or a call handed to the B2BUA.
/// Loop-bound: used on the SIP event loop only; the bus thread reaches it through `resolve`.
final class DecisionGate {
    /// An INVITE waiting for its decision. A class: the table then holds a reference (see `ServerTransactions`).
    private final class Waiting {
        let callId: String
        let key: TransactionKey
        /// The sending proxy's address, for the per-source cap.
        let source: String
        let offeredAt: NIODeadline
        /// Kept for the B2BUA when a bridge decision may ask for failure steps.
        let offer: CallOffer
        var deadline: Scheduled<Void>?
        var trying: Scheduled<Void>?

        init(callId: String, key: TransactionKey, source: String, offeredAt: NIODeadline, offer: CallOffer) {
            self.callId = callId
            self.key = key
            self.source = source
            self.offeredAt = offeredAt
            self.offer = offer
        }

        /// Cancels and lets go of the timers: a cancelled task still holds its promise.
        func stopTimers() {
            deadline?.cancel()
            trying?.cancel()
            deadline = nil
            trying = nil
        }
    }

    /// A phone's REFER waiting for the decision on its target.
    private final class TransferWaiting {
        let callId: String
        let decided: (Decision) -> Void
        var deadline: Scheduled<Void>?

        init(callId: String, decided: @escaping (Decision) -> Void) {
            self.callId = callId
            self.decided = decided
        }
    }

    /// A bridged call's failure step waiting for the workers' next step.
    private final class StepWaiting {
        let callId: String
        let step: Int
        let askedAt: NIODeadline
        let decided: (NextStep) -> Void
        var deadline: Scheduled<Void>?

        init(callId: String, step: Int, askedAt: NIODeadline, decided: @escaping (NextStep) -> Void) {
            self.callId = callId
            self.step = step
            self.askedAt = askedAt
            self.decided = decided
        }
    }

    private enum Outcome {
        case decided(Decision, workerId: String)
        case fallback(cause: DecisionCause)
    }

    private let configuration: BridgeConfiguration
    private let loop: EventLoop
    private let bus: BridgeBus
    private let transactions: ServerTransactions
    private let b2bua: B2BUA
    private let overload: OverloadControl
    private let logger: Logger
    /// Decision request id (the call id) → the INVITE waiting for it.
    private var waiting: [String: Waiting] = [:]
    /// The INVITE transaction → its request id, for a CANCEL.
    private var byTransaction: [TransactionKey: String] = [:]
    /// Offers waiting per source address: one proxy (or one flood through it) cannot take every slot.
    private var waitingBySource: [String: Int] = [:]
    private var nextCall: UInt64 = 0
    private let callPrefix: String
    /// Decision request id → the REFER waiting for it.
    private var transfers: [String: TransferWaiting] = [:]
    private var nextTransfer: UInt64 = 0
    /// Decision request id → the failure step waiting for it.
    private var steps: [String: StepWaiting] = [:]
    /// Set by `drain()`: new INVITEs are answered with the fallback rather than offered to workers.
    private var stopping = false

    private let offered = Counter(label: "switchboard_calls_offered_total")
    private let fallbacks = Counter(label: "switchboard_decision_fallbacks_total")
    private let shed = Counter(label: "switchboard_offers_shed_total")
    private let decisionLatency = Timer(label: "switchboard_decision_latency_seconds")

    init(configuration: BridgeConfiguration, loop: EventLoop, bus: BridgeBus, transactions: ServerTransactions, b2bua: B2BUA,
         overload: OverloadControl, callPrefix: String, logger: Logger) {
        self.configuration = configuration
        self.loop = loop
        self.bus = bus
        self.transactions = transactions
        self.b2bua = b2bua
        self.overload = overload
        self.callPrefix = callPrefix
        self.logger = logger
    }

    /// A new INVITE with its server transaction open (RFC 3261 §17.2.1): offered to the workers, with the
    /// trying delay and the decision deadline running.
    func offer(_ request: SIPRequest, key: TransactionKey, packet: InboundPacket) {
        guard request.maxForwards != 0 else {
            // RFC 3261 §16.3 and, for a B2BUA, RFC 7332 §3: no hop left, so no leg is placed for it (a
            // B2BUA that dialled it with a fresh Max-Forwards would feed a loop through a PBX for ever).
            logger.notice("INVITE refused: Max-Forwards 0", metadata: ["sip.remote": "\(packet.remote)", "sip.call_id": "\(request.callID ?? "-")"])
            transactions.respond(key, SIPResponse(replyingTo: request, status: 483, toTag: transactions.toTag(for: key)))
            return
        }
        let source = packet.remote.ipAddress ?? "\(packet.remote)"
        guard waitingBySource[source, default: 0] < configuration.maxPendingOffersPerSource else {
            // No call yet, so no event: the INVITE is answered before anything is offered or journaled.
            shed.increment()
            logger.warning("INVITE refused: its source has max_pending_offers_per_source waiting", metadata: [
                "sip.remote": "\(packet.remote)", "sip.call_id": "\(request.callID ?? "-")",
                "offers.waiting": "\(waitingBySource[source, default: 0])",
            ])
            var response = SIPResponse(replyingTo: request, status: 503, toTag: transactions.toTag(for: key))
            response.headers.add("Retry-After", "5")
            transactions.respond(key, response)
            return
        }
        nextCall += 1
        let callId = "\(callPrefix)-\(nextCall)"
        let requestId = callId
        let offer = OfferNormalizer.offer(for: request, from: packet)
        offered.increment()
        logger.debug("call offered", metadata: ["call.id": "\(callId)", "sip.call_id": "\(offer.sipCallId)", "sip.ruri": "\(offer.requestUri.uri)"])

        let entry = Waiting(callId: callId, key: key, source: source, offeredAt: .now(), offer: offer)
        entry.trying = loop.assumeIsolated().scheduleTask(in: TimeAmount(configuration.tryingDelay)) { [self] in transactions.sendTrying(key) }
        entry.deadline = loop.assumeIsolated().scheduleTask(in: TimeAmount(configuration.decisionTimeout)) { [self] in
            decide(requestId: requestId, outcome: .fallback(cause: .timeout))
        }
        waiting[requestId] = entry
        waitingBySource[source, default: 0] += 1
        byTransaction[key] = requestId
        guard !stopping else {
            bus.publish(callId: callId, .callOffered(offer))
            decide(requestId: requestId, outcome: .fallback(cause: .shutdown))
            return
        }
        bus.requestDecision(requestId: requestId, callId: callId, offer: offer, deadline: .now + configuration.decisionTimeout)
    }

    /// The bus' answers, a batch at a time, on the SIP loop.
    func resolve(_ batch: [(requestId: String, resolution: BusEndpoints.Resolution)]) {
        let start = NIODeadline.now()
        defer { overload.busy(since: start) }
        for (requestId, resolution) in batch {
            let outcome: Outcome = switch resolution {
            case .decided(let decision, let workerId): .decided(decision, workerId: workerId)
            case .fallback(let cause): .fallback(cause: cause)
            }
            if transfers[requestId] != nil {
                decideTransfer(requestId: requestId, outcome: outcome)
            } else if steps[requestId] != nil {
                decideStep(requestId: requestId, outcome: outcome)
            } else {
                decide(requestId: requestId, outcome: outcome)
            }
        }
    }

    /// Answers a waiting INVITE with a worker's decision or the fallback. The first answer wins; a later
    /// one (a decision racing the deadline) finds nothing waiting and is ignored.
    private func decide(requestId: String, outcome: Outcome) {
        guard let entry = removeWaiting(requestId) else { return }
        let key = entry.key
        byTransaction[key] = nil
        guard let request = transactions.request(for: key), let toTag = transactions.toTag(for: key) else { return }
        let elapsed = NIODeadline.now() - entry.offeredAt
        decisionLatency.recordNanoseconds(elapsed.nanoseconds)
        let decisionMs = Double(elapsed.nanoseconds) / 1_000_000

        var decision: Decision
        let workerId: String?
        let cause: DecisionCause?
        switch outcome {
        case .decided(let workerDecision, let id):
            (decision, workerId, cause) = (workerDecision, id, nil)
            overload.decided(after: elapsed)
        case .fallback(let why):
            if why == .overload { overload.poolFull() }
            overload.fellBack()
            fallbacks.increment()
            (decision, workerId, cause) = (configuration.fallback.decision, nil, why)
            logger.notice("fallback answered call", metadata: ["call.id": "\(entry.callId)", "decision.cause": "\(why)", "decision.fallback": "\(configuration.fallback)"])
        }
        // A worker's targets pass the destination policy; the operator's own fallback does not need to.
        switch workerId == nil ? Result<Decision, PolicyDenial>.success(decision) : screen(decision, callId: entry.callId) {
        case .success(let allowed):
            decision = allowed
        case .failure(let denial):
            var response = SIPResponse(replyingTo: request, status: 403, toTag: toTag)
            response.headers.add("Warning", DestinationGuard.warning(denial))
            bus.publish(callId: entry.callId, .callRejected(Rejected(status: 403, reason: response.reason, workerId: workerId,
                                                                      fallback: false, cause: .policyDenied, decisionMs: decisionMs)))
            transactions.respond(key, response)
            return
        }
        let response = Self.response(for: decision, to: request, toTag: toTag)
        switch decision {
        case .redirect(let targets):
            bus.publish(callId: entry.callId, .callRouted(Routed(targets: targets, workerId: workerId, fallback: cause != nil,
                                                                cause: cause, decisionMs: decisionMs)))
        case .reject:
            bus.publish(callId: entry.callId, .callRejected(Rejected(status: response.status, reason: response.reason, workerId: workerId,
                                                                      fallback: cause != nil, cause: cause, decisionMs: decisionMs)))
        case .bridge(let route):
            if let problem = b2bua.ringTimeoutProblem(route.targets.compactMap(\.ringTimeoutMs).max()) {
                logger.warning("bridge decision refused", metadata: ["call.id": "\(entry.callId)", "decision.problem": "\(problem)"])
            } else if b2bua.admits() {
                bus.publish(callId: entry.callId, .callRouted(Routed(action: .bridge, targets: route.targets.map { Target(uri: $0.uri) },
                                                                    workerId: workerId, fallback: cause != nil, cause: cause,
                                                                    decisionMs: decisionMs)))
                // Legs B take seconds to answer: the caller hears 100 Trying now, not after the decision delay.
                transactions.sendTrying(key)
                b2bua.startInbound(callId: entry.callId, invite: request, serverKey: key, toTag: toTag, route: route, offer: entry.offer)
                return
            }
            bus.publish(callId: entry.callId, .callRejected(Rejected(status: response.status, reason: response.reason, workerId: workerId,
                                                                      fallback: cause != nil, cause: .limit, decisionMs: decisionMs)))
        case .answer:
            if b2bua.admits() {
                bus.publish(callId: entry.callId, .callRouted(Routed(action: .answer, targets: [], workerId: workerId, fallback: cause != nil,
                                                                    cause: cause, decisionMs: decisionMs)))
                b2bua.answerInbound(callId: entry.callId, invite: request, serverKey: key, toTag: toTag)
                return
            }
            bus.publish(callId: entry.callId, .callRejected(Rejected(status: response.status, reason: response.reason, workerId: workerId,
                                                                      fallback: cause != nil, cause: .limit, decisionMs: decisionMs)))
        }
        transactions.respond(key, response)
    }

    /// A worker's decision with the targets the destination policy refuses dropped (each logged and
    /// counted); the first denial when none is left.
    private func screen(_ decision: Decision, callId: String) -> Result<Decision, PolicyDenial> {
        let destinations = b2bua.destinations
        switch decision {
        case .reject, .answer:
            return .success(decision)
        case .redirect(let targets):
            let (kept, denial) = destinations.allowed(targets, uri: \.uri, place: .redirect, callId: callId)
            if kept.isEmpty, let denial { return .failure(denial) }
            return .success(.redirect(kept))
        case .bridge(var route):
            let (kept, denial) = destinations.allowed(route.targets, uri: \.uri, place: .bridge, callId: callId)
            if kept.isEmpty, let denial { return .failure(denial) }
            route.targets = kept
            return .success(.bridge(route))
        }
    }

    /// RFC 3261 §9.2: a CANCEL for a pending INVITE ends it with 487 (the CANCEL itself was answered 200).
    /// A bridged call's legs, and the re-INVITEs it relays, are the B2BUA's to end.
    func cancel(_ key: TransactionKey) {
        guard transactions.isProceeding(key), let request = transactions.request(for: key) else { return }
        if let requestId = byTransaction.removeValue(forKey: key), let entry = removeWaiting(requestId) {
            let decisionMs = Double((NIODeadline.now() - entry.offeredAt).nanoseconds) / 1_000_000
            bus.publish(callId: entry.callId, .callRejected(Rejected(status: 487, reason: "Request Terminated", workerId: nil,
                                                                      fallback: false, cause: .callerCancelled, decisionMs: decisionMs)))
        } else if b2bua.cancelled(serverKey: key) {
            return
        }
        transactions.respond(key, SIPResponse(replyingTo: request, status: 487, toTag: transactions.toTag(for: key)))
    }

    private func removeWaiting(_ requestId: String) -> Waiting? {
        guard let entry = waiting.removeValue(forKey: requestId) else { return nil }
        entry.stopTimers()
        let left = waitingBySource[entry.source, default: 1] - 1
        waitingBySource[entry.source] = left > 0 ? left : nil
        return entry
    }

    /// Answers every INVITE still waiting with the fallback, so a stopping bridge leaves no caller
    /// hanging; INVITEs that arrive from now on get the fallback at once.
    func drain() {
        stopping = true
        for requestId in Array(waiting.keys) {
            decide(requestId: requestId, outcome: .fallback(cause: .shutdown))
        }
        for requestId in Array(transfers.keys) {
            decideTransfer(requestId: requestId, outcome: .fallback(cause: .shutdown))
        }
        for requestId in Array(steps.keys) {
            decideStep(requestId: requestId, outcome: .fallback(cause: .shutdown))
        }
    }

    // MARK: - A bridged call's failure step

    /// The workers' next step for a call whose route failed: a bridge (screened, published as `call.routed` with its
    /// `step`), a reject, or a redirect, which the caller gets as a 302. Every fallback, and a bridge the B2BUA cannot
    /// dial, gives the caller the failure it would have had without the step.
    private func decideStep(requestId: String, outcome: Outcome) {
        guard let entry = steps.removeValue(forKey: requestId) else { return }
        entry.deadline?.cancel()
        let decisionMs = Double((NIODeadline.now() - entry.askedAt).nanoseconds) / 1_000_000
        let decision: Decision
        let workerId: String
        switch outcome {
        case .fallback(let cause):
            fallbacks.increment()
            logger.notice("fallback decided a failure step", metadata: ["call.id": "\(entry.callId)", "decision.cause": "\(cause)"])
            return entry.decided(.fallback)
        case .decided(let workerDecision, let id):
            (decision, workerId) = (workerDecision, id)
        }
        switch screen(decision, callId: entry.callId) {
        case .failure(let denial):
            entry.decided(.end(status: 403, reason: "Forbidden", headers: ["Warning": DestinationGuard.warning(denial)]))
        case .success(.reject(let status, let reason, let headers)):
            entry.decided(.end(status: status, reason: reason ?? SIPResponse.standardReason(for: status), headers: headers))
        case .success(.redirect(let targets)):
            bus.publish(callId: entry.callId, .callRouted(Routed(targets: targets, workerId: workerId, fallback: false, decisionMs: decisionMs,
                                                                step: entry.step)))
            entry.decided(.end(status: 302, reason: "Moved Temporarily", headers: ["Contact": Self.contacts(targets)]))
        case .success(.answer):
            // The caller has rung through a failed route already; answering it needs the route's media, which
            // the failure step does not anchor: the caller gets the failure.
            logger.warning("failure step's answer decision not taken: the caller gets the route's failure", metadata: ["call.id": "\(entry.callId)"])
            entry.decided(.fallback)
        case .success(.bridge(let route)):
            if let problem = b2bua.ringTimeoutProblem(route.targets.compactMap(\.ringTimeoutMs).max()) {
                logger.warning("failure step's bridge refused", metadata: ["call.id": "\(entry.callId)", "decision.problem": "\(problem)"])
                return entry.decided(.fallback)
            }
            bus.publish(callId: entry.callId, .callRouted(Routed(action: .bridge, targets: route.targets.map { Target(uri: $0.uri) },
                                                                workerId: workerId, fallback: false, decisionMs: decisionMs, step: entry.step)))
            entry.decided(.route(route))
        }
    }

    // MARK: - A phone's REFER

    private func decideTransfer(requestId: String, outcome: Outcome) {
        guard let entry = transfers.removeValue(forKey: requestId) else { return }
        entry.deadline?.cancel()
        switch outcome {
        case .decided(let decision, _):
            switch screen(decision, callId: entry.callId) {
            case .success(let allowed):
                entry.decided(allowed)
            case .failure(let denial):
                entry.decided(.reject(status: 403, reason: "Forbidden", headers: ["Warning": DestinationGuard.warning(denial)]))
            }
        case .fallback(let cause):
            fallbacks.increment()
            logger.notice("fallback decided a transfer", metadata: ["call.id": "\(entry.callId)", "decision.cause": "\(cause)"])
            entry.decided(configuration.fallback.decision)
        }
    }

    // MARK: - Responses

    static func response(for decision: Decision, to request: SIPRequest, toTag: String) -> SIPResponse {
        switch decision {
        case .redirect(let targets):
            var response = SIPResponse(replyingTo: request, status: 302, toTag: toTag)
            response.headers.add("Contact", contacts(targets))
            return response
        case .reject(let status, let reason, let headers):
            var response = SIPResponse(replyingTo: request, status: status, reason: reason, toTag: toTag)
            for (name, value) in headers.sorted(by: { $0.key < $1.key }) { response.headers.add(name, value) }
            return response
        case .bridge, .answer:
            // Only when the bridge cannot take the call (its call limit, a ring timeout beyond its maximum).
            var response = SIPResponse(replyingTo: request, status: 503, toTag: toTag)
            response.headers.add("Retry-After", "5")
            return response
        }
    }

    /// A redirect's Contact header value.
    static func contacts(_ targets: [Target]) -> String {
        targets.map { target in target.q.map { "<\(target.uri)>;q=\(formatQ($0))" } ?? "<\(target.uri)>" }.joined(separator: ", ")
    }

    /// q-values have at most three decimals (RFC 3261 §20.10).
    static func formatQ(_ q: Double) -> String {
        let thousandths = Int((min(max(q, 0), 1) * 1000).rounded())
        if thousandths == 1000 { return "1.0" }
        var digits = String(thousandths)
        while digits.count < 3 { digits = "0" + digits }
        while digits.count > 1, digits.hasSuffix("0") { digits.removeLast() }
        return "0.\(digits)"
    }
}

extension DecisionGate: TransferDecider {
    /// A phone's REFER asks where its target goes, as a new call would, under the same deadline and fallback. No
    /// `call.offered`: the call was offered once, and the offer's `transfer` member tells the worker what this is.
    func decideTransfer(callId: String, offer: CallOffer, decided: @escaping (Decision) -> Void) {
        nextTransfer += 1
        let requestId = "\(callId)-t\(nextTransfer)"
        let entry = TransferWaiting(callId: callId, decided: decided)
        entry.deadline = loop.assumeIsolated().scheduleTask(in: TimeAmount(configuration.decisionTimeout)) { [self] in
            decideTransfer(requestId: requestId, outcome: .fallback(cause: .timeout))
        }
        transfers[requestId] = entry
        guard !stopping else {
            decideTransfer(requestId: requestId, outcome: .fallback(cause: .shutdown))
            return
        }
        bus.requestDecision(requestId: requestId, callId: callId, offer: offer, deadline: .now + configuration.decisionTimeout)
    }
}

extension DecisionGate: NextStepDecider {
    /// A failure step asks as a new call would, under the same deadline; its request id is the call id, `-f`, the step.
    func decideNextStep(callId: String, offer: CallOffer, decided: @escaping (NextStep) -> Void) -> String {
        let step = offer.failure?.step ?? 1
        let requestId = "\(callId)-f\(step)"
        let entry = StepWaiting(callId: callId, step: step, askedAt: .now(), decided: decided)
        entry.deadline = loop.assumeIsolated().scheduleTask(in: TimeAmount(configuration.decisionTimeout)) { [self] in
            decideStep(requestId: requestId, outcome: .fallback(cause: .timeout))
        }
        steps[requestId] = entry
        guard !stopping else {
            decideStep(requestId: requestId, outcome: .fallback(cause: .shutdown))
            return requestId
        }
        bus.requestDecision(requestId: requestId, callId: callId, offer: offer, deadline: .now + configuration.decisionTimeout)
        return requestId
    }

    func withdrawStep(_ requestId: String) {
        steps.removeValue(forKey: requestId)?.deadline?.cancel()
    }
}
