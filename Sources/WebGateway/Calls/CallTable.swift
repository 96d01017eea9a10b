import BusSchema
import Foundation
import NIOConcurrencyHelpers

/// What changed, for the WebSocket and any other observer.
struct CallChange: Equatable, Sendable {
    var call: LiveCall
    /// True for a call that just ended and left the table.
    var removed: Bool
}

/// The live calls of every bridge, built from their events, with the per-owner concurrency count and
/// a broadcast of every change. Shared by the event feed (writer), the REST routes and the WebSocket.
///
/// ```swift
/// let table = CallTable()
/// let (snapshot, changes) = table.subscribe()
/// for await change in changes { print(change.call.state) }
/// ```
final class CallTable: Sendable {
    private struct State {
        var calls: [String: LiveCall] = [:]
        /// Ended calls kept for a while so `GET /calls/{id}` can still say how they ended.
        var ended: [String: LiveCall] = [:]
        var endedOrder: [String] = []
        let endedCapacity: Int
        /// Originates sent to a bridge and not yet answered, per owner.
        var pending: [String: Int] = [:]
        var observers: [UUID: AsyncStream<CallChange>.Continuation] = [:]
        /// When each originate's HTTP request arrived, for the request→ringing latency.
        var requestedAt: [String: ContinuousClock.Instant] = [:]
        var onRinging: (@Sendable (Duration) -> Void)?

        /// Moves an ended call out of the live table.
        mutating func finish(_ call: LiveCall) -> CallChange {
            calls[call.callId] = nil
            requestedAt[call.callId] = nil
            ended[call.callId] = call
            endedOrder.append(call.callId)
            if endedOrder.count > endedCapacity { ended[endedOrder.removeFirst()] = nil }
            return CallChange(call: call, removed: true)
        }
    }

    private let state: NIOLockedValueBox<State>

    /// Told the request→ringing latency of originated calls (leg A's first ringing).
    var onRinging: (@Sendable (Duration) -> Void)? {
        get { state.withLockedValue { $0.onRinging } }
        set { state.withLockedValue { $0.onRinging = newValue } }
    }

    init(endedCapacity: Int = 500) {
        state = NIOLockedValueBox(State(endedCapacity: endedCapacity))
    }

    // MARK: Reading

    func call(id: String) -> LiveCall? {
        state.withLockedValue { state in state.calls[id] ?? state.ended[id] }
    }

    /// Live calls, oldest first; with `owner`, only that owner's.
    func liveCalls(owner: String? = nil) -> [LiveCall] {
        state.withLockedValue { state in
            state.calls.values.filter { owner == nil || $0.owner == owner }.sorted { ($0.createdAt, $0.callId) < ($1.createdAt, $1.callId) }
        }
    }

    /// The current calls and a stream of every change after them, with nothing lost between the two.
    func subscribe() -> (snapshot: [LiveCall], changes: AsyncStream<CallChange>) {
        let (stream, continuation) = AsyncStream.makeStream(of: CallChange.self, bufferingPolicy: .bufferingNewest(1000))
        let id = UUID()
        let snapshot = state.withLockedValue { state in
            state.observers[id] = continuation
            return state.calls.values.sorted { $0.createdAt < $1.createdAt }
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLockedValue { _ = $0.observers.removeValue(forKey: id) }
        }
        return (snapshot, stream)
    }

    /// The live call `owner` originated with this bus idempotency key (`OWNER:KEY`), if any.
    func liveCall(owner: String, idempotencyKey: String) -> LiveCall? {
        state.withLockedValue { state in state.calls.values.first { $0.owner == owner && $0.idempotencyKey == idempotencyKey } }
    }

    // MARK: Concurrency

    /// Counts an originate against `owner`'s cap before it is sent; false when the cap is reached.
    func reserve(owner: String, limit: Int) -> Bool {
        state.withLockedValue { state in
            let live = state.calls.values.count { $0.owner == owner }
            guard live + state.pending[owner, default: 0] < limit else { return false }
            state.pending[owner, default: 0] += 1
            return true
        }
    }

