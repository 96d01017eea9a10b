import BusSchema

/// The worker pool of one bridge's decisions socket, as a pure state machine (no sockets, no clock).
///
/// The owner feeds it frames from the ROUTER socket, new requests and clock ticks, and carries out the
/// returned actions. Workers are picked least-recently-used first, up to each worker's capacity. Liveness
/// follows the zguide's Paranoid Pirate: both sides heartbeat, and a worker silent for `liveness`
/// intervals is dropped and its requests go to another worker.
///
/// The SIP side owns each call's deadline: the pool only forgets requests past theirs.
struct DecisionPool {
    struct Configuration {
        var bridgeId: String
        var heartbeatInterval: Duration
        var liveness: Int
    }

    enum Action: Equatable {
        /// Send this message to the worker with this ROUTER identity.
        case send([UInt8], BridgeMessage)
        /// A worker decided; hand the decision to the call.
        case deliver(requestId: String, decision: Decision, workerId: String)
        /// No usable decision will come; apply the fallback now rather than wait for the deadline.
        case fallback(requestId: String, cause: DecisionCause)
        case workerJoined(workerId: String)
        case workerLeft(workerId: String)
        /// The worker stopped heartbeating.
        case workerLost(workerId: String)
        /// A frame was refused (the reply, if one could be sent, is a separate `.send`).
        case refused(code: String, message: String)
        /// A request passed its deadline unanswered; the SIP side has applied its fallback.
        case expired(requestId: String)
    }

    private struct Worker {
        var workerId: String
        var capacity: Int
        var inFlight: Set<String> = []
        var lastHeard: ContinuousClock.Instant
        var lastSent: ContinuousClock.Instant
    }

    private struct Request {
        var requestId: String
        var callId: String
        var offer: CallOffer
        var deadline: ContinuousClock.Instant
        var worker: [UInt8]?
    }

    private let configuration: Configuration
    private var workers: [[UInt8]: Worker] = [:]
    /// Identities, least recently used first.
    private var order: [[UInt8]] = []
    private var requests: [String: Request] = [:]

    init(configuration: Configuration) {
        self.configuration = configuration
    }

    var workerCount: Int { workers.count }
    var inFlightCount: Int { requests.count }

    /// Asks a worker to decide on `offer`; answers `.fallback` at once when no worker can take it.
    mutating func submit(requestId: String, callId: String, offer: CallOffer,
                         deadline: ContinuousClock.Instant, now: ContinuousClock.Instant) -> [Action] {
        let request = Request(requestId: requestId, callId: callId, offer: offer, deadline: deadline)
        return dispatch(request, now: now)
    }

    /// Handles one frame that arrived from the worker with ROUTER identity `identity`.
    mutating func receive(_ frame: [UInt8], from identity: [UInt8], now: ContinuousClock.Instant) -> [Action] {
        let message: WorkerMessage
        do {
            message = try WorkerMessage.decode(frame)
        } catch {
            return refuse(identity, ErrorReply(code: error.code, message: error.message))
        }
        workers[identity]?.lastHeard = now
        switch message {
        case .ready(let workerId, let capacity):
            let joined = workers[identity] == nil
            if joined {
                workers[identity] = Worker(workerId: workerId, capacity: capacity, lastHeard: now, lastSent: now)
                order.append(identity)
            } else {
                workers[identity]?.capacity = capacity
            }
            let welcome = Action.send(identity, .welcome(bridgeId: configuration.bridgeId,
                                                         heartbeatMs: Int(configuration.heartbeatInterval.milliseconds)))
            return joined ? [.workerJoined(workerId: workerId), welcome] : [welcome]
        case .heartbeat:
            guard workers[identity] != nil else {
                return refuse(identity, ErrorReply(code: .notReady, message: "send worker.ready before anything else"))
            }
            return []
        case .bye:
            guard let worker = workers[identity] else { return [] }
            return [.workerLeft(workerId: worker.workerId)] + remove(identity, now: now)
        case .decision(let requestId, let decision):
            guard let worker = workers[identity] else {
                return refuse(identity, ErrorReply(code: .notReady, message: "send worker.ready before anything else", requestId: requestId))
            }
            guard let request = requests[requestId], request.worker == identity else {
                return refuse(identity, ErrorReply(code: .unknownRequest,
                                                   message: "no open request \(requestId) for this worker (finished, expired or never sent)",
                                                   requestId: requestId))
            }
            requests[requestId] = nil
            workers[identity]?.inFlight.remove(requestId)
            markUsed(identity)
            if let problem = decision.problem {
                return refuse(identity, ErrorReply(code: .badDecision, message: problem, requestId: requestId))
                    + [.fallback(requestId: request.requestId, cause: .invalidDecision)]
            }
            return [.deliver(requestId: requestId, decision: decision, workerId: worker.workerId)]
        }
    }

