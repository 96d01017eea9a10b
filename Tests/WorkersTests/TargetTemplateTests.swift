import Testing
@testable import Workers

@Suite struct TargetTemplateTests {
    @Test func hostOnlyTargetGetsTheNumberAsUser() throws {
        #expect(try TargetTemplate("sip:gw1.example.com:5060").uri(for: "12025550100") == "sip:12025550100@gw1.example.com:5060")
        #expect(try TargetTemplate("sips:gw1.example.com;transport=tls").uri(for: "44") == "sips:44@gw1.example.com;transport=tls")
    }

    @Test func placeholderIsSubstituted() throws {
        let template = try TargetTemplate("sip:00{number}@gw2.example.com;user=phone")
        #expect(template.uri(for: "4420") == "sip:004420@gw2.example.com;user=phone")
    }

    @Test func targetWithUserIsUsedAsIs() throws {
        #expect(try TargetTemplate("sip:helpdesk@pbx.example.com").uri(for: "12025550100") == "sip:helpdesk@pbx.example.com")
    }

    @Test func anAtInAParameterIsNotAUserPart() throws {
        #expect(try TargetTemplate("sip:gw.example.com;x=a@b").uri(for: "1") == "sip:1@gw.example.com;x=a@b")
    }

    @Test(arguments: [
        ("http://gw.example.com", "it must be a sip: or sips: URI, e.g. sip:gw1.example.com:5060"),
        ("tel:+12025550100", "it must be a sip: or sips: URI, e.g. sip:gw1.example.com:5060"),
        ("sip:", "it has no host"),
        ("sip:alice@", "it has no host"),
        ("sip::5060", "it has no host"),
        ("sip:gw.example.com>", "it contains \">\""),
        ("sip:gw .example.com", "it contains \" \""),
    ])
    func refusesUnusableTargets(target: String, problem: String) {
        #expect(throws: DialPlanError.invalidTarget(target, problem: problem)) { try TargetTemplate(target) }
    }
}
