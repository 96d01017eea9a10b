/// Identifies the server transaction a request belongs to (RFC 3261 §17.2.3).
///
/// ```swift
/// let key = TransactionKey.forServer(request)            // ACK finds its INVITE transaction
/// let target = TransactionKey.forCancelledInvite(cancel)  // the INVITE a CANCEL targets (§9.2)
/// ```
public struct TransactionKey: Sendable, Hashable, CustomStringConvertible {
    private enum Storage: Sendable, Hashable {
        /// Branch with the magic cookie, sent-by, and method (ACK counted as INVITE).
        case rfc3261(branch: String, sentBy: String, method: SIPMethod)
        /// The RFC 2543 fields. The To tag is left out: the ACK to a non-2xx carries the tag the server added,
        /// which the INVITE lacked, and the remaining fields still single the transaction out.
        case rfc2543(requestURI: String, fromTag: String?, callID: String, sequence: UInt32, topVia: String, method: SIPMethod)
    }

    private let storage: Storage

    /// The key of the server transaction `request` belongs to; nil when the request lacks a top Via, or, for an
    /// RFC 2543 request (branch without the magic cookie), a Call-ID or CSeq. CANCEL gets its own key.
    public static func forServer(_ request: SIPRequest) -> TransactionKey? {
        key(for: request, method: request.method == .ack ? .invite : request.method)
    }

    /// The key of the INVITE server transaction a CANCEL targets: the CANCEL's own key with the method taken
    /// as INVITE (RFC 3261 §9.2).
    public static func forCancelledInvite(_ cancel: SIPRequest) -> TransactionKey? {
        key(for: cancel, method: .invite)
    }

    private static func key(for request: SIPRequest, method: SIPMethod) -> TransactionKey? {
        guard let via = request.topVia else { return nil }
        if via.hasMagicCookie, let branch = via.branch {
            return TransactionKey(storage: .rfc3261(branch: branch, sentBy: normalizedSentBy(via), method: method))
        }
        guard let callID = request.callID, let cseq = request.cseq, let topVia = request.headers["Via"] else {
            return nil
        }
        return TransactionKey(
            storage: .rfc2543(
                requestURI: request.uri.description, fromTag: request.from?.tag, callID: callID,
                sequence: cseq.sequence, topVia: topVia, method: method))
    }

    /// Lower-cased host with the transport's default port filled in, so `host` and `HOST:5060` match.
    private static func normalizedSentBy(_ via: Via) -> String {
        let defaultPort: UInt16 = via.transport.uppercased() == "TLS" ? 5061 : 5060
        return "\(via.host.lowercased()):\(via.port ?? defaultPort)"
    }

    /// A readable form for logs.
    public var description: String {
        switch storage {
        case .rfc3261(let branch, let sentBy, let method):
            "\(branch)|\(sentBy)|\(method)"
        case .rfc2543(let requestURI, let fromTag, let callID, let sequence, let topVia, let method):
            "rfc2543|\(requestURI)|\(fromTag ?? "")|\(callID)|\(sequence)|\(topVia)|\(method)"
        }
    }
}
