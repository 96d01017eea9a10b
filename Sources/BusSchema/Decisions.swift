import Foundation

/// A worker's answer to an offer.
///
/// ```swift
/// .redirect([Target(uri: "sip:12025550100@gw1.example.com", q: 1.0)])
/// .reject(status: 486, reason: "Busy Here")
/// ```
public enum Decision: Equatable, Sendable {
    /// Answer 302 with these targets as Contacts; the proxy (Kamailio) follows them.
    case redirect([Target])
    /// Answer with a final error status; `headers` (e.g. `Retry-After`) are added to the response.
    case reject(status: Int, reason: String? = nil, headers: [String: String] = [:])

    /// Checks what the bridge could not turn into a valid SIP answer; returns what is wrong, or nil.
    public var problem: String? {
        switch self {
        case .redirect(let targets):
            if targets.isEmpty { return "redirect needs at least one target" }
            for target in targets {
                if !(target.uri.hasPrefix("sip:") || target.uri.hasPrefix("sips:") || target.uri.hasPrefix("tel:")) {
                    return "target uri \(target.uri.debugDescription) is not a sip:, sips: or tel: URI"
                }
                if target.uri.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == ">" || $0 == "<" || $0 == " " }) {
                    return "target uri \(target.uri.debugDescription) contains forbidden characters"
                }
                if let q = target.q, !(0...1).contains(q) { return "q-value \(q) is outside 0.0–1.0" }
            }
        case .reject(let status, let reason, let headers):
            if !(400...699).contains(status) { return "reject status \(status) is not a 4xx–6xx final response" }
            if let reason, reason.hasLineBreak { return "reason contains a line break" }
            for (name, value) in headers {
                if name.isEmpty || name.unicodeScalars.contains(where: { !($0.properties.isASCIIHexDigit || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || $0 == "-" || $0 == "_" || $0 == ".") }) {
                    return "header name \(name.debugDescription) is not a SIP token"
                }
                if value.hasLineBreak { return "header \(name) contains a line break" }
            }
        }
        return nil
    }
}

extension Decision: Codable {
    private enum CodingKeys: String, CodingKey { case action, targets, status, reason, headers }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let action = try container.decode(String.self, forKey: .action)
        switch action {
        case "redirect":
            self = .redirect(try container.decode([Target].self, forKey: .targets))
        case "reject":
            self = .reject(
                status: try container.decode(Int.self, forKey: .status),
                reason: try container.decodeIfPresent(String.self, forKey: .reason),
                headers: try container.decodeIfPresent([String: String].self, forKey: .headers) ?? [:]
            )
        default:
            throw DecodingError.dataCorruptedError(forKey: .action, in: container,
                                                   debugDescription: "unknown action \(action.debugDescription) (expected redirect or reject)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .redirect(let targets):
            try container.encode("redirect", forKey: .action)
            try container.encode(targets, forKey: .targets)
        case .reject(let status, let reason, let headers):
            try container.encode("reject", forKey: .action)
            try container.encode(status, forKey: .status)
            try container.encodeIfPresent(reason, forKey: .reason)
            if !headers.isEmpty { try container.encode(headers, forKey: .headers) }
        }
    }
}

extension String {
    /// CR or LF anywhere: either would let a value break out of its SIP header line.
    var hasLineBreak: Bool { unicodeScalars.contains { $0 == "\r" || $0 == "\n" } }
}

extension Decision {
    func write(to writer: inout JSONWriter) {
        writer.openObject()
        switch self {
        case .redirect(let targets):
            writer.member("action", "redirect")
            writer.key("targets")
            writer.openArray()
            for target in targets {
                writer.element()
                target.write(to: &writer)
            }
            writer.closeArray()
        case .reject(let status, let reason, let headers):
            writer.member("action", "reject")
            writer.member("status", status)
            writer.member("reason", reason)
            if !headers.isEmpty { writer.member("headers", headers) }
        }
        writer.closeObject()
    }
}

extension Decision {
    init(json: JSONObject) throws(BusDecodingError) {
        let action = try json.string("action")
        switch action {
        case "redirect":
            var targets: [Target] = []
            for (position, element) in try json.array("targets").enumerated() {
                targets.append(try Target(json: JSONObject(element, path: "\(json.path).targets[\(position)]")))
            }
            self = .redirect(targets)
        case "reject":
            self = .reject(status: try json.int("status"), reason: try json.optionalString("reason"), headers: try json.stringMap("headers"))
        default:
            throw BusDecodingError(code: "bad_message", message: "\(json.path).action: unknown action \(action.debugDescription) (expected redirect or reject)")
        }
    }
}
