import SIPCore
import Testing

/// Bodies as SIP-I trunks and lenient peers write them, and as attackers do.
@Suite struct MessageBodyTests {
    static let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

    /// RFC 3204 §4's example shape: SDP, then ISUP with its version and disposition.
    static func sipI(isupHandling: String = "optional", lineEnd: String = "\r\n") -> String {
        ["preamble, ignored", "--unique-boundary-1", "Content-Type: application/sdp", "",
         sdp.replacingLineEnds(with: lineEnd),
         "--unique-boundary-1", "Content-Type: application/ISUP; version=itu-t92+; base=itu-t92+",
         "Content-Disposition: signal; handling=\(isupHandling)", "", "\u{1}\u{0}\u{49}\u{0}\u{0}\u{3}",
         "--unique-boundary-1--", "epilogue"].joined(separator: lineEnd)
    }

    static func session(_ body: String, _ contentType: String?) throws(MessageBody.ParseError) -> MessageBody.Session {
        try MessageBody.session(of: Array(body.utf8), contentType: contentType)
    }

    @Test func aSIPIBodyOffersItsSDPPart() throws {
        let session = try Self.session(Self.sipI(), "multipart/mixed;boundary=unique-boundary-1")
        #expect(session == .sdp(Array(Self.sdp.utf8)))
    }

    @Test func aQuotedBoundaryAndLFOnlyLinesAreRead() throws {
        let session = try Self.session(Self.sipI(lineEnd: "\n"), "Multipart/Mixed ; boundary=\"unique-boundary-1\"")
        #expect(session == .sdp(Array(Self.sdp.replacingLineEnds(with: "\n").utf8)))
    }

    @Test func aRequiredPartTheBridgeCannotUnderstandIsNamed() throws {
        let session = try Self.session(Self.sipI(isupHandling: "required"), "multipart/mixed;boundary=unique-boundary-1")
        #expect(session == .otherwise("application/isup"))
    }

    @Test func onlyOptionalPartsAndNoSDPIsNoOffer() throws {
        let body = "--b\r\nContent-Type: application/isup\r\nContent-Disposition: signal;handling=optional\r\n\r\nxx\r\n--b--\r\n"
        #expect(try Self.session(body, "multipart/mixed; boundary=b") == .none)
    }

    @Test func plainBodies() throws {
        #expect(try Self.session("", "application/sdp") == .none)
        #expect(try Self.session("", nil) == .none)
        #expect(try Self.session(Self.sdp, "application/SDP; charset=utf-8") == .sdp(Array(Self.sdp.utf8)))
        #expect(try Self.session("Signal=5\r\nDuration=160\r\n", "application/dtmf-relay") == .otherwise("application/dtmf-relay"))
    }

    @Test func aPartWithoutContentTypeIsTextPlain() throws {
        let parts = try MessageBody.parts(of: Array("--b\r\n\r\nhello\r\n--b--".utf8), type: MediaType(parsing: "multipart/mixed;boundary=b")!)
        #expect(parts.map(\.mediaType) == ["text/plain"])
        #expect(parts.first?.content == Array("hello".utf8))
    }

    @Test func aLineThatOnlyStartsWithTheBoundaryIsContent() throws {
        let parts = try MessageBody.parts(of: Array("--b\r\n\r\nx\r\n--bx\r\n--b--".utf8), type: MediaType(parsing: "multipart/mixed;boundary=b")!)
        #expect(parts.map(\.content) == [Array("x\r\n--bx".utf8)])
    }

    @Test(arguments: [
        ("--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n", String?("multipart/mixed;boundary=b"), MessageBody.ParseError.closeDelimiterMissing),
        ("no boundary line at all", "multipart/mixed;boundary=b", .delimiterMissing),
        ("--b\r\n\r\nx\r\n--b--", "multipart/mixed", .boundaryMissing),
        ("--b\r\n\r\nx\r\n--b--", "multipart/mixed;boundary=\"\"", .boundaryMissing),
        ("--b\r\nnot a header\r\n\r\nx\r\n--b--", "multipart/mixed;boundary=b", .partHeaderMalformed(part: 1)),
        ("--b\r\n\r\nx\r\n--b\r\nbad\r\n\r\ny\r\n--b--", "multipart/mixed;boundary=b", .partHeaderMalformed(part: 2)),
        ("x", nil, .contentTypeMissing),
        ("x", "sdp", .contentTypeMalformed),
    ])
    func malformedBodiesAreRefusedByName(_ body: String, _ contentType: String?, _ expected: MessageBody.ParseError) {
        #expect(throws: expected) { try Self.session(body, contentType) }
    }

    @Test func aBodyOfManyPartsIsRefused() {
        let body = String(repeating: "--b\r\n\r\nx\r\n", count: MessageBody.partLimit + 1) + "--b--"
        #expect(throws: MessageBody.ParseError.tooManyParts(limit: MessageBody.partLimit)) {
            try Self.session(body, "multipart/mixed;boundary=b")
        }
    }

    @Test func theErrorsNameTheProblem() {
        #expect("\(MessageBody.ParseError.partHeaderMalformed(part: 2))" == "multipart part 2 has a malformed header line")
    }
}

private extension String {
    func replacingLineEnds(with lineEnd: String) -> String {
        split(separator: "\r\n", omittingEmptySubsequences: false).joined(separator: lineEnd)
    }
}
