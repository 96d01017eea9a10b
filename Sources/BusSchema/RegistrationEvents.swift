/// One binding of an address of record in Kamailio's registrar (usrloc), as the `registration.*`
/// events carry it: who is reachable, at which contact, for how long.
///
/// ```json
/// {"aor":"sip:alice@switchboard.local","user":"alice","contact":"sip:alice@127.0.0.1:5070","transport":"udp",
///  "user_agent":"sipp","expires":3600,"received":"127.0.0.1:5070"}
/// ```
public struct Registration: Equatable, Sendable {
    /// The address of record, `sip:USER@DOMAIN`.
    public var aor: String
    /// The user part of the address of record (the subscriber's name or number).
    public var user: String
    /// The Contact URI the phone registered.
    public var contact: String
    /// The transport the REGISTER came over: `udp`, `tcp`, `tls`, `ws`, `wss` or `sctp`.
    public var transport: String
    /// The phone's User-Agent, when it sent one.
    public var userAgent: String?
    /// Seconds the binding has left; 0 in `registration.removed` and `registration.expired`.
    public var expires: Int
    /// Where the REGISTER came from, `ip:port`, when Kamailio knows it.
    public var received: String?

    public init(aor: String, user: String, contact: String, transport: String, userAgent: String? = nil, expires: Int,
                received: String? = nil) {
        self.aor = aor
        self.user = user
        self.contact = contact
        self.transport = transport
        self.userAgent = userAgent
        self.expires = expires
        self.received = received
    }
}

/// What happened to a binding, one case per `registration.*` event.
public enum RegistrationChange: String, Equatable, Sendable, CaseIterable {
    /// A contact the AOR did not have: the phone is now reachable there.
    case created = "registration.created"
    /// A REGISTER renewed a contact the AOR had.
    case refreshed = "registration.refreshed"
    /// The phone unregistered the contact (Expires: 0, or `Contact: *`).
    case removed = "registration.removed"
    /// The contact lapsed without a refresh: Kamailio's usrloc timer dropped it.
    case expired = "registration.expired"

    /// The event type of the same name.
    public var eventType: EventType {
        switch self {
        case .created: .registrationCreated
        case .refreshed: .registrationRefreshed
        case .removed: .registrationRemoved
        case .expired: .registrationExpired
        }
    }

    /// The event body that carries `registration`.
    public func body(_ registration: Registration) -> EventBody {
        switch self {
        case .created: .registrationCreated(registration)
        case .refreshed: .registrationRefreshed(registration)
        case .removed: .registrationRemoved(registration)
        case .expired: .registrationExpired(registration)
        }
    }
}

extension EventBody {
    /// The change and binding of a `registration.*` event; nil for every other event.
    public var registrationChange: (change: RegistrationChange, registration: Registration)? {
        switch self {
        case .registrationCreated(let registration): (.created, registration)
        case .registrationRefreshed(let registration): (.refreshed, registration)
        case .registrationRemoved(let registration): (.removed, registration)
        case .registrationExpired(let registration): (.expired, registration)
        default: nil
        }
    }
}

/// A registrar outcome as Kamailio relays it to a bridge: the body of an out-of-dialog MESSAGE of type
/// ``contentType``, `{"v":1,"type":"registration.created","registration":{...}}` (an event without the
/// bridge's `bridge_id`, `seq` and `ts`). Read strictly, since it becomes a journaled event: every field
/// is checked and a refusal names it.
///
/// ```swift
/// let notice = try RegistrationNotice.decode(body)
/// bus.publish(callId: nil, notice.change.body(notice.registration))
/// ```
public struct RegistrationNotice: Equatable, Sendable {
    /// The MESSAGE's Content-Type: Kamailio's cfg sets it, the bridge takes nothing else as a notice.
    public static let contentType = "application/vnd.switchboard.registration+json"
    /// Longest body the bridge reads (a notice is a few hundred bytes).
    public static let maxBodySize = 8 * 1024
    /// Longest string field: Kamailio's `contact_max_size` is 512 by default.
    public static let maxFieldLength = 1024
    /// Longest binding Kamailio's registrar grants (`max_expires` is 3600 in the shipped cfg).
    public static let maxExpires = 7 * 24 * 3600
    /// The transports a contact may have been registered over (Kamailio's socket protocols).
    public static let transports: Set<String> = ["udp", "tcp", "tls", "sctp", "ws", "wss"]

