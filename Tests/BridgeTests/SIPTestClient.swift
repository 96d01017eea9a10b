import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A phone in a test: plain blocking sockets, so the bridge is exercised over its real transport.
// Unchecked: a test drives it one awaited call at a time; each blocking call runs on a dispatch queue
// while the test waits for it, so no two threads touch it at once.
final class SIPTestClient: @unchecked Sendable {
    enum Transport { case udp, tcp }
    let fd: Int32
    let port: Int
    let transport: Transport
    private var pending: [UInt8] = []

    init(_ transport: Transport = .udp, bridgePort: Int) throws {
        self.transport = transport
        let fd = socket(AF_INET, transport == .udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var remote = local
        remote.sin_port = in_port_t(UInt16(bridgePort).bigEndian)
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        var bound = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: bound.sin_port))
    }

    deinit { close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
    }

    /// The next message, or nil after `timeout`. The wait runs on a dispatch queue, never on the
    /// cooperative pool, which the bridge's worker needs for its own tasks.
    func receive(timeout: Double = 2) async -> String? {
        await offload { self.receiveBlocking(timeout: timeout) }
    }

    /// The next final response, skipping provisional ones (a busy test machine may delay the decision
    /// past the trying delay, and then a 100 Trying comes first, as it should).
    func receiveFinal(timeout: Double = 4) async -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while deadline.timeIntervalSinceNow > 0 {
            guard let message = await receive(timeout: deadline.timeIntervalSinceNow) else { return nil }
            if let status = message.status, status < 200 { continue }
            return message
        }
        return nil
    }

    /// Every message that arrives within `window`.
    func receiveAll(window: Double) async -> [String] {
        await offload {
            var messages: [String] = []
            let deadline = Date().addingTimeInterval(window)
            while deadline.timeIntervalSinceNow > 0, let message = self.receiveBlocking(timeout: deadline.timeIntervalSinceNow) {
                messages.append(message)
            }
            return messages
        }
    }

    /// Whether the bridge closes the connection within `timeout`: a read returns end of file (or a reset).
    /// Whatever arrives before that is discarded.
    func closedByPeer(within timeout: Double) async -> Bool {
        await offload {
            let deadline = Date().addingTimeInterval(timeout)
            while deadline.timeIntervalSinceNow > 0 {
                var pollFD = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pollFD, 1, Int32(deadline.timeIntervalSinceNow * 1000)) > 0 else { return false }
                var buffer = [UInt8](repeating: 0, count: 4096)
                if recv(self.fd, &buffer, buffer.count, 0) <= 0 { return true }
            }
            return false
        }
    }

    private func receiveBlocking(timeout: Double) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if transport == .tcp, let message = takeFramed() { return message }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { return nil }
            var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pollFD, 1, Int32(remaining * 1000)) > 0 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            if transport == .udp { return String(decoding: buffer[..<count], as: UTF8.self) }
            pending += buffer[..<count]
        }
    }

    private func takeFramed() -> String? {
        let text = String(decoding: pending, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { return nil }
        let head = text[..<end.lowerBound]
        let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        let total = text.utf8.distance(from: text.startIndex, to: end.upperBound) + length
        guard pending.count >= total else { return nil }
        let message = String(decoding: pending[..<total], as: UTF8.self)
        pending.removeFirst(total)
        return message
    }

    /// A request from this client; `branch` makes it a new transaction.
    func request(_ method: String, to user: String = "12025550100", branch: String, callID: String? = nil,
                 cseq: Int = 1, cseqMethod: String? = nil, extraHeaders: String = "", body: String = "", toTag: String? = nil) -> String {
        let via = transport == .udp ? "UDP" : "TCP"
        return "\(method) sip:\(user)@127.0.0.1 SIP/2.0\r\n"
            + "Via: SIP/2.0/\(via) 127.0.0.1:\(port);branch=z9hG4bK\(branch);rport\r\n"
            + "Max-Forwards: 70\r\n"
            + "From: \"Alice\" <sip:alice@switchboard.local>;tag=from\(branch)\r\n"
            + "To: <sip:\(user)@switchboard.local>\(toTag.map { ";tag=\($0)" } ?? "")\r\n"
            + "Call-ID: \(callID ?? "call-\(branch)")\r\n"
            + "CSeq: \(cseq) \(cseqMethod ?? method)\r\n"
            + extraHeaders
            + (body.isEmpty ? "" : "Content-Type: application/sdp\r\n")
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
    }
}

extension String {
    /// The status code of a response's status line.
    var status: Int? {
        guard hasPrefix("SIP/2.0 ") else { return nil }
        return Int(dropFirst(8).prefix(3))
    }

    /// The first value of a header, by exact name.
    func header(_ name: String) -> String? {
        split(separator: "\r\n").first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
            .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
    }
}

/// Runs blocking test I/O on a dispatch queue and awaits it.
func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: work()) }
    }
}
