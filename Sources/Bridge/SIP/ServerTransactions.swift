import Logging
import NIOCore
import SIPCore

/// Where a server transaction's responses go: the request's source over UDP, its connection over TCP.
struct ReplyPath {
    var remote: SocketAddress
    /// The TCP connection the request came in on; nil for UDP.
    var connection: Channel?

    var reliable: Bool { connection != nil }
}

/// What the B2BUA needs of the server transactions: the request a transaction still answers, and a way
/// to answer it. Nothing more, so the B2BUA cannot reach into the edge.
protocol ServerResponder: AnyObject {
    /// The request of an INVITE transaction still waiting for its final response.
    func request(for key: TransactionKey) -> SIPRequest?
    /// The To tag this bridge gave the INVITE transaction's responses.
    func toTag(for key: TransactionKey) -> String?
    /// Answers through the request's server transaction (retransmissions, timers and ACK are its job).
    func respond(_ key: TransactionKey, _ response: SIPResponse)
}

/// Every server transaction of the bridge (RFC 3261 §17.2): the tables, their timers, and the paths their
/// responses take. The transactions themselves are SIPCore's pure machines; this carries out their actions.
/// Loop-bound: used on the SIP event loop only.
final class ServerTransactions: ServerResponder {
    // The tables hold classes: a dictionary stores its values inline in every slot, used or not, and keeps
    // its peak capacity, so large values there cost memory long after a burst of calls.

    /// What every server transaction keeps besides its machine: where its responses go and its timers.
    private class Entry {
        let reply: ReplyPath
        var timers: [TransactionTimerID: Scheduled<Void>] = [:]

        init(reply: ReplyPath) {
            self.reply = reply
        }
    }

    private final class InviteEntry: Entry {
        var transaction: ServerInviteTransaction
        /// The INVITE, until the final response: only responses to it need it.
        var request: SIPRequest?
        let toTag: String

        init(transaction: ServerInviteTransaction, request: SIPRequest, reply: ReplyPath, toTag: String) {
            self.transaction = transaction
            self.request = request
            self.toTag = toTag
            super.init(reply: reply)
        }
    }

    private final class NonInviteEntry: Entry {
        var transaction: ServerNonInviteTransaction

        init(transaction: ServerNonInviteTransaction, reply: ReplyPath) {
            self.transaction = transaction
            super.init(reply: reply)
        }
    }

    private let loop: EventLoop
    private let timers: SIPTimers
    private let transport: SIPTransport
    private let logger: Logger
    private var invites: [TransactionKey: InviteEntry] = [:]
    private var nonInvites: [TransactionKey: NonInviteEntry] = [:]
    private lazy var linger = LingerTimers<TransactionKey, TransactionTimerID>(loop: loop) { [unowned self] key, timer, owner in
        timerFired(key, timer, owner: owner)
    }

    init(loop: EventLoop, timers: SIPTimers, transport: SIPTransport, logger: Logger) {
        self.loop = loop
        self.timers = timers
        self.transport = transport
        self.logger = logger
    }

    // MARK: - Requests of known transactions

    /// An ACK for an INVITE transaction of ours (RFC 3261 §17.2.1); false when there is none, so the ACK
    /// is the dialog's (the ACK for a 2xx, §13.2.2.4) or late.
    func receivedACK(_ key: TransactionKey) -> Bool {
        guard let entry = invites[key] else { return false }
        perform(key, entry.transaction.receivedACK())
        return true
    }

    /// A retransmitted request (§17.2.1, §17.2.2): the transaction answers it again; false when the request
    /// starts a new transaction.
    func receivedRetransmission(_ key: TransactionKey) -> Bool {
        if let entry = invites[key] {
            perform(key, entry.transaction.receivedRetransmission())
            return true
        }
        if let entry = nonInvites[key] {
            performNonInvite(key, entry.transaction.receivedRetransmission())
            return true
        }
        return false
    }

    func hasInvite(_ key: TransactionKey) -> Bool {
        invites[key] != nil
    }

    // MARK: - New transactions

    /// Opens the INVITE server transaction for a new INVITE; returns the To tag its responses carry.
    func openInvite(_ request: SIPRequest, key: TransactionKey, reply: ReplyPath) -> String {
        let toTag = SIPEdge.makeTag()
        invites[key] = InviteEntry(transaction: ServerInviteTransaction(reliable: reply.reliable, timers: timers),
                                   request: request, reply: reply, toTag: toTag)
        return toTag
    }

    func openNonInvite(key: TransactionKey, reply: ReplyPath) {
        nonInvites[key] = NonInviteEntry(transaction: ServerNonInviteTransaction(reliable: reply.reliable, timers: timers), reply: reply)
    }

    // MARK: - Answering

    func request(for key: TransactionKey) -> SIPRequest? {
        invites[key]?.request
    }

    func toTag(for key: TransactionKey) -> String? {
        invites[key]?.toTag
    }

    /// Whether the INVITE transaction still waits for its final response.
    func isProceeding(_ key: TransactionKey) -> Bool {
        invites[key]?.transaction.state == .proceeding
    }

