import BusSchema
import Logging
import Metrics
import ZeroMQ

/// What every bus socket owner shares: the context and CURVE identity its socket is made with, the loop it
/// lives on, and the counter of refused frames.
struct BusSocketFactory: Sendable {
    let context: ZMQContext
    let curve: BusEndpoints.CurveServer?
    /// With CURVE: which keys each message may come from now.
    let admission: BusAdmission?
    let loop: ZMQServiceLoop
    let refusedFrames: Counter
    let logger: Logger

    /// Makes a server socket (a CURVE server when configured), lets `configure` set it up and binds it; call
    /// it on the loop. The loop closes the socket when it stops, so a failure here leaves nothing open.
    func bind(_ type: ZMQSocketType, at endpoint: String, for role: BusEndpoints.Role,
              configure: (ZMQSocket) throws -> Void = { _ in }) throws -> (socket: ZMQSocket, bound: String) {
        let socket = try ZMQSocket(context: context, type: type)
        loop.onStop { _ in socket.close() }
        if let curve {
            try socket.setZAPDomain(role.rawValue)
            try socket.setCurveServer(secretKey: curve.keyPair.secretKey)
        }
        try configure(socket)
        return (socket, try socket.bind(endpoint))
    }

    /// Receives every message waiting on a ROUTER socket of `role` and hands each on as its envelope (the
    /// identity, and the empty delimiter a REQ-style client adds), its last frame, the JSON payload, and the
    /// sender's CURVE key (Z85; nil without CURVE). A message without envelope and payload is refused: counted
    /// and logged as `refusal`. With CURVE, a message whose sender's key is no longer admitted for `role` is
    /// refused and its connection closed (``BusAdmission``); `revoked` gets its envelope.
    func drain(_ socket: ZMQSocket, for role: BusEndpoints.Role, name: String, refusal: String,
               revoked: (_ envelope: [[UInt8]]) -> Void = { _ in },
               _ handle: (_ envelope: [[UInt8]], _ payload: [UInt8], _ clientKey: String?) -> Void) {
        while true {
            let received: (frames: [[UInt8]], userId: String?, connection: ZMQPeerConnection?)?
            do {
                // Without CURVE there is no sender to check: spare the system calls that find its connection.
                received = try admission == nil ? socket.receive(dontWait: true).map { ($0, nil, nil) } : socket.receiveWithPeer(dontWait: true)
            } catch {
                logger.error("\(name) receive failed", metadata: ["bus.error": "\(error)"])
                return
            }
            guard let (frames, clientKey, connection) = received else { return }
            if let admission, !admission.admits(userId: clientKey, on: role, connection: connection, identity: frames.first) {
                revoked(Array(frames.dropLast()))
                continue
            }
            guard frames.count >= 2, let payload = frames.last else {
                refusedFrames.increment()
                logger.warning("\(refusal)", metadata: ["bus.reason": "expected [identity, json], got \(frames.count) frame(s)"])
                continue
            }
            handle(Array(frames.dropLast()), payload, clientKey)
        }
    }
}
