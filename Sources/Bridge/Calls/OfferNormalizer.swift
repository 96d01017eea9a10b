import BusSchema
import Foundation
import NIOCore
import SIPCore

/// Turns an INVITE into the bus' normalized `CallOffer`: plain strings and numbers, no SIP types.
enum OfferNormalizer {
    /// Headers Kamailio adds for us (see openser-cfg/README.md).
    static let authUserHeader = "X-Switchboard-Auth-User"
    static let sourceHeader = "X-Switchboard-Source"

    static func offer(for request: SIPRequest, from packet: InboundPacket) -> CallOffer {
        let peer = packet.remote.ipAddress ?? "\(packet.remote)"
        var source = Source(address: peer, port: packet.remote.port ?? 0, transport: packet.transport.rawValue, peer: peer)
        if let reported = request.headers[sourceHeader], let parsed = parseSource(reported) {
            source.address = parsed.address
            source.port = parsed.port
            source.transport = parsed.transport ?? source.transport
        }
        var extra: [String: String] = [:]
        for header in request.headers where isExtensionHeader(header.name) {
            extra[header.name] = extra[header.name].map { "\($0), \(header.value)" } ?? header.value
        }
        let authUser = request.headers[authUserHeader].flatMap { $0.isEmpty ? nil : $0 }
        return CallOffer(
            sipCallId: request.callID ?? "",
            requestUri: address(request.uri, displayName: nil),
            from: request.from.map { address($0.uri, displayName: $0.displayName) } ?? Address(uri: ""),
            to: request.to.map { address($0.uri, displayName: $0.displayName) } ?? Address(uri: ""),
            source: source,
            authUser: authUser,
            headers: extra,
            sdp: MessageBody.sdp(of: request).map(summarizeSDP)
        )
    }

    /// `X-…` or `x-…`, checked on bytes: this runs for every header of every INVITE.
    private static func isExtensionHeader(_ name: String) -> Bool {
        var bytes = name.utf8.makeIterator()
        guard let first = bytes.next(), first == UInt8(ascii: "X") || first == UInt8(ascii: "x") else { return false }
        return bytes.next() == UInt8(ascii: "-")
    }

    static func address(_ uri: SIPAnyURI, displayName: String?) -> Address {
        switch uri {
        case .sip(let sip):
            return Address(uri: uri.description, user: sip.unescapedUser, host: sip.host, displayName: displayName)
        case .other(let scheme, _) where scheme.lowercased() == "tel":
            // tel:+1-202-555-0100;phone-context=... — the number is everything up to the first ';'.
            let number = uri.description.dropFirst(scheme.count + 1).prefix { $0 != ";" }
            return Address(uri: uri.description, user: String(number), host: nil, displayName: displayName)
        case .other:
            return Address(uri: uri.description, user: nil, host: nil, displayName: displayName)
        }
    }

    /// `203.0.113.7:5060;transport=udp` → its parts; IPv6 as `[2001:db8::1]:5060`.
    static func parseSource(_ value: String) -> (address: String, port: Int, transport: String?)? {
        let parts = value.split(separator: ";", omittingEmptySubsequences: false)
        let hostPort = parts[0].trimmingCharacters(in: .whitespaces)
        var transport: String?
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            if pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "transport" {
                transport = pair[1].trimmingCharacters(in: .whitespaces).lowercased()
            }
        }
        guard let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = String(hostPort[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port, transport)
    }

    /// Reads the `c=` and `m=` lines of an SDP body; other lines are the phones' business.
    static func summarizeSDP(_ body: [UInt8]) -> SDPSummary {
        var connection: String?
        var media: [SDPSummary.Media] = []
        for line in String(decoding: body, as: UTF8.self).split(whereSeparator: \.isNewline) {
            if line.hasPrefix("c="), connection == nil, media.isEmpty {
                connection = line.split(separator: " ").last.map(String.init)
            } else if line.hasPrefix("m=") {
                let fields = line.dropFirst(2).split(separator: " ")
                guard fields.count >= 3 else { continue }
                let port = Int(fields[1].split(separator: "/")[0]) ?? 0
                media.append(.init(kind: String(fields[0]), port: port, proto: String(fields[2]), formats: fields.dropFirst(3).map(String.init)))
            }
        }
        return SDPSummary(connection: connection, media: media)
    }
}
