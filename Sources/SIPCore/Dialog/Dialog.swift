/// What identifies a dialog at one end: Call-ID, local tag and remote tag (RFC 3261 §12).
///
/// ```swift
/// let id = DialogID.forIncoming(bye)        // the dialog an incoming BYE belongs to
/// let early = DialogID.forResponse(ringing)  // the (early) dialog a response to our INVITE sets up
/// ```
public struct DialogID: Sendable, Hashable, Codable {
    /// The Call-ID.
    public var callID: String
    /// The tag this UA chose: From tag for the UAC, To tag for the UAS.
    public var localTag: String
    /// The peer's tag; empty when an RFC 2543 peer sent none (RFC 3261 §12.1.1).
    public var remoteTag: String

    /// Creates an identifier.
    public init(callID: String, localTag: String, remoteTag: String) {
        self.callID = callID
        self.localTag = localTag
        self.remoteTag = remoteTag
    }

    /// The dialog a received request belongs to (RFC 3261 §12.2.2): local tag from To, remote tag from From;
    /// nil without a Call-ID or a To tag, that is for a request outside any dialog.
    public static func forIncoming(_ request: SIPRequest) -> DialogID? {
        guard let callID = request.callID, let localTag = request.to?.tag else { return nil }
        return DialogID(callID: callID, localTag: localTag, remoteTag: request.from?.tag ?? "")
    }

    /// The dialog a response to a request this UA sent belongs to (RFC 3261 §12.1.2): local tag from From,
    /// remote tag from To; nil without a Call-ID or either tag.
    public static func forResponse(_ response: SIPResponse) -> DialogID? {
        guard let callID = response.callID, let localTag = response.from?.tag, let remoteTag = response.to?.tag
        else { return nil }
        return DialogID(callID: callID, localTag: localTag, remoteTag: remoteTag)
    }
}

/// The result of checking a request received in a dialog (RFC 3261 §12.2.2).
public enum DialogRequestCheck: Sendable, Hashable {
    /// The request may be processed; the dialog has taken its CSeq and, for a target refresh, its Contact.
    case inOrder
    /// Its CSeq is below the last one received, or missing: answer 500 (Server Internal Error).
    case outOfOrder
}

/// The state of one dialog at one end (RFC 3261 §12), a value the owner keeps, persists (it is `Codable`) and
/// feeds with the dialog's messages. It builds the requests this UA sends in the dialog.
///
/// ```swift
/// // UAC: the 200 OK to our INVITE sets the dialog up; the TU acknowledges it, later hangs up.
/// var dialog = Dialog(uac: invite, response: ok)!
/// send(dialog.makeACK(for: ok, via: freshVia()))
/// send(dialog.makeRequest(.bye, via: freshVia()))
///
/// // UAS: an in-dialog request is checked before it is processed.
/// if dialog.receive(reinvite) == .outOfOrder { reply(500) }
/// ```
public struct Dialog: Sendable, Hashable, Codable {
    /// Whether the dialog was set up by a provisional or a final response (RFC 3261 §12).
    public enum State: String, Sendable, Hashable, Codable {
        /// Set up by a 1xx with a To tag.
        case early
        /// Set up, or confirmed, by a 2xx.
        case confirmed
    }

    /// Which side of the request that created the dialog this UA was.
    public enum Role: String, Sendable, Hashable, Codable {
        /// This UA sent the request.
        case uac
        /// This UA received it.
        case uas
    }

    /// The identifier.
    public let id: DialogID
    /// Which side this UA was.
    public let role: Role
    /// Early or confirmed.
    public private(set) var state: State
    /// The CSeq number of the last request this UA sent in the dialog; 0 for a UAS that has sent none yet, so that
    /// its first request carries 1 (RFC 3261 §12.1.1 leaves it empty, §12.2.1.1 lets the UA pick a start).
    public private(set) var localSequence: UInt32
    /// The CSeq number of the last request received in the dialog; nil until the UAC receives one.
    public private(set) var remoteSequence: UInt32?
    /// Whether the dialog was set up with a SIPS Request-URI (RFC 3261 §12.1.1, §12.1.2).
    public let secure: Bool

