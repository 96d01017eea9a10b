import BusSchema
import Logging
import Metrics
import NIOCore
import SIPCore

/// Calls a proxy holds and asks about with the `decide` command (OpenSER 1.x, whose `exec_dset` runs
/// `switchboard-exec` per call): each is offered to the workers as an INVITE is, under the same deadline,
/// fallback, destination policy and events (`call.offered`, then `call.routed` or `call.rejected`), and the
/// outcome goes back on the commands socket for the proxy to carry out. The proxy can only relay or reply,
/// so a worker's `bridge` comes back as a redirect to its targets, in order.
/// Loop-bound: used on the SIP event loop only; the bus thread reaches it through `resolve`.
final class Handoffs {
    /// A `decide` waiting for its decision.
    private final class Waiting {
        let callId: String
        let request: CommandRequest
        let envelope: [[UInt8]]
        let offeredAt: NIODeadline
        var deadline: Scheduled<Void>?

        init(callId: String, request: CommandRequest, envelope: [[UInt8]], offeredAt: NIODeadline) {
            self.callId = callId
            self.request = request
            self.envelope = envelope
            self.offeredAt = offeredAt
        }
    }

    private let configuration: BridgeConfiguration
    private let loop: EventLoop
    private let bus: BridgeBus
    private let destinations: DestinationGuard
    private let callPrefix: String
    private let logger: Logger
    /// Decision request id (the call id) → the command waiting for it.
    private var waiting: [String: Waiting] = [:]
    private var nextCall: UInt64 = 0
    /// Set by `drain()`: a new `decide` gets the fallback rather than an offer to the workers.
    private var stopping = false

    private let offered = Counter(label: "switchboard_handoffs_total")
    private let fallbacks = Counter(label: "switchboard_decision_fallbacks_total")

    init(configuration: BridgeConfiguration, loop: EventLoop, bus: BridgeBus, destinations: DestinationGuard, callPrefix: String,
         logger: Logger) {
        self.configuration = configuration
        self.loop = loop
        self.bus = bus
        self.destinations = destinations
        // `-h`: a call id space of its own beside the INVITEs' (`prefix-N`).
        self.callPrefix = "\(callPrefix)-h"
        self.logger = logger
    }

    /// A `decide` command (checked by `Command.problem`): offered to the workers with the decision deadline
    /// running, or refused with a reply naming why.
    func decide(_ offer: HandoffOffer, request: CommandRequest, envelope: [[UInt8]], scope: CommandScope) {
        // Deciding for any caller is the proxy's role, not an account's.
        guard scope == .everyAccount else {
            return refuse(request, envelope, ErrorReply(code: .accountDenied, message: "decide is for a proxy's key, not one limited to accounts"))
        }
        guard waiting.count < configuration.maxPendingOffersPerSource else {
            return refuse(request, envelope, ErrorReply(code: .limitExceeded, message:
                "\(waiting.count) decide commands are waiting (max_pending_offers_per_source); apply your fallback"))
        }
        let callOffer: CallOffer
        switch OfferNormalizer.offer(for: offer) {
        case .success(let normalized): callOffer = normalized
        case .failure(let problem): return refuse(request, envelope, ErrorReply(code: .badCommand, message: problem.message))
        }
        nextCall += 1
        let callId = "\(callPrefix)\(nextCall)"
        offered.increment()
        let entry = Waiting(callId: callId, request: request, envelope: envelope, offeredAt: .now())
        entry.deadline = loop.assumeIsolated().scheduleTask(in: TimeAmount(configuration.decisionTimeout)) { [self] in
            answer(requestId: callId, .fallback(.timeout))
        }
        waiting[callId] = entry
        guard !stopping else {
            bus.publish(callId: callId, .callOffered(callOffer))
            return answer(requestId: callId, .fallback(.shutdown))
        }
        bus.requestDecision(requestId: callId, callId: callId, offer: callOffer, deadline: .now + configuration.decisionTimeout)
    }

    /// Takes the bus' answers that are for a `decide`; returns the others.
    func resolve(_ batch: [(requestId: String, resolution: BusEndpoints.Resolution)]) -> [(requestId: String, resolution: BusEndpoints.Resolution)] {
        guard !waiting.isEmpty else { return batch }
        return batch.filter { requestId, resolution in
            guard waiting[requestId] != nil else { return true }
            answer(requestId: requestId, resolution)
            return false
        }
    }

    /// Answers every `decide` still waiting with the fallback, and any that comes from now on.
    func drain() {
        stopping = true
        for requestId in Array(waiting.keys) {
            answer(requestId: requestId, .fallback(.shutdown))
        }
    }

