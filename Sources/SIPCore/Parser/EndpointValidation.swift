/// A request an endpoint refuses, with the status, reason and header fields to answer it with.
///
/// ```swift
/// if let refusal = validateForEndpoint(request, supportedExtensions: ["100rel"], supportedContentTypes: ["application/sdp"]) {
///     var response = SIPResponse(replyingTo: request, status: refusal.status, reason: refusal.reason)
///     for field in refusal.headers { response.headers.add(field.name, field.value) }
/// }
/// ```
public struct SIPStatusError: Error, Sendable, Hashable {
    /// The status code to answer.
    public var status: Int
    /// The reason phrase to answer with; names the problem for 400.
    public var reason: String
    /// Fields the response must carry (Unsupported for 420, Accept for 415).
    public var headers: [SIPHeader]

    /// Creates a refusal.
    public init(status: Int, reason: String, headers: [SIPHeader] = []) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }
}

/// The checks a UAS makes on a well-formed request before processing it (RFC 3261 §8.2), in the RFC's order;
/// nil when the request may be processed.
///
/// - 400 when To, From, Call-ID, CSeq or Via is missing, or Max-Forwards is missing from an RFC 3261 request
///   (top Via branch with the magic cookie; RFC 2543 clients did not send it, RFC 4475 §3.4.1); when a
///   single-valued field (Content-Length, Call-ID, From, To, CSeq, Max-Forwards) appears more than once
///   (RFC 4475 §3.3.8-9); when the CSeq method differs from the request method (RFC 4475 §3.1.2.17-18); when a
///   SIP Request-URI carries headers (§19.1.1, RFC 4475 §3.1.2.11); when Date is not in GMT (§20.17, RFC 4475
///   §3.1.2.12).
/// - 416 when the Request-URI scheme is not sip, sips or tel (§8.2.2.1).
/// - 420 with Unsupported when Require lists an option not in `supportedExtensions` (§8.2.2.3); never for ACK
///   and CANCEL.
/// - 415 with Accept when a non-empty body's Content-Type is not in `supportedContentTypes` (§8.2.3).
///
/// Max-Forwards 0 is not checked: an endpoint processes such a request (RFC 4475 §3.3.11); only a proxy
/// answers 483. Content-Type comparison ignores case and media-type parameters.
public func validateForEndpoint(
    _ request: SIPRequest, supportedExtensions: Set<String>, supportedContentTypes: Set<String>
) -> SIPStatusError? {
    let headers = request.headers
    let needsMaxForwards = request.topVia?.hasMagicCookie ?? true
    for (name, key) in mandatoryFields where !headers.contains(key) {
        if key == .maxForwards && !needsMaxForwards { continue }
        return SIPStatusError(status: 400, reason: "Missing \(name) Header")
    }
    for (name, key) in singleValuedFields where headers.lineCount(key) > 1 {
        return SIPStatusError(status: 400, reason: "Multiple \(name) Headers")
    }
    guard let cseq = request.cseq, cseq.method == request.method || (request.method == .ack && cseq.method == .invite)
    else {
        return SIPStatusError(status: 400, reason: "CSeq Method Does Not Match Request")
    }
    if case .sip(let uri) = request.uri, !uri.headers.isEmpty {
        return SIPStatusError(status: 400, reason: "Headers Not Allowed In Request-URI")
    }
    if let date = headers.first(.date), !date.hasSuffix(" GMT") {
        return SIPStatusError(status: 400, reason: "Date Not In GMT")
    }

    // RFC 3261 §8.2.2.1
    switch request.uri.scheme {
    case "sip", "sips", "tel": break
    default:
        return SIPStatusError(status: 416, reason: SIPResponse.standardReason(for: 416))
    }

    // RFC 3261 §8.2.2.3
    if request.method != .ack && request.method != .cancel {
        let required = headers.values(.require)
        let supported = required.isEmpty ? [] : Set(supportedExtensions.map { $0.lowercased() })
        let unsupported = required.filter { !supported.contains($0.lowercased()) }
        if !unsupported.isEmpty {
            return SIPStatusError(
                status: 420, reason: SIPResponse.standardReason(for: 420),
                headers: [SIPHeader(name: "Unsupported", value: unsupported.joined(separator: ", "))])
        }
    }

    // RFC 3261 §8.2.3
    if !request.body.isEmpty, let contentType = request.contentType,
       !supportedContentTypes.contains(where: { sameMediaType($0, contentType) }) {
        return SIPStatusError(
            status: 415, reason: SIPResponse.standardReason(for: 415),
            headers: [SIPHeader(name: "Accept", value: supportedContentTypes.sorted().joined(separator: ", "))])
    }
    return nil
}

/// The fields a request must carry, in the order they are reported missing, as (name, key); Max-Forwards only
/// for RFC 3261 clients.
private let mandatoryFields: [(String, HeaderKey)] = [
    ("To", .to), ("From", .from), ("Call-ID", .callID), ("CSeq", .cseq), ("Via", .via), ("Max-Forwards", .maxForwards),
]

/// The fields that may appear once, as (name, key).
private let singleValuedFields: [(String, HeaderKey)] = [
    ("Content-Length", .contentLength), ("Call-ID", .callID), ("From", .from), ("To", .to), ("CSeq", .cseq),
    ("Max-Forwards", .maxForwards),
]

/// Whether two Content-Type values name the same `type/subtype`, as ``mediaTypeOnly(_:)`` of each compare, but
/// without building either when both are ASCII (every request checks its Content-Type).
private func sameMediaType(_ a: String, _ b: String) -> Bool {
    var (first, second) = (a, b)
    let asciiResult = first.withUTF8 { left in
        second.withUTF8 { right -> Bool? in
            // Unicode case mapping and grapheme clusters are mediaTypeOnly's to apply.
            guard left.allSatisfy({ $0 < 0x80 }), right.allSatisfy({ $0 < 0x80 }) else { return nil }
            var (i, j) = (0, 0)
            while true {
                while i < left.count, Grammar.isWhitespace(left[i]) { i += 1 }
                while j < right.count, Grammar.isWhitespace(right[j]) { j += 1 }
                let leftEnded = i == left.count || left[i] == ASCII.semicolon
                let rightEnded = j == right.count || right[j] == ASCII.semicolon
                if leftEnded || rightEnded { return leftEnded && rightEnded }
                guard Grammar.lowercased(left[i]) == Grammar.lowercased(right[j]) else { return false }
                i += 1
                j += 1
            }
        }
    }
    return asciiResult ?? (mediaTypeOnly(a) == mediaTypeOnly(b))
}

/// `type/subtype` lower-cased, without parameters or whitespace.
private func mediaTypeOnly(_ contentType: String) -> String {
    let base = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    return String(base.filter { $0 != " " && $0 != "\t" }).lowercased()
}
