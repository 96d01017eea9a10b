import SIPCore
import Testing

@Suite("Message model")
struct MessageTests {
    @Test func headersMapCompactFormsCaseInsensitively() {
        var headers: SIPHeaders = [("v", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b"), ("VIA", "SIP/2.0/TCP c"), ("i", "abc")]
        #expect(headers["call-id"] == "abc")
        #expect(headers["Via"] == "SIP/2.0/UDP a;branch=z9hG4bK1")
        #expect(headers.values("via") == ["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/UDP b", "SIP/2.0/TCP c"])
        headers.set("Call-ID", "xyz")
        #expect(headers[2] == SIPHeader(name: "i", value: "xyz"))
        headers.set("Via", "SIP/2.0/UDP only")
        #expect(headers.count == 2)
        #expect(headers.values("v") == ["SIP/2.0/UDP only"])
        headers.remove("CALL-ID")
        #expect(headers["i"] == nil)
        headers.add("Max-Forwards", "70")
        #expect(headers.map(\.name) == ["v", "Max-Forwards"])
    }

    @Test func valuesDoNotSplitFieldsWhoseValuesContainCommas() {
        let headers: SIPHeaders = [
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("WWW-Authenticate", #"Digest realm="a", nonce="b""#),
            ("Contact", #""Doe, John" <sip:j@a>;q=0.5, <sip:k@b>"#),
            ("X-Custom", "a, b"),
        ]
        #expect(headers.values("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"])
        #expect(headers.values("WWW-Authenticate").count == 1)
        #expect(headers.values("m") == [#""Doe, John" <sip:j@a>;q=0.5"#, "<sip:k@b>"])
        #expect(headers.values("X-Custom") == ["a, b"])
    }

    @Test func sipURIParsesEveryPart() throws {
        let uri = try #require(SIPURI("sips:alice:secret@[2001:db8::1]:5071;transport=TCP;lr;maddr=239.1.1.1?subject=hi&priority=urgent"))
        #expect(uri.scheme == "sips")
        #expect(uri.user == "alice")
        #expect(uri.password == "secret")
        #expect(uri.host == "[2001:db8::1]")
        #expect(uri.port == 5071)
        #expect(uri.transport == "tcp")
        #expect(uri.isLooseRouter)
        #expect(uri.parameters.value(for: "maddr") == "239.1.1.1")
        #expect(uri.headers == [SIPParameter("subject", "hi"), SIPParameter("priority", "urgent")])
        #expect(uri.description == "sips:alice:secret@[2001:db8::1]:5071;transport=TCP;lr;maddr=239.1.1.1?subject=hi&priority=urgent")
    }

    @Test(arguments: ["sip:", "sip:user@", "sip:a b@host", "sip:host:99999", "sip:host:", "sip:[::1", "sip:host;;lr", "http:", "<sip:a@b>", "sip:a@b>"])
    func malformedURIsAreRejected(_ text: String) {
        #expect(SIPAnyURI(text) == nil)
    }

    @Test func otherSchemesAreKeptVerbatim() {
        #expect(SIPAnyURI("tel:+1-201-555-0123") == .other(scheme: "tel", raw: "tel:+1-201-555-0123"))
        #expect(SIPAnyURI("HTTP://example.com/x")?.scheme == "http")
        #expect(SIPAnyURI("SIP:bob@example.com")?.sipURI?.user == "bob")
    }

    @Test func nameAddressForms() throws {
        let quoted = try #require(NameAddress(#""Alice \"A\" Smith" <sip:alice@example.com;transport=udp>;tag=88;expires=60"#))
        #expect(quoted.displayName == #"Alice "A" Smith"#)
        #expect(quoted.uri.sipURI?.transport == "udp")
        #expect(quoted.tag == "88")
        #expect(quoted.parameters.value(for: "expires") == "60")
        let bare = try #require(NameAddress("sip:bob@example.com;tag=x1"))
        #expect(bare.displayName == nil)
        #expect(bare.tag == "x1")
        #expect(bare.uri.sipURI?.parameters.isEmpty == true)
        let tokens = try #require(NameAddress("Bob Smith <sip:bob@example.com>"))
        #expect(tokens.displayName == "Bob Smith")
        #expect(NameAddress(#""Unterminated <sip:a@b>"#) == nil)
        #expect(NameAddress("sip:a@b?subject=x") == nil)
        #expect(NameAddress("<sip:a@b>;tag") != nil)
        #expect(NameAddress("<sip:a@b>;=x") == nil)
        var serialized = quoted
        serialized.tag = "99"
        #expect(serialized.description == #""Alice \"A\" Smith" <sip:alice@example.com;transport=udp>;tag=99;expires=60"#)
    }

    @Test func viaParsesParametersAndRport() throws {
        var via = try #require(Via("SIP / 2.0 / UDP [2001:db8::9] : 5062 ; branch = z9hG4bKabc ; rport ; ttl=16 ; maddr=224.2.0.1"))
        #expect(via.transport == "UDP")
        #expect(via.host == "[2001:db8::9]")
        #expect(via.port == 5062)
        #expect(via.branch == "z9hG4bKabc")
        #expect(via.hasMagicCookie)
        #expect(via.rport == .requested)
        #expect(via.ttl == 16)
        #expect(via.maddr == "224.2.0.1")
        via.received = "198.51.100.1"
        via.rport = .port(40000)
        #expect(via.description == "SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bKabc;rport=40000;ttl=16;maddr=224.2.0.1;received=198.51.100.1")
        #expect(Via("SIP/2.0/UDP host;branch=1;;") == nil)
        #expect(Via("SIP/2.0 host") == nil)
        #expect(Via.magicCookie == "z9hG4bK")
    }

    @Test func cseqRejectsOverflowAndMissingMethod() {
        #expect(CSeq("4294967295 INVITE") == CSeq(sequence: .max, method: .invite))
        #expect(CSeq("4294967296 INVITE") == nil)
        #expect(CSeq("36893488147419103232 REGISTER") == nil)
        #expect(CSeq("12") == nil)
        #expect(CSeq("12INVITE") == nil)
        #expect(CSeq("1 INVITE extra") == nil)
    }

    @Test func methodsAreTokens() {
        #expect(SIPMethod(rawValue: "INVITE") == .invite)
        #expect(SIPMethod(rawValue: "invite") != .invite)
        #expect(SIPMethod(rawValue: "X-PING")?.rawValue == "X-PING")
        #expect(SIPMethod(rawValue: "BAD METHOD") == nil)
        #expect(SIPMethod(rawValue: "") == nil)
    }

    static let invite = SIPRequest(
        method: .invite, uri: .sip(SIPURI(user: "bob", host: "example.com")),
        headers: [
            ("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1"),
            ("Via", "SIP/2.0/UDP client.example.com:5060;branch=z9hG4bKc1;received=192.0.2.1"),
            ("Max-Forwards", "69"),
            ("To", "Bob <sip:bob@example.com>"),
            ("From", "Alice <sip:alice@example.com>;tag=1928301774"),
            ("Call-ID", "a84b4c76e66710"),
            ("CSeq", "314159 INVITE"),
            ("Contact", "<sip:alice@client.example.com>"),
            ("Content-Type", "application/sdp"),
        ],
        body: Array("v=0\r\n".utf8))

    @Test func responseCopiesTheFieldsOfSection8_2_6() {
        let response = SIPResponse(replyingTo: Self.invite, status: 180, toTag: "a6c85cf")
        #expect(response.reason == "Ringing")
        #expect(response.headers.map(\.name) == ["Via", "Via", "To", "From", "Call-ID", "CSeq"])
        #expect(response.to?.tag == "a6c85cf")
        #expect(response.vias.map(\.host) == ["proxy.example.com", "client.example.com"])
        #expect(response.cseq == CSeq(sequence: 314159, method: .invite))

        var tagged = Self.invite
        tagged.headers.set("To", "<sip:bob@example.com>;tag=existing")
        #expect(SIPResponse(replyingTo: tagged, status: 200, toTag: "new").to?.tag == "existing")
        #expect(SIPResponse(replyingTo: tagged, status: 486, reason: "Busy Now").reason == "Busy Now")
    }

    @Test func standardReasons() {
        #expect(SIPResponse.standardReason(for: 200) == "OK")
        #expect(SIPResponse.standardReason(for: 416) == "Unsupported URI Scheme")
        #expect(SIPResponse.standardReason(for: 505) == "Version Not Supported")
        #expect(SIPResponse.standardReason(for: 499) == "Client Error")
    }

    @Test func serializationSetsContentLengthAndRoundTrips() throws {
        var request = Self.invite
        request.headers.add("Content-Length", "999")
        let bytes = request.serialized()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\r\n"))
        #expect(text.hasSuffix("Content-Length: 5\r\n\r\nv=0\r\n"))
        guard case .request(let parsed) = try SIPParser().parse(bytes) else {
            Issue.record("not a request")
            return
        }
        #expect(parsed.method == request.method)
        #expect(parsed.uri == request.uri)
        #expect(parsed.body == request.body)
        #expect(parsed.contentLength == 5)
        #expect(parsed.callID == "a84b4c76e66710")
        #expect(parsed.maxForwards == 69)
        #expect(parsed.contentType == "application/sdp")
        #expect(parsed.contacts.map(\.uri.description) == ["sip:alice@client.example.com"])

        let response = SIPResponse(replyingTo: Self.invite, status: 200, toTag: "t")
        #expect(try SIPParser().parse(SIPMessage.response(response).serialized()) == .response(response.withContentLength))
    }
}

extension SIPResponse {
    fileprivate var withContentLength: SIPResponse {
        var copy = self
        copy.headers.set("Content-Length", String(body.count))
        return copy
    }
}