    // The addresses are kept in their wire form and parsed when read (a request is built): parsed, each is a
    // struct of strings and arrays several times the size, and a B2BUA holds two dialogs per call.
    private let localURIForm: WireForm<NameAddress>
    private let remoteURIForm: WireForm<NameAddress>
    private var remoteTargetForm: WireForm<SIPAnyURI>
    private var routeSetForms: [WireForm<NameAddress>]
    private var localContactForm: WireForm<NameAddress>

    /// This UA's address, without tag: the From of the UAC, the To of the UAS.
    public var localURI: NameAddress { localURIForm.value }
    /// The peer's address, without tag.
    public var remoteURI: NameAddress { remoteURIForm.value }
    /// Where requests in the dialog go: the peer's Contact, updated by target refresh requests and responses.
    public var remoteTarget: SIPAnyURI { remoteTargetForm.value }
    /// The Record-Route of the creating message, in the order this UA's requests travel: reversed for the UAC,
    /// as received for the UAS (RFC 3261 §12.1).
    public var routeSet: [NameAddress] { routeSetForms.map(\.value) }
    /// The Contact this UA puts in its target refresh requests (re-INVITE, UPDATE...). An address whose wire
    /// form would not parse back is not taken.
    public var localContact: NameAddress {
        get { localContactForm.value }
        set { if let form = WireForm(newValue) { localContactForm = form } }
    }

    private enum CodingKeys: String, CodingKey {
        case id, role, state, localSequence, remoteSequence, secure
        case localURIForm = "localURI", remoteURIForm = "remoteURI", remoteTargetForm = "remoteTarget"
        case routeSetForms = "routeSet", localContactForm = "localContact"
    }

    /// The dialog a response to an INVITE this UA sent sets up (RFC 3261 §12.1.2): early for a 1xx, confirmed
    /// for a 2xx. nil when the response cannot create a dialog: a 100 or a final failure, no To tag, no Contact
    /// in the response (the remote target) or in the INVITE (the local contact), or no From tag, Call-ID or CSeq.
    ///
    /// ```swift
    /// var early = Dialog(uac: invite, response: ringing)   // 180 with a tag and a Contact
    /// early?.confirm(with: ok)
    /// ```
    public init?(uac request: SIPRequest, response: SIPResponse) {
        guard (101...299).contains(response.status), let id = DialogID.forResponse(response),
              let from = request.from, let to = request.to, let cseq = request.cseq,
              let remoteTarget = response.contacts.first.flatMap({ WireForm($0.uri) }),
              let localContact = request.contacts.first.flatMap(WireForm.init),
              let localURI = WireForm(Self.untagged(from)), let remoteURI = WireForm(Self.untagged(to)),
              let routeSet = Self.recordRoute(of: response)
        else { return nil }
        self.id = id
        role = .uac
        state = response.isSuccess ? .confirmed : .early
        localSequence = cseq.sequence
        remoteSequence = nil
        localURIForm = localURI
        remoteURIForm = remoteURI
        remoteTargetForm = remoteTarget
        routeSetForms = routeSet.reversed()
        secure = request.uri.scheme == "sips"
        localContactForm = localContact
    }

    /// The dialog that another fork's 2xx to the INVITE of `sibling` sets up (RFC 3261 §13.2.2.4): the same Call-ID
    /// and local side, with the peer, remote target and route set of `response`. It needs no copy of the INVITE,
    /// which a UAC need not keep once answered. nil when `sibling` is a UAS dialog, or when `response` is no 2xx
    /// of that Call-ID and local tag, or lacks a To tag or Contact.
    ///
    /// ```swift
    /// if !dialog.matches(ok), var other = Dialog(forkOf: dialog, response: ok) {
    ///     send(other.makeACK(for: ok, via: freshVia())); send(other.makeRequest(.bye, via: freshVia()))
    /// }
    /// ```
    public init?(forkOf sibling: Dialog, response: SIPResponse) {
        guard sibling.role == .uac, response.isSuccess, let id = DialogID.forResponse(response),
              id.callID == sibling.id.callID, id.localTag == sibling.id.localTag, let cseq = response.cseq,
              let remoteURI = response.to.flatMap({ WireForm(Self.untagged($0)) }),
              let remoteTarget = response.contacts.first.flatMap({ WireForm($0.uri) }),
              let routeSet = Self.recordRoute(of: response)
        else { return nil }
        self.id = id
        role = .uac
        state = .confirmed
        localSequence = cseq.sequence
        remoteSequence = nil
        localURIForm = sibling.localURIForm
        remoteURIForm = remoteURI
        remoteTargetForm = remoteTarget
        routeSetForms = routeSet.reversed()
        secure = sibling.secure
        localContactForm = sibling.localContactForm
    }