    public var change: RegistrationChange
    public var registration: Registration

    public init(change: RegistrationChange, registration: Registration) {
        self.change = change
        self.registration = registration
    }

    /// Reads and checks a notice body; the error (`bad_json`, `too_large`, `unsupported_version` or
    /// `bad_message`) names the field at fault.
    public static func decode(_ body: [UInt8]) throws(BusDecodingError) -> RegistrationNotice {
        guard body.count <= maxBodySize else {
            throw BusDecodingError(code: .tooLarge, message: "body of \(body.count) bytes exceeds \(maxBodySize)")
        }
        let (json, type) = try JSONObject.message(body)
        guard let change = RegistrationChange(rawValue: type) else {
            let expected = RegistrationChange.allCases.map(\.rawValue).joined(separator: ", ")
            throw BusDecodingError(code: .badMessage, message: "type must be one of \(expected), got \(type.debugDescription)")
        }
        let registration: Registration = try json.member(EventType.registrationCreated.payloadKey)
        try check(registration, change: change)
        return RegistrationNotice(change: change, registration: registration)
    }

    private static func check(_ registration: Registration, change: RegistrationChange) throws(BusDecodingError) {
        let path = EventType.registrationCreated.payloadKey
        func invalid(_ field: String, _ rule: String) -> BusDecodingError {
            BusDecodingError(code: .badMessage, message: "\(path).\(field) \(rule)")
        }
        let fields: [(String, String?)] = [("aor", registration.aor), ("user", registration.user), ("contact", registration.contact),
                                           ("transport", registration.transport), ("user_agent", registration.userAgent),
                                           ("received", registration.received)]
        for case let (field, value?) in fields {
            guard value.utf8.count <= maxFieldLength else { throw invalid(field, "is longer than \(maxFieldLength) bytes") }
            guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw invalid(field, "contains a control character")
            }
        }
        guard registration.aor.hasPrefix("sip:") || registration.aor.hasPrefix("sips:") else { throw invalid("aor", "must be a sip: or sips: URI") }
        guard !registration.user.isEmpty else { throw invalid("user", "must not be empty") }
        guard registration.aor.contains(":\(registration.user)@") else { throw invalid("user", "must be the user part of aor") }
        guard !registration.contact.isEmpty else { throw invalid("contact", "must not be empty") }
        guard transports.contains(registration.transport) else {
            throw invalid("transport", "must be one of \(transports.sorted().joined(separator: ", ")), got \(registration.transport.debugDescription)")
        }
        switch change {
        case .created, .refreshed:
            guard (1...maxExpires).contains(registration.expires) else { throw invalid("expires", "must be 1...\(maxExpires) for \(change.rawValue)") }
        case .removed, .expired:
            guard registration.expires == 0 else { throw invalid("expires", "must be 0 for \(change.rawValue)") }
        }
    }
}

extension Registration: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(aor: try json.string("aor"), user: try json.string("user"), contact: try json.string("contact"),
                  transport: try json.string("transport"), userAgent: try json.optionalString("user_agent"),
                  expires: try json.int("expires"), received: try json.optionalString("received"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("aor", aor)
        writer.member("user", user)
        writer.member("contact", contact)
        writer.member("transport", transport)
        writer.member("user_agent", userAgent)
        writer.member("expires", expires)
        writer.member("received", received)
        writer.closeObject()
    }
}
