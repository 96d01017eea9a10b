private import CZeroMQ
import Synchronization

/// A ZeroMQ context: owns the I/O threads every socket created from it uses.
///
/// Create one per process and close it after every socket. `deinit` asserts it was closed, because a
/// context left open keeps its I/O threads alive.
public final class ZMQContext: @unchecked Sendable {
    // Sendable by hand for the raw handle: libzmq documents the context as thread-safe, and the handle is
    // only read after init.
    let handle: UnsafeMutableRawPointer
    private let closed = Atomic(false)

    /// Creates a context with `ioThreads` background I/O threads.
    ///
    /// ```swift
    /// let context = try ZMQContext()
    /// defer { context.close() }
    /// ```
    public init(ioThreads: Int32 = 1) throws(ZMQError) {
        guard let handle = zmq_ctx_new() else { throw ZMQError(call: "zmq_ctx_new", errno: zmq_errno()) }
        self.handle = handle
        try retryingEINTR("zmq_ctx_set") { zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads) }
    }

    /// Terminates the context. Blocks until every socket made from it is closed (their linger ends).
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = try? retryingEINTR("zmq_ctx_term") { zmq_ctx_term(handle) }
    }

    deinit {
        assert(closed.load(ordering: .acquiring), "ZMQContext deallocated without close()")
    }
}
