import Logging
import Metrics
import NIOCore
import SIPCore

/// The bridge's client side of SIP: runs the client transactions of the requests the B2BUA sends
/// (RFC 3261 §17.1) over UDP, retransmitting and timing them out, and hands each response to the
/// request's owner. Loop-bound like `SIPEdge`, which gives it every response.
final class SIPClient {
    /// What a request's owner hears back.
    enum Outcome {
        case response(SIPResponse)
        /// Timer B or F fired: no final response (the owner treats it as 408, RFC 3261 §8.1.3.1).
        case timeout
        case transportError
    }

    typealias Handler = (Outcome) -> Void

    private enum Machine {
        case invite(ClientInviteTransaction)
        case nonInvite(ClientNonInviteTransaction)
    }

    /// A class, as in `ServerTransactions`' tables: the dictionary then holds a reference, not the whole transaction.
    private final class Entry {
        var machine: Machine
        let destination: SocketAddress
        let handler: Handler
        var timers: [ClientTimerID: Scheduled<Void>] = [:]

        init(machine: Machine, destination: SocketAddress, handler: @escaping Handler) {
            self.machine = machine
            self.destination = destination
            self.handler = handler
        }
    }

    private let loop: EventLoop
    private let timers: SIPTimers
    private let transport: SIPTransport
    private let logger: Logger
    private var entries: [TransactionKey: Entry] = [:]
    private lazy var linger = LingerTimers<TransactionKey, ClientTimerID>(loop: loop) { [unowned self] key, timer, owner in
        if let entry = entries[key], entry === owner { timerFired(key, timer) }
    }
    private let timeouts = Counter(label: "switchboard_sip_client_timeouts_total")

    init(loop: EventLoop, timers: SIPTimers, transport: SIPTransport, logger: Logger) {
        self.loop = loop
        self.timers = timers
        self.transport = transport
        self.logger = logger
    }

    /// The address in our Via and Contact headers.
    var localHost: String { transport.localHost }
    var localPort: Int { transport.localPort }

    /// A Via for a new request: a fresh branch, rport so responses come back to the sending port (RFC 3581).
    func makeVia() -> Via {
        Via(transport: "UDP", host: localHost, port: UInt16(localPort), branch: Via.magicCookie + SIPEdge.makeTag(),
            parameters: [SIPParameter("rport")])
    }

    /// Sends `request` in a new client transaction; `handler` gets its provisional and final responses.
    func send(_ request: SIPRequest, to destination: SocketAddress, handler: @escaping Handler) {
        loop.preconditionInEventLoop()
        guard let key = TransactionKey.forClient(request: request) else {
            logger.error("request without a usable Via not sent", metadata: ["sip.method": "\(request.method)"])
            handler(.transportError)
            return
        }
        let entry: Entry
        let actions: [ClientTransactionAction]
        if request.method == .invite {
            var transaction = ClientInviteTransaction(request: request, reliable: false, timers: timers)
            actions = transaction.start()
            entry = Entry(machine: .invite(transaction), destination: destination, handler: handler)
        } else {
            var transaction = ClientNonInviteTransaction(request: request, reliable: false, timers: timers)
            actions = transaction.start()
            entry = Entry(machine: .nonInvite(transaction), destination: destination, handler: handler)
        }
        entries[key] = entry
        perform(key, actions)
    }

    /// Cancels an INVITE sent with ``send(_:to:handler:)`` (RFC 3261 §9.1): the CANCEL goes in a transaction of
    /// its own, and the INVITE's handler hears `.timeout` should no final response follow within 64*T1.
    func cancel(_ invite: SIPRequest, to destination: SocketAddress) {
        send(SIPRequest(cancelling: invite), to: destination) { _ in }
        guard let key = TransactionKey.forClient(request: invite) else { return }
        _ = step(key, invite: { $0.cancelSent() }, nonInvite: { _ in [] })
    }

    /// Sends a request outside any transaction: the ACK for a 2xx is the TU's (RFC 3261 §13.2.2.4).
    func sendStateless(_ request: SIPRequest, to destination: SocketAddress) {
        write(request, to: destination)
    }

    /// A response off the wire: true when a transaction of ours took it (RFC 3261 §17.1.3).
    func receive(_ response: SIPResponse) -> Bool {
        guard let key = TransactionKey.forClient(response: response) else { return false }
        return step(key, invite: { $0.receive(response) }, nonInvite: { $0.receive(response) })
    }

    private func timerFired(_ key: TransactionKey, _ timer: ClientTimerID) {
        _ = step(key, invite: { $0.timerFired(timer) }, nonInvite: { $0.timerFired(timer) })
    }

    /// Feeds one event to the transaction `key` names and carries out its actions; false when there is none.
    private func step(_ key: TransactionKey, invite: (inout ClientInviteTransaction) -> [ClientTransactionAction],
                      nonInvite: (inout ClientNonInviteTransaction) -> [ClientTransactionAction]) -> Bool {
        guard let entry = entries[key] else { return false }
        let actions: [ClientTransactionAction]
        switch entry.machine {
        case .invite(var transaction):
            actions = invite(&transaction)
            entry.machine = .invite(transaction)
        case .nonInvite(var transaction):
            actions = nonInvite(&transaction)
            entry.machine = .nonInvite(transaction)
        }
        perform(key, actions)
        return true
    }

    private func perform(_ key: TransactionKey, _ actions: [ClientTransactionAction]) {
        for action in actions {
            guard let entry = entries[key] else { return }
            switch action {
            case .send(let request):
                write(request, to: entry.destination)
            case .deliver(let response):
                entry.handler(.response(response))
            case .startTimer(let timer, let delay) where timer.lingers:
                linger.start(timer, for: key, owner: entry, after: delay)
            case .startTimer(let timer, let delay):
                entries[key]?.timers[timer]?.cancel()
                entries[key]?.timers[timer] = loop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in timerFired(key, timer) }
            case .cancelTimer(let timer):
                entries[key]?.timers.removeValue(forKey: timer)?.cancel()
            case .terminated(let reason):
                entry.timers.values.forEach { $0.cancel() }
                entries[key] = nil
                switch reason {
                case .normal: break
                case .timeout:
                    timeouts.increment()
                    entry.handler(.timeout)
                case .transportError:
                    entry.handler(.transportError)
                }
            }
        }
    }

    private func write(_ request: SIPRequest, to destination: SocketAddress) {
        transport.send(request.serialized(), on: .udp(destination))
    }
}
