import BusSchema
import Foundation
import ZeroMQ

/// A DEALER on a bridge's replay endpoint, as a subscriber catching up would use it.
// Unchecked: a test drives it one awaited call at a time; each blocking call runs on a dispatch queue
// while the test waits for it, so no two threads touch it at once.
final class ReplayClient: @unchecked Sendable {
    private let context: ZMQContext
    private let socket: ZMQSocket

    init(endpoint: String) throws {
        context = try ZMQContext()
        socket = try ZMQSocket(context: context, type: .dealer)
        try socket.connect(endpoint)
    }

    /// Sends `frame` and collects the replies up to `replay.end` or `error` (off the cooperative pool).
    func ask(_ frame: [UInt8], timeout: Duration = .seconds(3)) async throws -> [ReplayReply] {
        try await offload { Result { try self.askBlocking(frame, timeout: timeout) } }.get()
    }

    func ask(_ request: ReplayRequest) async throws -> [ReplayReply] {
        try await ask(request.encoded())
    }

    /// Every event from `fromSeq` to the end of the journal, asking again from `next_seq` until caught up.
    /// Replays until caught up with at least `minimum` events: the journal commits asynchronously, so
    /// an event published a moment ago may not be replayable yet.
    func catchUp(from fromSeq: UInt64, atLeast minimum: Int, max: Int = 1000,
                 timeout: Duration = .seconds(3)) async throws -> (events: [Event], end: ReplayEnd?) {
        let deadline = ContinuousClock.now + timeout
        while true {
            let result = try await catchUp(from: fromSeq, max: max)
            if result.events.count >= minimum || ContinuousClock.now >= deadline { return result }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func catchUp(from fromSeq: UInt64, max: Int = 1000) async throws -> (events: [Event], end: ReplayEnd?) {
        var events: [Event] = []
        var next = fromSeq
        var round = 0
        while true {
            round += 1
            let replies = try await ask(ReplayRequest(requestId: "catch-up-\(round)", fromSeq: next, max: max))
            guard case .end(let end)? = replies.last else { return (events, nil) }
            for case .events(_, let batch) in replies { events += batch.compactMap(\.event) }
            if end.caughtUp { return (events, end) }
            next = end.nextSeq
        }
    }

    private func askBlocking(_ frame: [UInt8], timeout: Duration) throws -> [ReplayReply] {
        try socket.send([frame])
        var replies: [ReplayReply] = []
        var poller = ZMQPoller()
        let index = poller.add(socket)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard try poller.poll(timeout: deadline - .now).contains(index), let frames = try socket.receive(dontWait: true) else { continue }
            guard let payload = frames.last else { continue }
            let reply = try ReplayReply.decode(payload)
            replies.append(reply)
            switch reply {
            case .end, .error: return replies
            case .events: continue
            }
        }
        return replies
    }

    func close() {
        socket.close()
        context.close()
    }
}