    /// The dialog this UA sets up by answering `request` with a response whose To carries `localTag` (RFC 3261
    /// §12.1.1): early when that response is a 1xx, confirmed when it is a 2xx. nil without a Contact (the remote
    /// target), From, To, Call-ID or CSeq. A request without From tag (RFC 2543) gives an empty remote tag.
    ///
    /// ```swift
    /// var dialog = Dialog(uas: invite, localTag: tag, localContact: me, state: .early)!  // with the 180
    /// dialog.confirm(with: ok)                                                           // with the 200
    /// ```
    public init?(uas request: SIPRequest, localTag: String, localContact: NameAddress, state: State = .confirmed) {
        guard let callID = request.callID, let from = request.from, let to = request.to, let cseq = request.cseq,
              let remoteTarget = request.contacts.first.flatMap({ WireForm($0.uri) }),
              let localURI = WireForm(Self.untagged(to)), let remoteURI = WireForm(Self.untagged(from)),
              let routeSet = Self.recordRoute(of: request), let localContact = WireForm(localContact)
        else { return nil }
        id = DialogID(callID: callID, localTag: localTag, remoteTag: from.tag ?? "")
        role = .uas
        self.state = state
        localSequence = 0
        remoteSequence = cseq.sequence
        localURIForm = localURI
        remoteURIForm = remoteURI
        remoteTargetForm = remoteTarget
        routeSetForms = routeSet
        secure = request.uri.scheme == "sips"
        localContactForm = localContact
    }

    /// Whether a received request belongs to this dialog (RFC 3261 §12.2.2).
    public func matches(_ request: SIPRequest) -> Bool {
        DialogID.forIncoming(request) == id
    }

    /// How long to wait before trying again a re-INVITE of this dialog that got 491 Request Pending (RFC 3261 §14.1):
    /// in steps of 10 ms, 2.1 to 4 s when this UA generated the Call-ID (it was the UAC of the INVITE that made the
    /// dialog), 0 to 2 s otherwise, so the two ends of a glare do not retry at the same moment.
    ///
    /// ```swift
    /// var random = SystemRandomNumberGenerator()
    /// retry(after: dialog.glareRetryDelay(using: &random))
    /// ```
    public func glareRetryDelay(using generator: inout some RandomNumberGenerator) -> Duration {
        let steps = role == .uac ? Int.random(in: 210...400, using: &generator) : Int.random(in: 0...200, using: &generator)
        return .milliseconds(steps * 10)
    }

    /// Whether a response to a request this UA sent belongs to this dialog; a 2xx from another fork of the
    /// INVITE carries another To tag and does not.
    public func matches(_ response: SIPResponse) -> Bool {
        DialogID.forResponse(response) == id
    }

    /// The 2xx that confirms an early dialog (RFC 3261 §12.1.2, §13.2.2.4). For the UAC it is the peer's 2xx to
    /// the INVITE: the route set is recomputed from its Record-Route and its Contact becomes the remote target.
    /// For the UAS it is the 2xx it sends, which changes nothing but the state. On a confirmed dialog (a 2xx
    /// retransmission) nothing changes.
    public mutating func confirm(with response: SIPResponse) {
        precondition(response.isSuccess, "confirm(with:) needs a 2xx, got \(response.status)")
        guard state == .early else { return }
        state = .confirmed
        guard role == .uac else { return }
        if let routeSet = Self.recordRoute(of: response) { routeSetForms = routeSet.reversed() }
        if let target = response.contacts.first.flatMap({ WireForm($0.uri) }) { remoteTargetForm = target }
    }