    /// The first answer wins (a decision racing the deadline finds nothing waiting): publishes the outcome and replies.
    private func answer(requestId: String, _ resolution: BusEndpoints.Resolution) {
        guard let entry = waiting.removeValue(forKey: requestId) else { return }
        entry.deadline?.cancel()
        let decisionMs = Double((NIODeadline.now() - entry.offeredAt).nanoseconds) / 1_000_000
        var decided: HandoffDecision
        switch resolution {
        case .decided(let decision, let workerId):
            decided = screened(HandoffDecision(callId: entry.callId, decision: Self.proxyable(decision), workerId: workerId, fallback: false))
        case .fallback(let cause):
            fallbacks.increment()
            logger.notice("fallback answered handoff", metadata: ["call.id": "\(entry.callId)", "decision.cause": "\(cause)",
                                                                  "decision.fallback": "\(configuration.fallback)"])
            decided = HandoffDecision(callId: entry.callId, decision: configuration.fallback.decision, workerId: nil, fallback: true, cause: cause)
        }
        switch decided.decision {
        case .redirect(let targets):
            bus.publish(callId: entry.callId, .callRouted(Routed(targets: targets, workerId: decided.workerId, fallback: decided.fallback,
                                                                cause: decided.cause, decisionMs: decisionMs)))
        case .reject(let status, let reason, let headers):
            // The proxy answers with this reason: the standard one when the worker gave none.
            let phrase = reason ?? SIPResponse.standardReason(for: status)
            decided.decision = .reject(status: status, reason: phrase, headers: headers)
            bus.publish(callId: entry.callId, .callRejected(Rejected(status: status, reason: phrase, workerId: decided.workerId,
                                                                      fallback: decided.fallback, cause: decided.cause, decisionMs: decisionMs)))
        case .bridge, .answer:
            preconditionFailure("proxyable(_:) turns bridge into redirect, answer into reject")
        }
        bus.reply(CommandReply(requestId: entry.request.requestId, outcome: .decided(decided)), to: entry.envelope)
    }

    /// A worker's targets pass the destination policy as a redirect's do; none left: 403, cause `policy_denied`.
    private func screened(_ decided: HandoffDecision) -> HandoffDecision {
        guard case .redirect(let targets) = decided.decision else { return decided }
        let (kept, denial) = destinations.allowed(targets, uri: \.uri, place: .redirect, callId: decided.callId)
        var result = decided
        if kept.isEmpty, let denial {
            result.decision = .reject(status: 403, reason: "Forbidden", headers: ["Warning": DestinationGuard.warning(denial)])
            result.cause = .policyDenied
        } else {
            result.decision = .redirect(kept)
        }
        return result
    }

    /// The proxy holds the INVITE, so it forks a `bridge` itself: serial targets as falling q-values, parallel as equal ones.
    static func proxyable(_ decision: Decision) -> Decision {
        // Only the bridge answers a call itself, and this call is the proxy's: its caller gets 503, as without a bridge.
        if case .answer = decision { return .reject(status: 503, reason: "Service Unavailable") }
        guard case .bridge(let route) = decision else { return decision }
        let count = route.targets.count
        return .redirect(route.targets.enumerated().map { index, target in
            Target(uri: target.uri, q: route.mode == .parallel ? 1 : Double(count - index) / Double(count))
        })
    }

    private func refuse(_ request: CommandRequest, _ envelope: [[UInt8]], _ error: ErrorReply) {
        logger.warning("decide refused", metadata: ["bus.error": "\(error.code)", "bus.reason": "\(error.message)"])
        bus.reply(CommandReply(requestId: request.requestId, outcome: .failed(error)), to: envelope)
    }
}

extension OfferNormalizer {
    struct HandoffProblem: Error {
        let message: String
    }

    /// The offer workers see for a call a proxy holds, read with the SIP grammar an INVITE's headers are read with.
    static func offer(for handoff: HandoffOffer) -> Result<CallOffer, HandoffProblem> {
        guard let requestUri = SIPAnyURI(handoff.requestUri) else {
            return .failure(HandoffProblem(message: "request_uri \(handoff.requestUri.debugDescription) is not a URI"))
        }
        guard let from = NameAddress(handoff.from) else {
            return .failure(HandoffProblem(message: "from \(handoff.from.debugDescription) is not a From header value"))
        }
        guard let to = NameAddress(handoff.to) else {
            return .failure(HandoffProblem(message: "to \(handoff.to.debugDescription) is not a To header value"))
        }
        var source = Source(address: "", port: 0, transport: "udp", peer: "")
        if let reported = handoff.source {
            guard let parsed = parseSource(reported) else {
                return .failure(HandoffProblem(message: "source \(reported.debugDescription) is not ip:port;transport=..."))
            }
            source = Source(address: parsed.address, port: parsed.port, transport: parsed.transport ?? "udp", peer: parsed.address)
        }
        let authUser = handoff.authUser.flatMap { $0.isEmpty ? nil : $0 }
        return .success(CallOffer(sipCallId: handoff.sipCallId, requestUri: address(requestUri, displayName: nil),
                                  from: address(from.uri, displayName: from.displayName), to: address(to.uri, displayName: to.displayName),
                                  source: source, authUser: authUser, headers: [:], sdp: nil))
    }
}
