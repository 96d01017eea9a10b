import Testing
@testable import Workers

@Suite struct DialStringTests {
    @Test(arguments: [
        ("12025550100", "12025550100"),
        ("+12025550100", "12025550100"),
        ("+1 (202) 555-0100", "12025550100"),
        ("1.202.555.0100", "12025550100"),
    ])
    func normalisesNumbers(text: String, digits: String) {
        #expect(DialString.digits(of: text) == digits)
    }

    @Test(arguments: ["alice", "", "+", "*69", "12#", "++1202", "１２０２"])
    func refusesWhatIsNotANumber(text: String) {
        #expect(DialString.digits(of: text) == nil)
    }
}