    /// A 2xx to a target refresh request this UA sent in the dialog, a re-INVITE or UPDATE (RFC 3261
    /// §12.2.1.2): its Contact replaces the remote target. The route set never changes once confirmed.
    public mutating func refreshTarget(with response: SIPResponse) {
        precondition(response.isSuccess, "refreshTarget(with:) needs a 2xx, got \(response.status)")
        if let target = response.contacts.first.flatMap({ WireForm($0.uri) }) { remoteTargetForm = target }
    }

    /// A request received in the dialog (RFC 3261 §12.2.2): one whose CSeq is below the remote sequence number is
    /// `.outOfOrder` and leaves the dialog as it was; otherwise its number becomes the remote sequence number and a
    /// target refresh request (re-INVITE, UPDATE, SUBSCRIBE, NOTIFY) with a Contact changes the remote target.
    public mutating func receive(_ request: SIPRequest) -> DialogRequestCheck {
        // ACK and CANCEL reuse the number of the request they belong to: they neither fail nor advance the check.
        guard request.method != .ack, request.method != .cancel else { return .inOrder }
        guard let sequence = request.cseq?.sequence, sequence >= remoteSequence ?? 0 else { return .outOfOrder }
        remoteSequence = sequence
        if Self.targetRefreshMethods.contains(request.method),
           let target = request.contacts.first.flatMap({ WireForm($0.uri) }) {
            remoteTargetForm = target
        }
        return .inOrder
    }

    /// Builds a request in the dialog (RFC 3261 §12.2.1.1): the next local CSeq number (the current one for ACK
    /// and CANCEL), From and To with the dialog's tags, Call-ID, Max-Forwards 70, the Request-URI and Route
    /// that ``routeSet`` asks for, ``localContact`` for target refresh requests, then `extraHeaders` and the body.
    ///
    /// With a loose router first (`;lr`), the Request-URI is the remote target and Route is the route set. With a
    /// strict router first, its URI is the Request-URI and the remote target goes last in Route.
    ///
    /// ```swift
    /// var hold = dialog.makeRequest(.invite, via: freshVia(), body: SDPDirection.sendonly.applied(to: offer),
    ///                               contentType: "application/sdp")
    /// ```
    public mutating func makeRequest(
        _ method: SIPMethod, via: Via, body: [UInt8] = [], contentType: String? = nil, extraHeaders: SIPHeaders = []
    ) -> SIPRequest {
        if method != .ack, method != .cancel { localSequence += 1 }
        return request(
            method, sequence: localSequence, via: via, body: body, contentType: contentType, extraHeaders: extraHeaders)
    }

    /// Builds the ACK for a 2xx to an INVITE of this dialog (RFC 3261 §13.2.2.4): the CSeq number of that INVITE
    /// with method ACK, routed like any request in the dialog. `via` carries a new branch, since the ACK to a 2xx
    /// is not part of the INVITE transaction (RFC 3261 §17). Send it again for each retransmission of the 2xx.
    ///
    /// ```swift
    /// send(dialog.makeACK(for: ok, via: Via(transport: "UDP", host: me, branch: Via.magicCookie + random())))
    /// ```
    public func makeACK(
        for response: SIPResponse, via: Via, body: [UInt8] = [], contentType: String? = nil
    ) -> SIPRequest {
        let sequence = response.cseq?.sequence ?? localSequence
        return request(.ack, sequence: sequence, via: via, body: body, contentType: contentType, extraHeaders: [])
    }

