import BusSchema
import Foundation
import ZeroMQ

/// A SUB socket on the bridge's events endpoint, connected before the test sends anything.
// Unchecked: a test drives it one awaited call at a time; each blocking call runs on a dispatch queue
// while the test waits for it, so no two threads touch it at once.
final class EventTap: @unchecked Sendable {
    private let context: ZMQContext
    private let socket: ZMQSocket

    init(endpoint: String) throws {
        context = try ZMQContext()
        socket = try ZMQSocket(context: context, type: .sub)
        try socket.subscribe("")
        try socket.connect(endpoint)
        // The subscription reaches the PUB asynchronously (slow joiner); give it a moment on loopback.
        Thread.sleep(forTimeInterval: 0.2)
    }

    /// Up to `count` events, waiting at most `timeout` overall (off the cooperative pool).
    func take(_ count: Int, timeout: Duration = .seconds(3)) async -> [Event] {
        await offload { self.takeBlocking(count, timeout: timeout) }
    }

    private func takeBlocking(_ count: Int, timeout: Duration) -> [Event] {
        var events: [Event] = []
        var poller = ZMQPoller()
        let index = poller.add(socket)
        let deadline = ContinuousClock.now + timeout
        while events.count < count, ContinuousClock.now < deadline {
            guard (try? poller.poll(timeout: deadline - .now).contains(index)) == true,
                  let frames = try? socket.receive(dontWait: true), let payload = frames.last,
                  let event = try? Event.decode(payload) else { continue }
            events.append(event)
        }
        return events
    }

    func close() {
        socket.close()
        context.close()
    }
}
