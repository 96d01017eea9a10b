import SIPCore
import Testing

@Suite("Header values set by workers and commands")
struct SIPHeaderValueTests {
    @Test(arguments: ["", "plain text", "a\tb", "\"quoted\" <sip:x@example.com>;p=1", "caf\u{E9} \u{1F4DE}"])
    func textAndTabsAreAccepted(_ value: String) {
        #expect(throws: Never.self) { try SIPHeaderValue.validate(value) }
    }

    @Test(arguments: [
        ("a\r\nVia: SIP/2.0/UDP evil", UInt8(0x0D), 1),
        ("ab\nc", 0x0A, 2),
        ("\u{0}", 0x00, 0),
        ("x\u{7F}", 0x7F, 1),
        ("x\u{1B}[31m", 0x1B, 1),
        // The offset counts UTF-8 bytes: é is two.
        ("\u{E9}\r", 0x0D, 2),
    ])
    func controlsAreRefusedAtTheirPosition(_ value: String, _ byte: UInt8, _ offset: Int) {
        let error = #expect(throws: SIPHeaderValue.ValidationError.self) { try SIPHeaderValue.validate(value) }
        #expect(error == .controlCharacter(byte, offset: offset))
    }

    @Test func theErrorNamesTheCharacter() {
        #expect("\(SIPHeaderValue.ValidationError.controlCharacter(0x0D, offset: 5))" == "control character 0x0D (CR) at byte 5")
        #expect("\(SIPHeaderValue.ValidationError.controlCharacter(0x1B, offset: 0))" == "control character 0x1B at byte 0")
    }
}