    /// The originate was answered: the call counts from now on as a live call of `owner`
    /// (its `call.originated` event may come before or after this).
    func commit(owner: String, callId: String, bridge: String, from: String, to: String, idempotencyKey: String? = nil,
                requestedAt: ContinuousClock.Instant) {
        let change: CallChange? = state.withLockedValue { state in
            state.pending[owner, default: 1] -= 1
            if state.pending[owner] == 0 { state.pending[owner] = nil }
            if state.ended[callId] != nil { return nil }
            state.requestedAt[callId] = requestedAt
            if var call = state.calls[callId] {
                call.idempotencyKey = call.idempotencyKey ?? idempotencyKey
                state.calls[callId] = call
                return nil
            }
            let call = LiveCall(callId: callId, bridge: bridge, kind: .originate, state: .live(.dialing), owner: owner, from: from, to: to,
                                legs: [], createdAt: Timestamp.now(), idempotencyKey: idempotencyKey)
            state.calls[callId] = call
            return CallChange(call: call, removed: false)
        }
        if let change { broadcast(change) }
    }

    /// The originate failed or was refused: give the reservation back.
    func release(owner: String) {
        state.withLockedValue { state in
            state.pending[owner, default: 1] -= 1
            if state.pending[owner] == 0 { state.pending[owner] = nil }
        }
    }

    // MARK: Writing (the event feed)

    /// Loads calls saved before a restart.
    func restore(_ saved: [LiveCall]) {
        state.withLockedValue { state in for call in saved { state.calls[call.callId] = call } }
    }

    /// Applies one event's update and returns what changed (to persist), after telling observers.
    @discardableResult
    func apply(_ update: CallUpdate, bridge: String, seq: UInt64?, at timestamp: String) -> [CallChange] {
        var latency: Duration?
        let changes: [CallChange] = state.withLockedValue { state in
            if case .bridgeStarted = update {
                return state.calls.values.filter { $0.bridge == bridge }.map { call in
                    var call = call
                    call.state = .ended
                    call.endCause = EndCause.bridgeRestart.rawValue
                    call.endedAt = timestamp
                    return state.finish(call)
                }
            }
            guard let callId = update.callId else { return [] }
            var call = state.calls[callId] ?? LiveCall(callId: callId, bridge: bridge, kind: .inbound, state: .live(.routing), legs: [],
                                                 createdAt: timestamp)
            if state.ended[callId] != nil { return [] }
            call.seq = seq ?? call.seq
            switch update {
            case .originated(_, let account, let a, let b, let idempotencyKey):
                call.kind = .originate
                call.idempotencyKey = call.idempotencyKey ?? idempotencyKey
                call.owner = account ?? call.owner
                call.from = call.from ?? a
                call.to = call.to ?? b
                if call.state == .live(.routing) { call.state = .live(.dialing) }
            case .offered(_, let from, let to):
                call.from = from
                call.to = to
            case .dialing(_, let leg, let uri):
                call.updateLeg(leg, uri: uri) { $0.state = .calling }
                if call.state == .live(.routing) { call.state = .live(.dialing) }
            case .ringing(_, let leg):
                call.updateLeg(leg) { $0.state = .ringing }
                if call.state != .live(.connected) { call.state = .live(.ringing) }
                if leg == Leg.a.rawValue, let start = state.requestedAt.removeValue(forKey: callId) { latency = .now - start }
            case .answered(_, let leg, let uri):
                call.updateLeg(leg, uri: uri) { $0.state = .answered }
            case .connected:
                call.state = .live(.connected)
                call.connectedAt = timestamp
            case .held(_, let leg, let held):
                call.updateLeg(leg) { $0.held = held }
            case .legFailed(_, let leg, _):
                call.updateLeg(leg) { $0.state = .ended }
            case .ended(_, let cause):
                call.state = .ended
                call.endCause = cause
                call.endedAt = timestamp
                for index in call.legs.indices { call.legs[index].state = .ended }
                return [state.finish(call)]
            case .bridgeStarted:
                return []
            }
            state.calls[callId] = call
            return [CallChange(call: call, removed: false)]
        }
        for change in changes { broadcast(change) }
        if let latency { onRinging?(latency) }
        return changes
    }

    private func broadcast(_ change: CallChange) {
        let targets = state.withLockedValue { state in Array(state.observers.values) }
        for continuation in targets { continuation.yield(change) }
    }
}

extension CallUpdate {
    var callId: String? {
        switch self {
        case .originated(let id, _, _, _, _), .offered(let id, _, _), .dialing(let id, _, _), .ringing(let id, _),
             .answered(let id, _, _), .connected(let id), .held(let id, _, _), .legFailed(let id, _, _), .ended(let id, _):
            id
        case .bridgeStarted:
            nil
        }
    }
}
