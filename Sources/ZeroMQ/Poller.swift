#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
private import CZeroMQ

/// Waits on several sockets, and on plain file descriptors such as a wake-up pipe, at once. Owners of
/// sockets use a ``ZMQServiceLoop``, which polls for them; this is its building block (and a test peer's).
///
/// ```swift
/// var poller = ZMQPoller()
/// let events = poller.add(socket)
/// let ready = try poller.poll(timeout: .milliseconds(100))
/// if ready.contains(events) { ... }
/// ```
public struct ZMQPoller {
    private var items: [zmq_pollitem_t] = []

    public init() {}

    /// Watches `socket` for readability; returns the index `poll` reports it under.
    public mutating func add(_ socket: ZMQSocket) -> Int {
        items.append(zmq_pollitem_t(socket: socket.handle, fd: -1, events: Int16(ZMQ_POLLIN), revents: 0))
        return items.count - 1
    }

    /// Watches a file descriptor for readability; returns the index `poll` reports it under.
    public mutating func add(fileDescriptor: Int32) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: fileDescriptor, events: Int16(ZMQ_POLLIN), revents: 0))
        return items.count - 1
    }

    /// Blocks up to `timeout` (nil: forever) and returns the indices that are readable.
    public mutating func poll(timeout: Duration?) throws(ZMQError) -> Set<Int> {
        let milliseconds = timeout.map { max(0, $0.milliseconds) } ?? -1
        let count = items.count
        try retryingEINTR("zmq_poll") {
            items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32(count), CLong(milliseconds)) }
        }
        var ready = Set<Int>()
        for (index, item) in items.enumerated() where item.revents & Int16(ZMQ_POLLIN) != 0 {
            ready.insert(index)
        }
        return ready
    }
}

/// A self-pipe that lets another thread wake a thread blocked in ``ZMQPoller/poll(timeout:)``: the
/// ``ZMQServiceLoop``'s inbox signals it, the loop `drain()`s it and then empties the inbox.
final class Wakeup: Sendable {
    // Both ends are plain fds; write(2) and read(2) on a pipe are thread-safe.
    private let readEnd: Int32
    private let writeEnd: Int32

    /// The descriptor to add to a poller.
    var fileDescriptor: Int32 { readEnd }

    init() throws(ZMQError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ZMQError(call: "pipe", errno: errno) }
        readEnd = fds[0]
        writeEnd = fds[1]
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
    }

    /// Wakes the poller. A full pipe already means a wake-up is pending, so that failure is ignored.
    func signal() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    /// Empties the pipe; call it from the polling thread when it reports readable.
    func drain() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(readEnd, &buffer, buffer.count) > 0 {}
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }
}