    func respond(_ key: TransactionKey, _ response: SIPResponse) {
        if let entry = invites[key] {
            perform(key, response.isProvisional ? entry.transaction.sendProvisional(response) : entry.transaction.sendFinal(response))
        } else if let entry = nonInvites[key], !response.isProvisional {
            performNonInvite(key, entry.transaction.sendFinal(response))
        }
    }

    /// 100 Trying (RFC 3261 §17.2.1), unless the INVITE got a response already.
    func sendTrying(_ key: TransactionKey) {
        guard let entry = invites[key], let request = entry.request, entry.transaction.state == .proceeding,
              entry.transaction.lastResponse == nil else { return }
        perform(key, entry.transaction.sendProvisional(SIPResponse(replyingTo: request, status: 100)))
    }

    /// A response outside any transaction (to a request too broken to start one).
    func sendStateless(_ response: SIPResponse, via path: ReplyPath) {
        send(response, via: path)
    }

    // MARK: - Carrying out the machines' actions

    private func perform(_ key: TransactionKey, _ actions: [TransactionAction]) {
        guard let entry = invites[key] else { return }
        if entry.transaction.state != .proceeding { entry.request = nil }
        guard let reason = carryOut(actions, key: key, entry: entry) else { return }
        if reason == .timeout {
            logger.notice("no ACK for final response (timer H)", metadata: ["sip.transaction": "\(key)"])
        }
        invites[key] = nil
    }

    private func performNonInvite(_ key: TransactionKey, _ actions: [TransactionAction]) {
        guard let entry = nonInvites[key], carryOut(actions, key: key, entry: entry) != nil else { return }
        nonInvites[key] = nil
    }

    /// Carries out a transaction's actions; returns why it ended if it did (the caller drops the entry).
    private func carryOut(_ actions: [TransactionAction], key: TransactionKey, entry: Entry) -> TransactionTerminationReason? {
        for action in actions {
            switch action {
            case .send(let response):
                send(response, via: entry.reply)
            case .startTimer(let timer, let delay) where timer.lingers:
                linger.start(timer, for: key, owner: entry, after: delay)
            case .startTimer(let timer, let delay):
                entry.timers[timer]?.cancel()
                entry.timers[timer] = loop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in
                    timerFired(key, timer, owner: entry)
                }
            case .cancelTimer(let timer):
                entry.timers.removeValue(forKey: timer)?.cancel()
            case .terminated(let reason):
                entry.timers.values.forEach { $0.cancel() }
                return reason
            }
        }
        return nil
    }

    /// A timer of the entry `owner`, if that entry is still the one under `key` (not one that ended and was
    /// replaced by a new transaction with the same key).
    private func timerFired(_ key: TransactionKey, _ timer: TransactionTimerID, owner: AnyObject) {
        if let entry = invites[key], entry === owner {
            perform(key, entry.transaction.timerFired(timer))
        } else if let entry = nonInvites[key], entry === owner {
            performNonInvite(key, entry.transaction.timerFired(timer))
        }
    }

    private func send(_ response: SIPResponse, via path: ReplyPath) {
        if let connection = path.connection {
            transport.send(response.serialized(), on: .tcp(connection))
        } else {
            transport.send(response.serialized(), on: .udp(Self.udpDestination(for: response, source: path.remote)))
        }
    }

    // MARK: - Addresses (RFC 3261 §18.2)

    /// RFC 3261 §18.2.2 with RFC 3581: to the source port when rport was asked for, else to the received
    /// address at the Via's sent-by port.
    static func udpDestination(for response: SIPResponse, source: SocketAddress) -> SocketAddress {
        guard let via = response.topVia else { return source }
        if case .port = via.rport { return source }
        guard let ip = source.ipAddress, let address = try? SocketAddress(ipAddress: ip, port: Int(via.port ?? 5060)) else { return source }
        return address
    }

    /// RFC 3261 §18.2.1 and RFC 3581: record where the request really came from in the top Via, so every
    /// response (which copies the Via) goes back there.
    static func stampingReceived(_ request: SIPRequest, from remote: SocketAddress) -> SIPRequest {
        guard var via = request.topVia, let ip = remote.ipAddress else { return request }
        var changed = false
        if via.host != ip {
            via.parameters.set("received", ip)
            changed = true
        }
        if via.rport == .requested, let port = remote.port {
            via.parameters.set("rport", "\(port)")
            changed = true
        }
        guard changed, let first = request.headers.firstIndex(where: { ["via", "v"].contains($0.name.lowercased()) }) else { return request }
        var stamped = request
        var lines = Array(request.headers)
        // The first Via line may hold several comma-separated values; only the first is the top Via.
        let rest = splitFirstVia(lines[first].value).rest
        lines[first].value = rest.map { "\(via), \($0)" } ?? via.description
        stamped.headers = SIPHeaders(lines)
        return stamped
    }

    private static func splitFirstVia(_ value: String) -> (first: String, rest: String?) {
        var inQuotes = false
        for index in value.indices {
            let character = value[index]
            if character == "\"" { inQuotes.toggle() }
            if character == ",", !inQuotes {
                return (String(value[..<index]), value[value.index(after: index)...].trimmingCharacters(in: .whitespaces))
            }
        }
        return (value, nil)
    }
}
