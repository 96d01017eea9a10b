#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The TCP connection a received message came in on (libzmq's `ZMQ_SRCFD`), so that a server can end one
/// peer's connection: libzmq has no call that drops one peer of a ROUTER or XPUB socket.
///
/// The descriptor belongs to libzmq's I/O thread. ``shutDown()`` only shuts the connection down
/// (`shutdown(2)`, never `close(2)`): libzmq sees the end of the stream and closes the connection, its
/// session and its pipe itself. Descriptor numbers are reused once libzmq closes one, so the handle also
/// holds the connection's two addresses from when the message arrived and acts only while the descriptor
/// still has them (``isCurrent``); otherwise it leaves the descriptor, now someone else's, alone.
///
/// ```swift
/// guard let (frames, userId, connection) = try router.receiveWithPeer(dontWait: true) else { return }
/// if !allowed.contains(userId ?? "") { connection?.shutDown() }   // the peer reconnects, and ZAP decides again
/// ```
public struct ZMQPeerConnection: Hashable, Sendable, CustomStringConvertible {
    /// libzmq's descriptor for the connection.
    public let descriptor: Int32
    private let local: [UInt8]
    private let remote: [UInt8]

    /// The connection behind `descriptor` now; nil when it is no connected socket (IPC, inproc, gone).
    init?(descriptor: Int32) {
        guard descriptor >= 0, let local = Self.address(descriptor, .local),
              let remote = Self.address(descriptor, .remote) else { return nil }
        (self.descriptor, self.local, self.remote) = (descriptor, local, remote)
    }

    /// Whether the descriptor still is this connection (same local and peer address).
    public var isCurrent: Bool {
        Self.address(descriptor, .local) == local && Self.address(descriptor, .remote) == remote
    }

    /// Shuts the connection down in both directions, if the descriptor still is this connection; true when it did.
    @discardableResult
    public func shutDown() -> Bool {
        guard isCurrent else { return false }
        return shutdown(descriptor, Int32(SHUT_RDWR)) == 0
    }

    public var description: String { "fd \(descriptor)" }

    private enum End { case local, remote }

    /// One end's socket address as raw bytes, for comparison only.
    private static func address(_ descriptor: Int32, _ end: End) -> [UInt8]? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                switch end {
                case .local: getsockname(descriptor, pointer, &length)
                case .remote: getpeername(descriptor, pointer, &length)
                }
            }
        }
        guard result == 0 else { return nil }
        return withUnsafeBytes(of: &storage) { Array($0.prefix(Int(length))) }
    }
}
