/// Identifies the server transaction a request belongs to (RFC 3261 §17.2.3), or the client transaction a
/// response belongs to (§17.1.3). Server and client keys never compare equal.
///
/// ```swift
/// let key = TransactionKey.forServer(request)            // ACK finds its INVITE transaction
/// let target = TransactionKey.forCancelledInvite(cancel)  // the INVITE a CANCEL targets (§9.2)
/// let sent = TransactionKey.forClient(request: invite)   // store the client transaction under this...
/// let found = TransactionKey.forClient(response: reply)  // ...and find it again for each response
/// ```
public struct TransactionKey: Sendable, Hashable, CustomStringConvertible {
    private enum Storage: Sendable, Hashable {
        /// Branch with the magic cookie, sent-by, and method (ACK counted as INVITE).
        case rfc3261(branch: String, sentBy: String, method: SIPMethod)
        /// The RFC 2543 fields. The To tag is left out: the ACK to a non-2xx carries the tag the server added,
        /// which the INVITE lacked, and the remaining fields still single the transaction out.
        case rfc2543(requestURI: String, fromTag: String?, callID: String, sequence: UInt32, topVia: String, method: SIPMethod)
        /// The branch our own top Via carries and the method; the sent-by is ours, so it adds nothing.
        case client(branch: String, method: SIPMethod)
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

    /// The key of the client transaction that sends `request`: its top Via branch and its method (RFC 3261
    /// §17.1.3); nil without a branch.
    public static func forClient(request: SIPRequest) -> TransactionKey? {
        clientKey(branch: request.topVia?.branch, method: request.method)
    }

    /// The key of the client transaction `response` belongs to: the top Via branch and the CSeq method (RFC 3261
    /// §17.1.3), so the response to a CANCEL finds the CANCEL's transaction, not the INVITE's; nil without either.
    public static func forClient(response: SIPResponse) -> TransactionKey? {
        clientKey(branch: response.topVia?.branch, method: response.cseq?.method)
    }

    private static func clientKey(branch: String?, method: SIPMethod?) -> TransactionKey? {
        guard let branch, let method else { return nil }
        return TransactionKey(storage: .client(branch: branch, method: method))
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
        case .client(let branch, let method):
            "client|\(branch)|\(method)"
        }
    }
}
