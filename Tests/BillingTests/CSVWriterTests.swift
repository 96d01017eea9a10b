import Billing
import Testing

/// RFC 4180 quoting and spreadsheet formula neutralising.
@Suite struct CSVWriterTests {
    func line(_ fields: [CSVWriter.Field]) -> String {
        var csv = CSVWriter()
        csv.append(fields)
        return csv.text
    }

    @Test func plainFieldsAreWrittenAsTheyAreWithCRLF() {
        #expect(line([.text("alice"), .text("12025550100"), .number("0.012000"), .empty]) == "alice,12025550100,0.012000,\r\n")
    }

    @Test func commasQuotesAndLineBreaksAreQuoted() {
        #expect(line([.text("Smith, John")]) == "\"Smith, John\"\r\n")
        #expect(line([.text(#"say "hi""#)]) == "\"say \"\"hi\"\"\"\r\n")
        #expect(line([.text("two\nlines")]) == "\"two\nlines\"\r\n")
        #expect(line([.text("a\r\nb")]) == "\"a\r\nb\"\r\n")
    }

    @Test(arguments: ["=HYPERLINK(\"http://x\")", "+12025550100", "-1+1", "@SUM(A1)", "\tcmd", "\rcmd"])
    func formulaStartsBecomeText(value: String) {
        let written = line([.text(value)])
        #expect(written.hasPrefix("'") || written.hasPrefix("\"'"))
        #expect(written.contains("'" + value.prefix(1)))
    }

    @Test func aFormulaWithACommaIsNeutralisedAndQuoted() {
        #expect(line([.text("=1+2,3")]) == "\"'=1+2,3\"\r\n")
        #expect(line([.text(#"=cmd|' /C calc'!A0"#)]) == #"'=cmd|' /C calc'!A0"# + "\r\n")
    }

    @Test func numbersAreNotTouched() {
        #expect(line([.number("-1")]) == "-1\r\n")
    }
}
