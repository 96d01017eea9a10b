import Testing
@testable import CallPolicy

@Suite struct DestinationPolicyTests {
    let rules = DestinationRules()

    @Test func patternsMatchPrefixesWithDigitWildcards() {
        #expect(DialPattern("09xx").matches("09061234567"))
        #expect(!DialPattern("09xx").matches("09"))
        #expect(!DialPattern("09xx").matches("08001234"))
        #expect(DialPattern("+44*").matches("+442079460000"))
        #expect(DialPattern("*").matches("anything"))
        #expect(!DialPattern("+44").matches("+4"))
        #expect(!DialPattern("1").matches("x"), "an x in the subject is a letter, not a wildcard")
    }

    @Test func aPatternCoversARangeOnlyWhenItIsAtLeastAsNarrow() {
        #expect(DialPattern("+4490").covers("+4490"))
        #expect(DialPattern("+449098").covers("+4490"))
        #expect(!DialPattern("+44").covers("+4490"))
        #expect(!DialPattern("*").covers("+4490"))
        #expect(DialPattern("+1202976").covers("+1xxx976"))
        #expect(!DialPattern("+1202").covers("+1xxx976"))
    }

    @Test func keyDenyPatternsComeFirstThenTheAllowList() throws {
        let policy = DestinationPolicy(rules: rules, allow: ["+1"], deny: ["+1202555"])
        #expect(throws: PolicyDenial.self) { try policy.check("sip:+12025550100@switchboard.local") }
        do {
            try policy.check("sip:+12025550100@switchboard.local")
        } catch {
            #expect(error.rule == .keyDeny)
            #expect(error.pattern == "+1202555")
            #expect(error.message.contains("+1202555"))
        }
        #expect(try policy.check("+13125550100") == .number("+13125550100"))
        let ukOnly = DestinationPolicy(rules: rules, allow: ["+44"])
        #expect(rule(ukOnly, "+13125550100") == .notAllowed)
    }

    @Test func anAllowPatternLiftsOnlyTheRangeItNames() throws {
        let uk = DestinationPolicy(rules: rules, allow: ["+44"])
        #expect(try uk.check("+442079460000") == .number("+442079460000"))
        #expect(rule(uk, "+449098790000") == .premiumRate, "allowing +44 does not open UK premium rate")
        let ukPremium = DestinationPolicy(rules: rules, allow: ["+4490"])
        #expect(try ukPremium.check("+449098790000") == .number("+449098790000"))
        let dominican = DestinationPolicy(rules: rules, allow: ["+1809", "+1202"])
        #expect(try dominican.check("+18095551234") == .number("+18095551234"))
        #expect(rule(dominican, "+18295551234") == .notAllowed)
        let everything = DestinationPolicy(rules: rules, allow: ["*"])
        #expect(rule(everything, "+442079460000") == .international)
        #expect(rule(everything, "+19005551234") == .premiumRate)
        #expect(rule(everything, "+18095551234") == .nanpForeign)
        #expect(rule(everything, "sip:alice:pw@switchboard.local") == .passwordInURI, "no pattern lifts the URI's form")
    }

    @Test func homeAreaCodesCanBeAList() throws {
        var newYork = rules
        newYork.homeAreaCodes = try #require(DestinationRules.HomeAreaCodes(["212", "646"]))
        let policy = DestinationPolicy(rules: newYork)
        #expect(try policy.check("+12125550100") == .number("+12125550100"))
        #expect(rule(policy, "+13125550100") == .nanpForeign)
        #expect(rule(policy, "+18095551234") == .nanpForeign)
        #expect(DestinationRules.HomeAreaCodes(["US+CA"]) == .unitedStatesAndCanada)
        #expect(DestinationRules.HomeAreaCodes(["2125"]) == nil)
        #expect(DestinationRules.HomeAreaCodes([]) == nil)
    }

    @Test func homeCountryIsConfigurable() throws {
        var german = rules
        german.homeCountryCode = "49"
        let policy = DestinationPolicy(rules: german)
        #expect(try policy.check("004930123456") == .number("+4930123456"))
        #expect(try policy.check("030123456") == .number("+4930123456"), "the national prefix 0 becomes +49")
        #expect(rule(policy, "+12025550100") == .international)
        #expect(rule(policy, "09001234567") == .premiumRate)
        #expect(rule(policy, "+4990012345") == .premiumRate)
    }

    @Test func extraDeniedPrefixesAreConfigurable() {
        var strict = rules
        strict.extraDeniedPrefixes = ["+1202555"]
        #expect(rule(DestinationPolicy(rules: strict), "+12025550100") == .premiumRate)
        #expect(rule(DestinationPolicy(rules: rules), "+12025550100") == nil)
    }

    @Test func hostsAreSIPDomainsAndTrunksWithOptionalPorts() {
        var custom = rules
        custom.sipDomains = ["pbx.example.com"]
        custom.trunkHosts = ["sbc.example.com:5070", "[2001:db8::5]"]
        let policy = DestinationPolicy(rules: custom)
        #expect(rule(policy, "sip:bob@pbx.example.com:5099") == nil)
        #expect(rule(policy, "sip:+12025550100@sbc.example.com:5070") == nil)
        #expect(rule(policy, "sip:+12025550100@sbc.example.com") == .hostNotAllowed)
        #expect(rule(policy, "sip:bob@[2001:DB8::5]:5060") == nil)
        #expect(rule(policy, "sip:bob@switchboard.local") == .hostNotAllowed, "the default domain is gone once replaced")
        #expect(DestinationRules.hostProblem("sbc.example.com:5070") == nil)
        #expect(DestinationRules.hostProblem("[::1]:5060") == nil)
        #expect(DestinationRules.hostProblem("evil example") != nil)
        #expect(DestinationRules.hostProblem("") != nil)
    }

    @Test func aDenialsTextIsBoundedAndNamesTheRule() {
        let long = "sip:" + String(repeating: "9", count: 200) + "@switchboard.local"
        do {
            try DestinationPolicy(rules: rules).check(long)
            Issue.record("allowed")
        } catch {
            #expect(error.rule == .invalidNumber)
            #expect(error.destination.count <= 81)
            #expect(error.description.hasPrefix("invalid_number: "))
        }
    }

    private func rule(_ policy: DestinationPolicy, _ input: String) -> PolicyRule? {
        do {
            try policy.check(input)
            return nil
        } catch {
            return error.rule
        }
    }
}
