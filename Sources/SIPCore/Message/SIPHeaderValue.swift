/// What may not appear in a header value: a CR or LF would end the field early and let the value add header
/// lines of its own (header injection); NUL and the other controls but HTAB are not SIP text (RFC 3261 §25.1).
/// The parser refuses such a message naming the byte; values from the bus are refused by BusSchema before they
/// reach SIP.
public enum SIPHeaderValue {
    /// Why a value cannot be a header value.
    public enum ValidationError: Error, Sendable, Hashable, CustomStringConvertible {
        /// The value holds a control byte (CR, LF, NUL, any other 0x00-0x1F but HTAB, or DEL) at a UTF-8 offset.
        case controlCharacter(UInt8, offset: Int)

        /// `control character 0x0D (CR) at byte 5`.
        public var description: String {
            switch self {
            case .controlCharacter(let byte, let offset):
                let names: [UInt8: String] = [0x00: " (NUL)", 0x0A: " (LF)", 0x0D: " (CR)", 0x7F: " (DEL)"]
                let hex = String(byte, radix: 16, uppercase: true)
                return "control character 0x\(byte < 0x10 ? "0" : "")\(hex)\(names[byte] ?? "") at byte \(offset)"
            }
        }
    }
}
