#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
private import CZeroMQ

/// A failed libzmq call: which call, and the `errno` it left.
///
/// Every zmq call goes through ``retryingEINTR(_:_:)`` so that the call name and errno are always
/// recorded the same way, like swift-nio's syscall wrapper.
public struct ZMQError: Error, Equatable, CustomStringConvertible {
    /// The libzmq function that failed, e.g. `"zmq_bind"`.
    public let call: String
    /// The `errno` value libzmq reported.
    public let errno: Int32

    /// True when the call would have blocked (`EAGAIN`): a full high-water mark on send, no message on receive.
    public var wouldBlock: Bool { errno == EAGAIN }
    /// True when a ROUTER with mandatory routing had no connection to the peer (`EHOSTUNREACH`).
    public var hostUnreachable: Bool { errno == EHOSTUNREACH }
    /// True when the context was terminated underneath the socket (`ETERM`).
    public var contextTerminated: Bool { errno == ETERM }

    public var description: String {
        "\(call) failed: \(String(cString: zmq_strerror(errno))) (errno \(errno))"
    }
}

/// Runs a libzmq call, retrying on `EINTR`, and throws ``ZMQError`` on any other failure.
@discardableResult
func retryingEINTR(_ call: String, _ body: () -> Int32) throws(ZMQError) -> Int32 {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = zmq_errno()
        if code == EINTR { continue }
        throw ZMQError(call: call, errno: code)
    }
}
