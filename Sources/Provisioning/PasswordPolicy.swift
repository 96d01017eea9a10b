import Foundation

/// A rule a new SIP password broke; its raw value is the name the API and the CLI report.
public enum PasswordRule: String, Sendable, CaseIterable {
    case tooShort = "password_too_short"
    case tooLong = "password_too_long"
    /// A control character: no phone can type it, and it is probably a paste gone wrong.
    case controlCharacter = "password_control_character"
    case common = "password_common"
    case containsUser = "password_contains_user"
    /// One of the account's previous passwords (its current one included).
    case reused = "password_reused"
}

/// Why a password was refused: the rule and a sentence for people.
public struct PasswordRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    public var rule: PasswordRule
    public var detail: String

    public var description: String { "\(rule.rawValue): \(detail)" }
}

/// What a SIP password must be. Digest responses go over the wire and HA1 is a fast MD5, so a captured
/// exchange is attacked offline at billions of guesses a second: length and not-a-known-password are what
/// count, not character classes. Pure: the reuse rule lives in ``SIPAccountStore``, which holds the history.
///
/// ```swift
/// let policy = PasswordPolicy()
/// policy.refusal(of: "secret", user: "alice")?.rule                // .tooShort (12 characters needed)
/// policy.refusal(of: "Password2024!", user: "alice")?.rule         // .common
/// policy.refusal(of: "alice-in-the-garden", user: "alice")?.rule   // .containsUser
/// ```
public struct PasswordPolicy: Equatable, Sendable {
    public var minimumLength: Int
    /// Bounds the cost of hashing a request's password (PBKDF2 runs over every byte).
    public var maximumLength: Int
    /// Previous passwords kept (as slow salted hashes) and refused again.
    public var historyDepth: Int

    public init(minimumLength: Int = 12, maximumLength: Int = 128, historyDepth: Int = 5) {
        precondition(minimumLength >= 1 && maximumLength >= minimumLength && historyDepth >= 0)
        self.minimumLength = minimumLength
        self.maximumLength = maximumLength
        self.historyDepth = historyDepth
    }

    /// The first rule `password` breaks for `user`, or nil.
    public func refusal(of password: String, user: String) -> PasswordRefusal? {
        let length = password.count
        if length < minimumLength {
            return PasswordRefusal(rule: .tooShort, detail: "the password has \(length) characters; at least \(minimumLength) are needed")
        }
        if length > maximumLength {
            return PasswordRefusal(rule: .tooLong, detail: "the password has \(length) characters; at most \(maximumLength) are allowed")
        }
        if password.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return PasswordRefusal(rule: .controlCharacter, detail: "the password contains a control character")
        }
        let lowered = password.lowercased()
        if Self.isCommon(lowered) {
            return PasswordRefusal(rule: .common, detail: "the password is a well-known one, or one with a few characters added")
        }
        let name = user.lowercased()
        if name.count >= 3, lowered.contains(name) || lowered.contains(String(name.reversed())) {
            return PasswordRefusal(rule: .containsUser, detail: "the password contains the user name")
        }
        return nil
    }

    /// In the list; the list's word with digits or symbols around it (`Password2024!`); or at most three different
    /// characters (`aaaaaaaaaaaa`, `121212121212`).
    static func isCommon(_ lowered: String) -> Bool {
        if Set(lowered).count <= 3 || commonPasswords.contains(lowered) { return true }
        let core = lowered.trimmingCharacters(in: CharacterSet.letters.inverted)
        if !core.isEmpty, commonPasswords.contains(core) { return true }
        // A keyboard or digit run repeated or extended (`1234567890123`, `qwertyuiopas`) starts with one in the list.
        return commonPrefixes.contains { lowered.hasPrefix($0) }
    }

    /// Passwords at the top of every breach list (SecLists, Have I Been Pwned), lower-cased.
    static let commonPasswords: Set<String> = [
        "123456", "password", "12345678", "qwerty", "123456789", "12345", "1234", "111111", "1234567", "dragon",
        "123123", "baseball", "abc123", "football", "monkey", "letmein", "shadow", "master", "696969", "mustang",
        "michael", "pussy", "superman", "fuckyou", "121212", "killer", "trustno", "trustno1", "jordan", "jennifer",
        "hunter", "buster", "soccer", "harley", "batman", "andrew", "tigger", "sunshine", "iloveyou", "fuckme",
        "charlie", "robert", "thomas", "hockey", "ranger", "daniel", "starwars", "klaster", "112233", "george",
        "asshole", "computer", "michelle", "jessica", "pepper", "zxcvbnm", "freedom", "ginger", "princess", "joshua",
        "cheese", "amanda", "summer", "love", "ashley", "nicole", "chelsea", "biteme", "matthew", "access",
        "yankees", "dallas", "austin", "thunder", "taylor", "matrix", "welcome", "admin", "administrator", "passw0rd",
        "p@ssw0rd", "p@ssword", "pa$$word", "qwertyuiop", "asdfghjkl", "qazwsx", "1qaz2wsx", "zaq12wsx", "1q2w3e4r",
        "1q2w3e4r5t", "qwe123", "changeme", "secret", "default", "guest", "root", "toor", "test", "testing",
        "sip", "voip", "asterisk", "kamailio", "openser", "switchboard", "phone", "telephone", "voicemail",
        "letmeinplease", "iloveyou2", "whatever", "trustme", "lovely", "flower", "hello", "helloworld", "football1",
        "baseball1", "monkey1", "dragon1", "password1", "password12", "password123", "qwerty123", "abc12345",
        "abcdef", "abcdefg", "abcdefgh", "abcd1234", "aa123456", "987654321", "654321", "000000", "0000",
    ]

    /// Keyboard and digit runs: a password that starts with one is a run and not much else.
    static let commonPrefixes = ["123456789", "987654321", "qwertyuiop", "asdfghjkl", "zxcvbnm,", "1q2w3e4r5t", "qazwsxedc",
                                 "abcdefghij"]
}
