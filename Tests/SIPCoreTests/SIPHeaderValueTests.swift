import SIPCore
import Testing

@Suite("Control characters in header values")
struct SIPHeaderValueTests {
    @Test func theErrorNamesTheCharacter() {
        #expect("\(SIPHeaderValue.ValidationError.controlCharacter(0x0D, offset: 5))" == "control character 0x0D (CR) at byte 5")
        #expect("\(SIPHeaderValue.ValidationError.controlCharacter(0x1B, offset: 0))" == "control character 0x1B at byte 0")
    }
}