    private func request(
        _ method: SIPMethod, sequence: UInt32, via: Via, body: [UInt8], contentType: String?, extraHeaders: SIPHeaders
    ) -> SIPRequest {
        var from = localURI
        from.tag = id.localTag
        var to = remoteURI
        if !id.remoteTag.isEmpty { to.tag = id.remoteTag }
        let (uri, routes) = requestURIAndRoutes()
        var headers: SIPHeaders = [
            ("Via", via.description), ("Max-Forwards", "70"), ("From", from.description), ("To", to.description),
            ("Call-ID", id.callID), ("CSeq", CSeq(sequence: sequence, method: method).description),
        ]
        for route in routes { headers.add("Route", route.description) }
        if Self.targetRefreshMethods.contains(method) { headers.add("Contact", localContact.description) }
        if let contentType, !body.isEmpty { headers.add("Content-Type", contentType) }
        for field in extraHeaders { headers.append(field) }
        return SIPRequest(method: method, uri: uri, headers: headers, body: body)
    }

    /// The Request-URI and Route values of a request in the dialog (RFC 3261 §12.2.1.1).
    private func requestURIAndRoutes() -> (SIPAnyURI, [NameAddress]) {
        let routeSet = routeSet
        let remoteTarget = remoteTarget
        guard let first = routeSet.first else { return (remoteTarget, []) }
        if first.uri.sipURI?.isLooseRouter == true { return (remoteTarget, routeSet) }
        // A strict router (RFC 2543) routes on the Request-URI, so it goes there, stripped of what a Request-URI
        // may not carry (§19.1.1: the method parameter and headers); the remote target rides last in Route.
        var uri = first.uri
        if var sip = uri.sipURI {
            sip.parameters.remove(named: "method")
            sip.headers = []
            uri = .sip(sip)
        }
        return (uri, routeSet.dropFirst() + [NameAddress(uri: remoteTarget)])
    }

    /// Requests that may change the remote target (RFC 3261 §12.2, RFC 3311 for UPDATE, RFC 6665 for SUBSCRIBE
    /// and NOTIFY), and so carry the local Contact.
    private static let targetRefreshMethods: Set<SIPMethod> = [.invite, .update, .subscribe, .notify]

    /// The Record-Route entries; nil when one of them would not read back from its wire form.
    private static func recordRoute(of message: some SIPMessageFields) -> [WireForm<NameAddress>]? {
        let forms = message.headers.values("Record-Route").compactMap(NameAddress.init).map(WireForm.init)
        return forms.contains { $0 == nil } ? nil : forms.compactMap { $0 }
    }

    private static func untagged(_ address: NameAddress) -> NameAddress {
        var address = address
        address.tag = nil
        return address
    }
}

// Dialogs are persisted as JSON; URIs and addresses go as their wire form, which reads like SIP and parses back.

extension SIPAnyURI: Codable {
    /// Decodes the wire form; a string that does not parse is a `DecodingError.dataCorrupted`.
    public init(from decoder: any Decoder) throws { self = try decodeWireForm(from: decoder) }

    /// Encodes the wire form.
    public func encode(to encoder: any Encoder) throws { try encodeWireForm(self, to: encoder) }
}

extension NameAddress: Codable {
    /// Decodes the wire form; a string that does not parse is a `DecodingError.dataCorrupted`.
    public init(from decoder: any Decoder) throws { self = try decodeWireForm(from: decoder) }

    /// Encodes the `name-addr` form.
    public func encode(to encoder: any Encoder) throws { try encodeWireForm(self, to: encoder) }
}

private func decodeWireForm<Value: LosslessStringConvertible>(from decoder: any Decoder) throws -> Value {
    let container = try decoder.singleValueContainer()
    let text = try container.decode(String.self)
    guard let value = Value(text) else {
        throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a valid \(Value.self): \(text)")
    }
    return value
}

private func encodeWireForm(_ value: some LosslessStringConvertible, to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(value.description)
}

/// A value kept as its wire form and parsed again when read. Only a value whose wire form parses back is
/// taken, so reading never fails; it encodes as that text and decodes only text that parses.
struct WireForm<Value: LosslessStringConvertible>: Sendable, Hashable, Codable {
    private let text: String

    init?(_ value: Value) {
        let text = value.description
        guard Value(text) != nil else { return nil }
        self.text = text
    }

    var value: Value {
        guard let value = Value(text) else { preconditionFailure("a checked wire form no longer parses: \(text)") }
        return value
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        text = try container.decode(String.self)
        guard Value(text) != nil else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a valid \(Value.self): \(text)")
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}
