import Foundation
import Testing
@testable import BusSchema

@Suite struct JSONReaderTests {
    @Test func readsWhatTheWriterWrites() throws {
        var writer = JSONWriter()
        writer.openObject()
        writer.member("text", JSONWriterTests.tricky)
        writer.member("int", Int.min)
        writer.key("big")
        writer.int(UInt64.max)
        writer.member("pi", 3.25)
        writer.member("yes", true)
        writer.key("list")
        writer.openArray()
        writer.element()
        writer.string("a")
        writer.element()
        writer.openObject()
        writer.closeObject()
        writer.closeArray()
        writer.closeObject()
        let value = try JSONReader.parse(writer.bytes)
        #expect(value == .object([
            "text": .string(JSONWriterTests.tricky), "int": .number(String(Int.min)), "big": .number(String(UInt64.max)),
            "pi": .number("3.25"), "yes": .bool(true), "list": .array([.string("a"), .object([:])]),
        ]))
    }

    @Test func decodesEveryEscapeIncludingSurrogatePairs() throws {
        let text = #"["\"\\\/\b\f\n\r\t\u00e9\u6f22\ud83c\udf89"]"#
        #expect(try JSONReader.parse(Array(text.utf8)) == .array([.string("\"\\/\u{8}\u{c}\n\r\té漢🎉")]))
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "\"unterminated", "\"bad \\x escape\"", "\"\\ud83c alone\"",
        "01x", "-", "1.", "1e", "tru", "nul", "{} trailing", "\"raw\u{01}control\"", "{'single':1}",
    ])
    func rejectsMalformedJSON(text: String) {
        #expect(throws: JSONReader.SyntaxError.self) { try JSONReader.parse(Array(text.utf8)) }
    }

    @Test func boundsNestingDepth() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONReader.SyntaxError.self) { try JSONReader.parse(Array(deep.utf8)) }
        let fine = String(repeating: "[", count: 20) + String(repeating: "]", count: 20)
        #expect((try? JSONReader.parse(Array(fine.utf8))) != nil)
    }

    @Test func fieldErrorsNameThePath() {
        let frame = #"{"v":1,"type":"decision","request_id":"r","decision":{"action":"redirect","targets":[{"uri":5}]}}"#
        do {
            _ = try WorkerMessage.decode(Array(frame.utf8))
            Issue.record("decoded a target whose uri is a number")
        } catch {
            #expect(error.code == .badMessage)
            #expect(error.message == "invalid decision: decision.targets[0].uri must be a string")
        }
    }
}
