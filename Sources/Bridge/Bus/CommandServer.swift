import BusSchema
import Logging
import ZeroMQ

/// The accounts a command client may act for, from its CURVE key.
enum CommandScope: Sendable, Equatable {
    case everyAccount
    case accounts(Set<String>)

    func permits(_ account: String?) -> Bool {
        switch self {
        case .everyAccount: true
        case .accounts(let accounts): account.map(accounts.contains) ?? false
        }
    }
}

/// The commands ROUTER socket, on the bus loop: decodes each command for the SIP side with the accounts
/// its sender may act for, answers a malformed one itself, and sends the SIP side's replies back.
final class CommandServer {
    typealias Handler = @Sendable (_ request: CommandRequest, _ envelope: [[UInt8]], _ scope: CommandScope) -> Void

    let bound: String
    private let socket: ZMQSocket
    private let sockets: BusSocketFactory
    private var logger: Logger { sockets.logger }

    init(endpoint: String, sockets: BusSocketFactory) throws {
        (socket, bound) = try sockets.bind(.router, at: endpoint, for: .commanders) { socket in
            try socket.setRouterMandatory(true)
            try socket.setMaxMessageSize(Int64(BusSchema.maxFrameSize))
        }
        self.sockets = sockets
    }

    /// Reads commands from now on; `onCommand` gets each well-formed one, on the loop.
    func start(on loop: ZMQServiceLoop, onCommand: @escaping Handler) {
        loop.watch(socket) { [self] in
            sockets.drain(socket, for: .commanders, name: "commands", refusal: "refused command") { envelope, payload, clientKey in
                let request: CommandRequest
                do throws(BusDecodingError) {
                    request = try CommandRequest.decode(payload)
                } catch {
                    sockets.refusedFrames.increment()
                    logger.warning("refused command", metadata: ["bus.error": "\(error.code)", "bus.reason": "\(error.message)"])
                    let reply = CommandReply(requestId: CommandRequest.requestId(in: payload) ?? "",
                                             outcome: .failed(ErrorReply(code: error.code, message: error.message)))
                    send(reply.frame(), to: envelope)
                    return
                }
                // The scope as the key directories say now: an `.accounts` file edited applies from the next reload.
                onCommand(request, envelope, sockets.admission?.scope(of: clientKey) ?? .everyAccount)
            }
        }
    }

    /// Sends a reply to the client whose command came in `envelope`.
    func send(_ frame: [UInt8], to envelope: [[UInt8]]) {
        do {
            try socket.send(envelope + [frame], dontWait: true)
        } catch {
            logger.warning("could not reach command client", metadata: ["bus.error": "\(error)"])
        }
    }
}
