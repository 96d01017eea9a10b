/// A SIP request method. Any `token` is a valid method (RFC 3261 §7.1), so extension methods are values too;
/// method names are case-sensitive.
///
/// ```swift
/// if request.method == .invite { ... }
/// let custom = SIPMethod(rawValue: "PING")
/// ```
public struct SIPMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The method name as on the wire.
    public let rawValue: String

    /// Creates a method; nil unless `rawValue` is a `token`.
    public init?(rawValue: String) {
        guard Grammar.isToken(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    private init(known: String) {
        rawValue = known
    }

    /// The method name.
    public var description: String { rawValue }

    /// INVITE (RFC 3261).
    public static let invite = SIPMethod(known: "INVITE")
    /// ACK (RFC 3261).
    public static let ack = SIPMethod(known: "ACK")
    /// BYE (RFC 3261).
    public static let bye = SIPMethod(known: "BYE")
    /// CANCEL (RFC 3261).
    public static let cancel = SIPMethod(known: "CANCEL")
    /// OPTIONS (RFC 3261).
    public static let options = SIPMethod(known: "OPTIONS")
    /// REGISTER (RFC 3261).
    public static let register = SIPMethod(known: "REGISTER")
    /// INFO (RFC 6086).
    public static let info = SIPMethod(known: "INFO")
    /// UPDATE (RFC 3311).
    public static let update = SIPMethod(known: "UPDATE")
    /// PRACK (RFC 3262).
    public static let prack = SIPMethod(known: "PRACK")
    /// SUBSCRIBE (RFC 6665).
    public static let subscribe = SIPMethod(known: "SUBSCRIBE")
    /// NOTIFY (RFC 6665).
    public static let notify = SIPMethod(known: "NOTIFY")
    /// REFER (RFC 3515).
    public static let refer = SIPMethod(known: "REFER")
    /// MESSAGE (RFC 3428).
    public static let message = SIPMethod(known: "MESSAGE")
    /// PUBLISH (RFC 3903).
    public static let publish = SIPMethod(known: "PUBLISH")
}
