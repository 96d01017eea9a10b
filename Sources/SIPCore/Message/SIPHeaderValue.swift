/// Checks on header values that come from outside the SIP stack — a worker's decision, a command — before they
/// are written into a message we send.
///
/// ```swift
/// for (name, value) in decision.headers {
///     try SIPHeaderValue.validate(value)
///     request.headers.add(name, value)
/// }
/// ```
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

    /// Refuses a value the parser would refuse in a received message: a CR or LF would end the field early and
    /// let the value add header lines of its own (header injection); NUL and the other controls but HTAB are
    /// not SIP text (RFC 3261 §25.1). The first offending byte is reported, by its UTF-8 offset.
    public static func validate(_ value: String) throws(ValidationError) {
        for (offset, byte) in value.utf8.enumerated() where Grammar.isForbiddenControl(byte) {
            throw .controlCharacter(byte, offset: offset)
        }
    }
}
