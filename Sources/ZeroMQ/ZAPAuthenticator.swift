import Synchronization

/// A client the ``ZAPAuthenticator`` turned away: what it offered and why it was refused.
public struct ZAPDenial: Sendable, Equatable, CustomStringConvertible {
    /// `400` (refused credentials or mechanism) or `500` (a request the handler could not read).
    public let statusCode: Int
    /// The reason sent back to libzmq, e.g. `"public key not allowed"`.
    public let statusText: String
    /// The security mechanism the client used: `"CURVE"`, `"NULL"` or `"PLAIN"`.
    public let mechanism: String
    /// The client's CURVE long-term public key, when it used CURVE.
    public let publicKey: CurvePublicKey?
    /// The client's address as libzmq reports it (the IP for TCP).
    public let address: String
    /// The ZAP domain of the socket it tried to reach (see ``ZMQSocket/setZAPDomain(_:)``).
    public let domain: String

    public var description: String {
        "\(statusCode) \(statusText): mechanism \(mechanism), key \(publicKey?.z85 ?? "-"), address \(address), domain \(domain.isEmpty ? "-" : domain)"
    }
}

/// The context's ZAP handler (ZeroMQ RFC 27): admits only CURVE clients whose public key is allowed, on
/// every socket (`allowedKeys`) or on the sockets of one ZAP domain (`domainKeys`).
///
/// libzmq asks the REP socket bound at `inproc://zeromq.zap.01` in a context about every client of every
/// CURVE server socket of that context. Without such a handler **libzmq admits every CURVE client**, so
/// start the authenticator before binding any CURVE server socket, and stop it only after they are closed.
///
/// The handler runs on a ``ZMQServiceLoop`` of its own (`switchboard-zap`), so a busy or blocked owner never
/// stalls handshakes. Its socket lives on that loop; the allow-list may be replaced from any thread.
/// It stops with ``stop()``, or by itself when its context is terminated (`ETERM`).
///
/// Plain (NULL-mechanism) sockets of the same context are untouched unless they set a ZAP domain; those are
/// refused (`400 CURVE required`), as is PLAIN: this handler only authenticates CURVE.
///
/// ```swift
/// let context = try ZMQContext()
/// let zap = try ZAPAuthenticator(context: context, allowedKeys: workerKeys) { denial in
///     logger.warning("bus client refused", metadata: ["bus.denial": "\(denial)"])
/// }
/// let router = try ZMQSocket(context: context, type: .router)
/// try router.setCurveServer(secretKey: bridgeKeys.secretKey)
/// try router.bind("tcp://0.0.0.0:5571")
/// // ... serve ...
/// router.close()
/// zap.stop()
/// context.close()
/// ```
public final class ZAPAuthenticator: Sendable {
    /// The endpoint libzmq sends ZAP requests to, in each context.
    public static let endpoint = "inproc://zeromq.zap.01"

    public typealias DenialHandler = @Sendable (ZAPDenial) -> Void

    private struct Keys {
        var everyDomain: Set<CurvePublicKey>
        var byDomain: [String: Set<CurvePublicKey>]
    }

    /// Shared by the handler's loop and whoever replaces the keys.
    private final class AllowList: Sendable {
        let keys: Mutex<Keys>
        init(_ keys: Keys) { self.keys = Mutex(keys) }
    }

    private let loop: ZMQServiceLoop
    private let allowed: AllowList

    /// Binds the ZAP endpoint in `context` and starts answering on a new thread.
    ///
    /// `domainKeys` admits more keys on the sockets of one ZAP domain only (a worker's key on the decisions
    /// socket, say). `onDenial` runs on the authenticator thread for every refused client; keep it short
    /// (log, count). Throws ``ZMQError`` from `zmq_bind` (`EADDRINUSE`) when the context already has a ZAP handler.
    public init(context: ZMQContext, allowedKeys: Set<CurvePublicKey>, domainKeys: [String: Set<CurvePublicKey>] = [:],
                onDenial: @escaping DenialHandler = { _ in }) throws(ZMQError) {
        let loop = try ZMQServiceLoop(name: "switchboard-zap")
        let allowed = AllowList(Keys(everyDomain: allowedKeys, byDomain: domainKeys))
        do {
            try loop.submit {
                let socket = try ZMQSocket(context: context, type: .rep)
                loop.onStop { _ in socket.close() }
                try socket.bind(ZAPAuthenticator.endpoint)
                loop.watch(socket) { try ZAPAuthenticator.answerWaiting(on: socket, allowed: allowed, onDenial: onDenial) }
            }
        } catch {
            try? loop.stop()
            guard let error = error as? ZMQError else { preconditionFailure("a new loop runs its first work: \(error)") }
            throw error
        }
        self.loop = loop
        self.allowed = allowed
    }

