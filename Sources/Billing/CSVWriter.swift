/// Writes CSV (RFC 4180: CRLF line ends; a field with a comma, a quote, CR or LF in quotes, its
/// quotes doubled) that is safe to open in a spreadsheet: a text field that a spreadsheet would read
/// as a formula (`=`, `+`, `-`, `@`, TAB or CR first) gets a leading `'`, as OWASP advises, so a
/// caller name such as `=HYPERLINK(...)` stays text.
///
/// ```swift
/// var csv = CSVWriter()
/// csv.append([.text("caller"), .text("charge")])
/// csv.append([.text("=1+1"), .number("0.012000")])
/// csv.text   // "caller,charge\r\n'=1+1,0.012000\r\n"
/// ```
public struct CSVWriter: Sendable {
    /// One cell: `text` is neutralised and quoted as needed; `number` is for values this program
    /// formatted itself (digits, a sign, a point), written as they are so spreadsheets sum them.
    public enum Field: Equatable, Sendable {
        case text(String)
        case number(String)
        case empty
    }

    public private(set) var text = ""

    public init() {}

    public mutating func append(_ fields: [Field]) {
        text += fields.map(Self.encode).joined(separator: ",")
        text += "\r\n"
    }

    static func encode(_ field: Field) -> String {
        switch field {
        case .empty:
            return ""
        case .number(let value):
            return value
        case .text(var value):
            if let first = value.unicodeScalars.first, Self.formulaStarts.contains(first) { value = "'" + value }
            guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) else { return value }
            return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
    }

    private static let formulaStarts: Set<Unicode.Scalar> = ["=", "+", "-", "@", "\t", "\r"]
}
