import Foundation

/// A SIP account as Kamailio knows it: a `subscriber` row (the password only as ``DigestCredentials``) and the
/// `dbaliases` rows that point at it. Never carries a password or a hash.
public struct SIPAccount: Encodable, Equatable, Sendable {
    public var user: String
    public var domain: String
    public var displayName: String?
    /// Other user parts that reach this account (DIDs, short numbers): Kamailio's alias_db rewrites a call to
    /// `ALIAS@domain` to the account before it looks it up.
    public var aliases: [String]
    /// Who pays for its calls: Kamailio passes it to the bridge as `X-Switchboard-Billing-Account`.
    public var billingAccount: String?
    /// A disabled account is refused (403 Account Disabled) on REGISTER and on every call it places or gets.
    public var enabled: Bool

    public var uri: String { "sip:\(user)@\(domain)" }

    enum CodingKeys: String, CodingKey {
        case user, domain, uri, displayName = "display_name", aliases, billingAccount = "billing_account", enabled
    }

    public init(user: String, domain: String, displayName: String? = nil, aliases: [String] = [], billingAccount: String? = nil,
                enabled: Bool = true) {
        self.user = user
        self.domain = domain
        self.displayName = displayName
        self.aliases = aliases
        self.billingAccount = billingAccount
        self.enabled = enabled
    }

    /// The API's form: snake_case, with `uri`; no password or hash, which an account never holds.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(user, forKey: .user)
        try container.encode(domain, forKey: .domain)
        try container.encode(uri, forKey: .uri)
        try container.encodeIfPresent(displayName, forKey: .displayName)
        try container.encode(aliases, forKey: .aliases)
        try container.encodeIfPresent(billingAccount, forKey: .billingAccount)
        try container.encode(enabled, forKey: .enabled)
    }
}

/// What `update` changes; nil leaves a field as it is, an empty display name or billing account clears it.
public struct SIPAccountChange: Equatable, Sendable {
    public var password: String?
    public var displayName: String?
    /// The complete new list.
    public var aliases: [String]?
    public var billingAccount: String?
    public var enabled: Bool?

    public init(password: String? = nil, displayName: String? = nil, aliases: [String]? = nil, billingAccount: String? = nil,
                enabled: Bool? = nil) {
        self.password = password
        self.displayName = displayName
        self.aliases = aliases
        self.billingAccount = billingAccount
        self.enabled = enabled
    }
}

/// Why the store refused a change; every case names what to fix.
public enum SIPAccountError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A field (`user`, `domain`, `aliases`, ...) is not acceptable; `reason` says why.
    case invalid(field: String, reason: String)
    case passwordRefused(PasswordRefusal)
    case duplicateUser(String)
    case unknownUser(String)
    /// The alias is another account's user name or alias.
    case aliasTaken(alias: String, owner: String)
    /// The file is missing or lacks what openser-cfg needs (`make-db.sh` creates and upgrades it).
    case notProvisionable(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "\(field): \(reason)"
        case .passwordRefused(let refusal): "password refused (\(refusal.rule.rawValue)): \(refusal.detail)"
        case .duplicateUser(let user): "SIP account \(user) exists already"
        case .unknownUser(let user): "no SIP account \(user)"
        case .aliasTaken(let alias, let owner): "\(alias) already reaches SIP account \(owner)"
        case .notProvisionable(let path, let reason):
            "\(path): \(reason); create or upgrade it with openser-cfg/make-db.sh \(path)"
        }
    }
}

/// The checks on what an account is made of, shared by create and update.
enum SIPAccountFields {
    /// SIP user parts without escaping: what phones type and what Kamailio matches byte for byte.
    static func checkUser(_ user: String, field: String = "user") throws(SIPAccountError) {
        guard (1...64).contains(user.utf8.count),
              user.unicodeScalars.allSatisfy({ $0.isASCII && (isAlphanumeric($0) || "._-+".unicodeScalars.contains($0)) }),
              user.unicodeScalars.first.map(isAlphanumeric) ?? false || user.hasPrefix("+") else {
            throw .invalid(field: field, reason: "\(user.debugDescription) must be 1 to 64 of A-Z a-z 0-9 . _ - +, starting with a letter, a digit or +")
        }
    }

    static func checkDomain(_ domain: String) throws(SIPAccountError) {
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...64).contains(domain.utf8.count), labels.allSatisfy({ label in
            !label.isEmpty && label.unicodeScalars.allSatisfy { $0.isASCII && (isAlphanumeric($0) || $0 == "-") }
                && label.first != "-" && label.last != "-"
        }) else {
            throw .invalid(field: "domain", reason: "\(domain.debugDescription) is not a host name")
        }
    }

    /// Display names are shown, never parsed: any text without control characters.
    static func checkDisplayName(_ name: String) throws(SIPAccountError) {
        guard name.count <= 128, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalid(field: "display_name", reason: "at most 128 characters, no control characters")
        }
    }

    /// It goes into a SIP header on the way to the bridge: a token, so it cannot break or add a header.
    static func checkBillingAccount(_ account: String) throws(SIPAccountError) {
        guard account.utf8.count <= 64,
              account.unicodeScalars.allSatisfy({ $0.isASCII && (isAlphanumeric($0) || "._-+:@".unicodeScalars.contains($0)) }) else {
            throw .invalid(field: "billing_account", reason: "at most 64 of A-Z a-z 0-9 . _ - + : @")
        }
    }

    static func checkAliases(_ aliases: [String]) throws(SIPAccountError) {
        guard aliases.count <= 32 else { throw .invalid(field: "aliases", reason: "at most 32 aliases") }
        // An alias equal to a user name (its own included) is taken, not malformed: the store answers that.
        for alias in aliases { try checkUser(alias, field: "aliases") }
        if Set(aliases).count != aliases.count { throw .invalid(field: "aliases", reason: "an alias is listed twice") }
    }

    private static func isAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }
}
