import Crypto
import Foundation

/// What Kamailio's auth_db checks a SIP digest against when it stores no password (`calculate_ha1 no`):
/// the two HA1 values of RFC 2617 §3.2.2.2, one per form of the digest `username` a phone may send.
///
/// ```swift
/// let credentials = DigestCredentials(user: "alice", domain: "switchboard.local", password: "...")
/// credentials.ha1    // md5("alice:switchboard.local:...")                   → subscriber.ha1
/// credentials.ha1b   // md5("alice@switchboard.local:switchboard.local:...") → subscriber.ha1b
/// ```
public struct DigestCredentials: Equatable, Sendable {
    /// For `username="alice"` (auth_db's `password_column`).
    public var ha1: String
    /// For `username="alice@domain"` (auth_db's `password_column_2`).
    public var ha1b: String

    /// The realm is the domain: openser-cfg challenges with the From domain (`auth_check("$fd", ...)`).
    public init(user: String, domain: String, password: String) {
        ha1 = Self.md5Hex("\(user):\(domain):\(password)")
        ha1b = Self.md5Hex("\(user)@\(domain):\(domain):\(password)")
    }

    static func md5Hex(_ text: String) -> String {
        Insecure.MD5.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
