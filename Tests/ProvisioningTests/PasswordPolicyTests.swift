import Testing
@testable import Provisioning

@Suite struct PasswordPolicyTests {
    let policy = PasswordPolicy(minimumLength: 12, maximumLength: 64)

    @Test(arguments: [
        ("short-pw", "carol", PasswordRule.tooShort),
        (String(repeating: "x7", count: 33), "carol", .tooLong),
        ("tab\there-is-long", "carol", .controlCharacter),
        ("password1234", "carol", .common),
        ("Password2024!", "carol", .common),
        ("!!Sunshine2024", "carol", .common),
        ("aaaaaaaaaaaaaa", "carol", .common),
        ("121212121212", "carol", .common),
        ("1234567890123", "carol", .common),
        ("qwertyuiop[]12", "carol", .common),
        ("carol-has-a-garden", "carol", .containsUser),
        ("my-LORAC-backwards-1", "carol", .containsUser),
    ])
    func refusesByName(password: String, user: String, rule: PasswordRule) {
        #expect(policy.refusal(of: password, user: user)?.rule == rule)
    }

    @Test func acceptsALongUnlistedPassphrase() {
        #expect(policy.refusal(of: "correct horse battery", user: "carol") == nil)
        #expect(policy.refusal(of: "kx9-Tm2v-Qa7p", user: "carol") == nil)
        // A two-letter user name is too short to look for.
        #expect(policy.refusal(of: "bo-rides-a-bike", user: "bo") == nil)
    }

    @Test func lengthCountsCharactersNotBytes() {
        #expect(policy.refusal(of: "ééééé-ü-ö-ä-ñ", user: "carol") == nil)
        #expect(policy.refusal(of: "ééééé-ü", user: "carol")?.rule == .tooShort)
    }

    @Test func theRuleNamesAreTheOnesTheAPIReports() {
        #expect(PasswordRule.allCases.map(\.rawValue) == ["password_too_short", "password_too_long", "password_control_character",
                                                          "password_common", "password_contains_user", "password_reused"])
    }
}

@Suite struct DigestCredentialsTests {
    /// RFC 2617 §3.5's example: Mufasa, realm testrealm@host.com, "Circle Of Life".
    @Test func ha1IsTheRFC2617Value() {
        let credentials = DigestCredentials(user: "Mufasa", domain: "testrealm@host.com", password: "Circle Of Life")
        #expect(credentials.ha1 == "939e7578ed9e3c518a452acee763bce9")
    }

    /// The values make-db.sh computes with md5sum for the same input.
    @Test func ha1AndHa1bAsKamailioExpects() {
        let credentials = DigestCredentials(user: "alice", domain: "switchboard.local", password: "secret")
        #expect(credentials.ha1 == "089f6342f0ecb7e07db6d67f9f346ec1")
        #expect(credentials.ha1b == "b929a930c1c453ebf04e52c7c9e1f050")
    }
}