    /// The worker's connection is gone (a send to it failed): it is lost now, and its open requests
    /// move to another worker while their deadline allows.
    mutating func unreachable(_ identity: [UInt8], now: ContinuousClock.Instant) -> [Action] {
        guard let worker = workers[identity] else { return [] }
        return [.workerLost(workerId: worker.workerId)] + remove(identity, now: now)
    }

    /// Heartbeats due workers, drops silent ones (re-dispatching their requests) and forgets expired requests.
    mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        let silence = configuration.heartbeatInterval * configuration.liveness
        for identity in order {
            guard let worker = workers[identity] else { continue }
            if now - worker.lastHeard > silence {
                actions.append(.workerLost(workerId: worker.workerId))
                actions += remove(identity, now: now)
            } else if now - worker.lastSent >= configuration.heartbeatInterval {
                workers[identity]?.lastSent = now
                actions.append(.send(identity, .heartbeat))
            }
        }
        for (requestId, request) in requests where request.deadline <= now {
            requests[requestId] = nil
            if let identity = request.worker { workers[identity]?.inFlight.remove(requestId) }
            actions.append(.expired(requestId: requestId))
        }
        return actions
    }

    /// When `tick` next has something to do, so the owner can sleep until then.
    func nextTick(after now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        let heartbeat = now + configuration.heartbeatInterval / 4
        return requests.values.map(\.deadline).min().map { min($0, heartbeat) } ?? heartbeat
    }

    private mutating func dispatch(_ request: Request, now: ContinuousClock.Instant) -> [Action] {
        guard !workers.isEmpty else { return [.fallback(requestId: request.requestId, cause: .noWorker)] }
        guard let identity = order.first(where: { workers[$0].map { $0.inFlight.count < $0.capacity } ?? false }) else {
            return [.fallback(requestId: request.requestId, cause: .overload)]
        }
        var request = request
        request.worker = identity
        requests[request.requestId] = request
        workers[identity]?.inFlight.insert(request.requestId)
        workers[identity]?.lastSent = now
        markUsed(identity)
        let remaining = max(0, (request.deadline - now).milliseconds)
        return [.send(identity, .decisionRequest(requestId: request.requestId, callId: request.callId,
                                                  deadlineMs: Int(remaining), offer: request.offer))]
    }

    /// Removes a worker and gives each of its open requests to another worker while their deadline allows.
    private mutating func remove(_ identity: [UInt8], now: ContinuousClock.Instant) -> [Action] {
        guard let worker = workers.removeValue(forKey: identity) else { return [] }
        order.removeAll { $0 == identity }
        var actions: [Action] = []
        for requestId in worker.inFlight.sorted() {
            guard var request = requests.removeValue(forKey: requestId) else { continue }
            request.worker = nil
            if request.deadline > now { actions += dispatch(request, now: now) }
        }
        return actions
    }

    private mutating func markUsed(_ identity: [UInt8]) {
        order.removeAll { $0 == identity }
        order.append(identity)
    }

    private func refuse(_ identity: [UInt8], _ reply: ErrorReply) -> [Action] {
        [.refused(code: reply.code.rawValue, message: reply.message), .send(identity, .error(reply))]
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
