import Testing
@testable import WebGateway

@Suite struct DestinationPolicyTests {
    let defaults = DefaultDestinationRules(homeCountryCode: "1", internationalPrefixes: ["00", "011"],
                                           premiumPrefixes: DefaultDestinationRules.standardPremiumPrefixes)

    @Test func normalizesURIsNumbersAndUserNames() {
        let prefixes = ["00", "011"]
        #expect(Destination.normalize("sip:+1 (202) 555-0100@gw.example.com;user=phone", internationalPrefixes: prefixes)
            == .number("+12025550100"))
        #expect(Destination.normalize("tel:0044-20-7946-0000", internationalPrefixes: prefixes) == .number("+442079460000"))
        #expect(Destination.normalize("011 33 1 23 45 67 89", internationalPrefixes: prefixes) == .number("+33123456789"))
        #expect(Destination.normalize("sip:alice@switchboard.local", internationalPrefixes: prefixes) == .user("alice"))
        #expect(Destination.normalize("2025550100", internationalPrefixes: prefixes) == .number("2025550100"))
        #expect(Destination.normalize("sip:@host", internationalPrefixes: prefixes) == nil)
    }

    @Test func patternsMatchPrefixesWithDigitWildcards() {
        #expect(DialPattern("09xx").matches("09061234567"))
        #expect(!DialPattern("09xx").matches("09"))
        #expect(!DialPattern("09xx").matches("08001234"))
        #expect(DialPattern("+44*").matches("+442079460000"))
        #expect(DialPattern("*").matches("anything"))
        #expect(!DialPattern("+44").matches("+4"))
    }

    @Test func defaultsDenyInternationalAndPremiumRate() {
        let policy = DestinationPolicy(allow: [], deny: [], defaults: defaults)
        #expect(policy.check("+12025550100") == nil)
        #expect(policy.check("sip:bob@switchboard.local") == nil)
        #expect(policy.check("2025550100") == nil)
        #expect(policy.check("+442079460000")?.rule == "international")
        #expect(policy.check("00442079460000")?.rule == "international")
        #expect(policy.check("011442079460000")?.rule == "international")
        #expect(policy.check("+19005551234")?.rule == "premium_rate")
        #expect(policy.check("19765551234")?.rule == "premium_rate")
        #expect(policy.check("9005551234")?.rule == "premium_rate")
        #expect(policy.check("09061234567")?.rule == "premium_rate")
        #expect(policy.check("11833")?.rule == "premium_rate")
        #expect(policy.check("11833")?.pattern == "118xx")
    }

    @Test func explicitAllowPatternsLiftDefaultDeniesButWildcardDoesNot() {
        let uk = DestinationPolicy(allow: ["+44"], deny: [], defaults: defaults)
        #expect(uk.check("+442079460000") == nil)
        // An allow list restricts: only what it names.
        #expect(uk.check("+12025550100")?.rule == "not_allowed")
        let everything = DestinationPolicy(allow: ["*"], deny: [], defaults: defaults)
        #expect(everything.check("+12025550100") == nil)
        #expect(everything.check("+442079460000")?.rule == "international")
        #expect(everything.check("+19005551234")?.rule == "premium_rate")
    }

    @Test func keyDenyPatternsComeFirst() {
        let policy = DestinationPolicy(allow: ["+1"], deny: ["+1202555"], defaults: defaults)
        let denial = policy.check("sip:+12025550100@gw")
        #expect(denial?.rule == "key_deny")
        #expect(denial?.pattern == "+1202555")
        #expect(denial?.message.contains("+1202555") == true)
        #expect(policy.check("+13125550100") == nil)
    }

    @Test func homeCountryIsConfigurable() {
        var german = defaults
        german.homeCountryCode = "49"
        let policy = DestinationPolicy(allow: [], deny: [], defaults: german)
        #expect(policy.check("004930123456") == nil)
        #expect(policy.check("+12025550100")?.rule == "international")
        #expect(policy.check("+4990012345")?.rule == "premium_rate")
    }
}