    /// The public keys admitted now on every socket.
    public var allowedKeys: Set<CurvePublicKey> {
        allowed.keys.withLock { $0.everyDomain }
    }

    /// The public keys admitted now on the sockets of one ZAP domain only.
    public var domainKeys: [String: Set<CurvePublicKey>] {
        allowed.keys.withLock { $0.byDomain }
    }

    /// Replaces the allow-lists (after re-reading key directories, say), both at once. Applies to handshakes
    /// from now on; connections already admitted stay up: their owner ends them if it must
    /// (``ZMQPeerConnection/shutDown()``).
    public func setAllowedKeys(_ keys: Set<CurvePublicKey>, domainKeys: [String: Set<CurvePublicKey>] = [:]) {
        allowed.keys.withLock { $0 = Keys(everyDomain: keys, byDomain: domainKeys) }
    }

    /// Stops answering, closes the ZAP socket and waits for the thread to end. Safe to call twice, and after
    /// the context was terminated. Close the CURVE server sockets first: afterwards libzmq admits anyone.
    public func stop() {
        // The only failure is ETERM, the context terminated underneath: the socket is closed all the same.
        try? loop.stop()
    }

    /// Answers every waiting request. A terminated context (`ETERM`) ends the loop; other failures
    /// drop the one request (libzmq then refuses that handshake).
    private static func answerWaiting(on socket: ZMQSocket, allowed: AllowList, onDenial: DenialHandler) throws(ZMQError) {
        while true {
            let frames: [[UInt8]]
            do {
                guard let received = try socket.receive(dontWait: true) else { return }
                frames = received
            } catch {
                if error.contextTerminated { throw error }
                return
            }
            let keys = allowed.keys.withLock { $0 }
            let answer = ZAPAuthenticator.answer(frames, allowedKeys: keys.everyDomain, domainKeys: keys.byDomain)
            do {
                try socket.send(answer.reply)
            } catch {
                if error.contextTerminated { throw error }
            }
            if let denial = answer.denial { onDenial(denial) }
        }
    }

    /// Decides one ZAP request (RFC 27): the reply frames, and the denial to report when it is a refusal.
    ///
    /// Request: version "1.0", request id, domain, address, routing id, mechanism, credentials...
    /// Reply: version "1.0", request id, status code, status text, user id, metadata.
    static func answer(_ frames: [[UInt8]], allowedKeys: Set<CurvePublicKey>,
                       domainKeys: [String: Set<CurvePublicKey>] = [:]) -> (reply: [[UInt8]], denial: ZAPDenial?) {
        let requestId = frames.count > 1 ? frames[1] : []
        func text(_ index: Int) -> String { frames.count > index ? String(decoding: frames[index], as: UTF8.self) : "" }
        let mechanism = text(5), address = text(3), domain = text(2)
        func reply(_ code: Int, _ status: String, userId: String = "") -> [[UInt8]] {
            [Array("1.0".utf8), requestId, Array(String(code).utf8), Array(status.utf8), Array(userId.utf8), []]
        }
        func deny(_ code: Int, _ status: String, key: CurvePublicKey? = nil) -> (reply: [[UInt8]], denial: ZAPDenial?) {
            (reply(code, status), ZAPDenial(statusCode: code, statusText: status, mechanism: mechanism,
                                            publicKey: key, address: address, domain: domain))
        }

        guard frames.count >= 6 else { return deny(500, "malformed ZAP request") }
        guard text(0) == "1.0" else { return deny(500, "unsupported ZAP version") }
        guard mechanism == "CURVE" else { return deny(400, "CURVE required") }
        guard frames.count == 7, let key = try? CurvePublicKey(bytes: frames[6]) else {
            return deny(500, "malformed CURVE credentials")
        }
        guard allowedKeys.contains(key) || domainKeys[domain]?.contains(key) == true else {
            return deny(400, domainKeys[domain] == nil ? "public key not allowed" : "public key not allowed on \(domain) sockets", key: key)
        }
        // The user id becomes each message's "User-Id" property: the key, in its printable form.
        return (reply(200, "OK", userId: key.z85), nil)
    }
}
