import Testing
@testable import CallPolicy

/// One hostile (or ordinary) destination and what the policy must say of it.
struct Case: CustomTestStringConvertible, Sendable {
    let input: String
    /// A rule name, or `allow:` + the dial string the rules compared.
    let expected: String

    init(_ input: String, _ expected: String) {
        self.input = input
        self.expected = expected
    }

    var testDescription: String { "\(input.debugDescription.prefix(70)) → \(expected)" }
}

/// The issue's attacks and their relatives, against the default rules with two trunks.
let hostileCases: [Case] = [
    // Allowed: what the demo, the tests and ordinary users dial.
    Case("sip:alice@switchboard.local", "allow:alice"),
    Case("sip:+12025550100@switchboard.local", "allow:+12025550100"),
    Case("sip:12025550100@switchboard.local", "allow:+12025550100"),
    Case("sip:2025550100@switchboard.local", "allow:+12025550100"),
    Case("sip:+1-202-555-0100@switchboard.local;user=phone", "allow:+12025550100"),
    Case("tel:+1-202-555-0100", "allow:+12025550100"),
    Case("tel:+1(202)555.0100", "allow:+12025550100"),
    Case("+1 (202) 555-0100", "allow:+12025550100"),
    Case("1001", "allow:1001"),
    Case("sip:1001@switchboard.local", "allow:1001"),
    Case(#""Bob" <sip:bob@switchboard.local>"#, "allow:bob"),
    Case("Bob <sip:bob@switchboard.local>", "allow:bob"),
    Case("<sip:+12025550100@switchboard.local>", "allow:+12025550100"),
    Case("sip:bob@SWITCHBOARD.LOCAL", "allow:bob"),
    Case("sip:+18005550100@switchboard.local", "allow:+18005550100"),
    Case("sip:+14165550100@127.0.0.1:5090", "allow:+14165550100"),
    Case("sip:+12025550100@gw.example.com", "allow:+12025550100"),
    Case("sip:+12025550100@gw.example.com:5060", "allow:+12025550100"),
    Case("sip:bob@[2001:db8::1]", "allow:bob"),
    Case("sips:bob@switchboard.local;transport=tls", "allow:bob"),
    Case("sip:bob@switchboard.local;transport=TCP", "allow:bob"),
    Case("  sip:bob@switchboard.local  ", "allow:bob"),
    Case("alice", "allow:alice"),
    Case("sip:+16135550100@switchboard.local", "allow:+16135550100"),
    // A password hides the user part from a text check, and the host was never checked.
    Case("sip:19005551234:x@evil.example", "password_in_uri"),
    Case("sip:19005551234:x@switchboard.local", "password_in_uri"),
    Case("sip:alice:secret@switchboard.local", "password_in_uri"),
    Case("sip:+18095551234:@switchboard.local", "password_in_uri"),
    // Escapes: a digit to the next hop, not to a text check.
    Case("sip:%2B19005551234@switchboard.local", "escaped_user"),
    Case("sip:%31900555123@switchboard.local", "escaped_user"),
    Case("sip:alice%40evil@switchboard.local", "escaped_user"),
    Case("tel:%2B19005551234", "escaped_user"),
    // Headers would be copied into the request the bridge builds.
    Case("sip:1900@switchboard.local?Subject=x", "uri_headers"),
    Case("sip:bob@switchboard.local?Route=%3Csip:evil.example%3E", "uri_headers"),
    Case("<sip:bob@switchboard.local?X-Switchboard-Auth-User=admin>", "uri_headers"),
    Case("tel:+12025550100?x=y", "uri_headers"),
    // Parameters that change where the request goes.
    Case("sip:1900@switchboard.local;maddr=evil", "uri_parameter"),
    Case("sip:bob@switchboard.local;maddr=203.0.113.9", "uri_parameter"),
    Case("sip:bob@switchboard.local;lr", "uri_parameter"),
    Case("sip:bob@switchboard.local;user=dialstring", "uri_parameter"),
    Case("sip:bob@switchboard.local;transport=udp;transport=tcp", "uri_parameter"),
    Case("sip:bob@switchboard.local;method=REGISTER", "uri_parameter"),
    Case("tel:+12025550100;phone-context=+44", "uri_parameter"),
    Case("<sip:bob@switchboard.local>;maddr=evil", "uri_parameter"),
    Case("sip:bob@switchboard.local;ttl=1", "uri_parameter"),
    Case("sip:bob@switchboard.local;transport", "uri_parameter"),
    // Hosts: only the SIP domain and the trunks.
    Case("sip:+12025550100@evil.example", "host_not_allowed"),
    Case("sip:bob@evil.example", "host_not_allowed"),
    Case("sip:bob@switchboard.local.evil.example", "host_not_allowed"),
    Case("sip:bob@[::1]", "host_not_allowed"),
    Case("sip:+12025550100@gw.example.com:5070", "host_not_allowed"),
    Case("sip:bob@10.0.0.1", "host_not_allowed"),
    Case("sips:+12025550100@gw.example.com", "host_not_allowed"),
    Case(#""Evil" <sip:bob@evil.example>"#, "host_not_allowed"),
    Case("sip:bob@[2001:db8::2]", "host_not_allowed"),
    Case("sip:bob@127.0.0.2", "host_not_allowed"),
    // Digits of other scripts, which some stacks fold to ASCII.
    Case("sip:+１９００５５５１２３４@switchboard.local", "non_ascii_digits"),
    Case("tel:+١٩٠٠٥٥٥١٢٣٤", "non_ascii_digits"),
    Case("۱۹۰۰۵۵۵۱۲۳۴", "non_ascii_digits"),
    Case("sip:+1२०२५५५०१००@switchboard.local", "non_ascii_digits"),
    Case("+1９00 555 1234", "non_ascii_digits"),
    Case("sip:¹9005551234@switchboard.local", "non_ascii_digits"),
    // Not a destination at all: empty, injected lines, control characters, broken URIs.
    Case("", "malformed"),
    Case("   ", "malformed"),
    Case("sip:bob@switchboard.local\r\nVia: SIP/2.0/UDP evil.example", "malformed"),
    Case("sip:bob@switchboard.local\n", "malformed"),
    Case("sip:bob@switchboard.local\tx", "malformed"),
    Case("sip:bob\u{0}@switchboard.local", "malformed"),
    Case("sip:", "malformed"),
    Case("sip:@switchboard.local", "malformed"),
    Case("sip:switchboard.local", "malformed"),
    Case("sip:bob@", "malformed"),
    Case("<sip:bob@switchboard.local", "malformed"),
    Case("sip:bob@switchboard.local>", "malformed"),
    Case("bob@switchboard.local", "malformed"),
    Case("sip:bob@switch board.local", "malformed"),
    Case("sïp:bob@switchboard.local", "malformed"),
    Case("sip:bob@evil.example\u{202E}lacol.draobhctiws", "malformed"),
    Case("sip:bob@[::1", "malformed"),
    Case("tel:", "malformed"),
    // Bounded: a long destination is refused before it is read.
    Case("sip:" + String(repeating: "1", count: 300) + "@switchboard.local", "too_long"),
    Case(String(repeating: "a", count: 257), "too_long"),
    Case(String(repeating: "１", count: 100), "too_long"),
    // Other schemes are not dialled.
    Case("http://evil.example/", "unsupported_scheme"),
    Case("sipx:bob@switchboard.local", "unsupported_scheme"),
    Case("mailto:bob@example.com", "unsupported_scheme"),
    Case("urn:service:sos", "unsupported_scheme"),
    Case("data:text/plain,1900", "unsupported_scheme"),
    // User parts that are neither a number nor a user name.
    Case("sip:1-800-FLOWERS@switchboard.local", "bad_user"),
    Case("sip:*69@switchboard.local", "bad_user"),
    Case("sip:1900x@switchboard.local", "bad_user"),
    Case("sip:#31#19005551234@switchboard.local", "bad_user"),
    Case("sip:+@switchboard.local", "bad_user"),
    Case("sip:_admin@switchboard.local", "bad_user"),
    Case("tel:alice", "bad_user"),
    Case("sip:19005551234,1@switchboard.local", "bad_user"),
    Case("alice smith", "bad_user"),
    // Digits that are no number this plan knows.
    Case("sip:+1809555@switchboard.local", "invalid_number"),
    Case("sip:1234567@switchboard.local", "invalid_number"),
    Case("sip:+1234567890123456@switchboard.local", "invalid_number"),
    Case("sip:09061234567@switchboard.local", "invalid_number"),
    Case("sip:+12025550100999@switchboard.local", "invalid_number"),
    Case("sip:+10005550100@switchboard.local", "invalid_number"),
    Case("sip:+0123456789@switchboard.local", "invalid_number"),
    // Premium rate, in every form.
    Case("sip:+19005551234@switchboard.local", "premium_rate"),
    Case("sip:19005551234@switchboard.local", "premium_rate"),
    Case("sip:9005551234@switchboard.local", "premium_rate"),
    Case("tel:+1-900-555-1234", "premium_rate"),
    Case("1 (900) 555-1234", "premium_rate"),
    Case("sip:+12029765555@switchboard.local", "premium_rate"),
    Case("011 44 909 879 0000", "premium_rate"),
    Case("0044 909 879 0000", "premium_rate"),
    Case("sip:+449118790000@switchboard.local", "premium_rate"),
    Case("sip:+4490312345678@127.0.0.1", "premium_rate"),
    Case("sip:+49900123456@switchboard.local", "premium_rate"),
    Case("sip:+979123456789@switchboard.local", "premium_rate"),
    Case("11833", "premium_rate"),
    Case("sip:0906@switchboard.local", "premium_rate"),
    Case("sip:+44118118@switchboard.local", "premium_rate"),
    Case("sip:+19765551234@switchboard.local", "premium_rate"),
    // Shared cost.
    Case("sip:+448712345678@switchboard.local", "shared_cost"),
    Case("sip:+80812345678@switchboard.local", "shared_cost"),
    Case("sip:+4918012345678@switchboard.local", "shared_cost"),
    // Satellite and international networks.
    Case("00881612345678", "satellite"),
    Case("sip:+8816123456789@switchboard.local", "satellite"),
    Case("011870772123456", "satellite"),
    Case("sip:+88213012345@switchboard.local", "satellite"),
    Case("sip:+883140012345@switchboard.local", "satellite"),
    Case("tel:+881-6-1234-5678", "satellite"),
    // International.
    Case("sip:+442079460000@switchboard.local", "international"),
    Case("011 44 20 7946 0000", "international"),
    Case("0044 20 7946 0000", "international"),
    Case("tel:+33-1-23-45-67-89", "international"),
    Case("sip:+4930123456@switchboard.local", "international"),
    Case("sip:+525512345678@switchboard.local", "international"),
    Case("sip:+79161234567@switchboard.local", "international"),
    Case("sip:+2348012345678@switchboard.local", "international"),
    Case("sip:+37060012345@switchboard.local", "international"),
    Case("sip:+22177777777@gw.example.com", "international"),
    // NANP outside the US and Canada: one country code, 25 countries.
    Case("sip:+18095551234@switchboard.local", "nanp_foreign"),
    Case("tel:+1-809-555-1234", "nanp_foreign"),
    Case("18295551234", "nanp_foreign"),
    Case("sip:8495551234@switchboard.local", "nanp_foreign"),
    Case("+1 (876) 555-1234", "nanp_foreign"),
    Case(#""Jamaica" <sip:+18765551234@switchboard.local>"#, "nanp_foreign"),
    Case("sip:+1-809-555-1234@127.0.0.1;user=phone", "nanp_foreign"),
] + ["284", "473", "268", "664", "649", "242", "246", "264", "340", "345", "441", "670", "671", "684", "721", "758", "767",
     "784", "787", "868", "869", "939", "658"].map { Case("sip:+1\($0)5551234@switchboard.local", "nanp_foreign") }

@Suite struct HostileDestinationTests {
    let policy: DestinationPolicy = {
        var rules = DestinationRules()
        rules.trunkHosts = ["127.0.0.1", "gw.example.com:5060", "[2001:db8::1]"]
        return DestinationPolicy(rules: rules)
    }()

    @Test func theTableIsLargeAndCoversEveryRule() {
        #expect(hostileCases.count >= 100)
        let named = Set(hostileCases.map(\.expected))
        let unused = PolicyRule.allCases.filter { !named.contains($0.rawValue) && $0 != .keyDeny && $0 != .notAllowed }
        #expect(unused.isEmpty, "rules no case reaches: \(unused)")
    }

    @Test(arguments: hostileCases)
    func verdict(_ item: Case) {
        let verdict: String
        do {
            verdict = "allow:" + (try policy.check(item.input)).dialString
        } catch {
            verdict = error.rule.rawValue
            #expect(!error.message.isEmpty)
            #expect(error.destination.count <= 81, "a denial carries a bounded copy of the input")
        }
        #expect(verdict == item.expected)
    }
}
