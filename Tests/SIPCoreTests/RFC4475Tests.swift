import Foundation
import SIPCore
import Testing

/// The RFC 4475 torture messages, byte-exact, in the project's `Tests/Fixtures/rfc4475`.
private let corpus = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // SIPCoreTests
    .deletingLastPathComponent()  // Tests
    .appendingPathComponent("Fixtures/rfc4475")

private func load(_ folder: String, _ name: String) throws -> [UInt8] {
    Array(try Data(contentsOf: corpus.appendingPathComponent("\(folder)/\(name).dat")))
}

private func files(in folder: String) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: corpus.appendingPathComponent(folder).path)) ?? []
    return names.filter { $0.hasSuffix(".dat") }.map { String($0.dropLast(4)) }.sorted()
}

private let endpointExtensions: Set<String> = ["100rel", "timer", "replaces"]
private let endpointContentTypes: Set<String> = ["application/sdp"]

private func validate(_ request: SIPRequest) -> Int? {
    validateForEndpoint(request, supportedExtensions: endpointExtensions, supportedContentTypes: endpointContentTypes)?.status
}

@Suite("RFC 4475 torture messages")
struct RFC4475Tests {
    @Test func corpusIsComplete() {
        #expect(files(in: "valid").count == 13)
        #expect(files(in: "invalid").count == 19)
        #expect(files(in: "semantic").count == 17)
        #expect(Set(files(in: "invalid")) == Set(Self.invalidExpectations.keys))
        #expect(Set(files(in: "semantic")) == Set(Self.semanticExpectations.keys))
    }

    // MARK: §3.1.1 valid messages

    @Test(arguments: files(in: "valid"))
    func validMessageParsesAndRoundTrips(_ name: String) throws {
        let message = try SIPParser().parse(try load("valid", name))
        let reparsed = try SIPParser().parse(message.serialized())
        switch (message, reparsed) {
        case (.request(let original), .request(let again)):
            #expect(original.method == again.method)
            #expect(original.uri == again.uri)
            #expect(original.headers == again.headers)
            #expect(original.body == again.body)
            #expect(validate(original) == Self.validEndpointStatus[name, default: nil], "\(name)")
        case (.response(let original), .response(let again)):
            // §3.1.1.12 unreason and §3.1.1.13 noreason are responses.
            #expect(["unreason", "noreason"].contains(name))
            #expect(original == again)
        default:
            Issue.record("\(name) changed kind on round trip")
        }
    }

    /// Valid requests an endpoint supporting only SDP still refuses; the others pass `validateForEndpoint`.
    static let validEndpointStatus: [String: Int?] = [
        "mpart01": 415  // §3.1.1.11 multipart/mixed body
    ]

    @Test func wsinvTortuousInvite() throws {
        // §3.1.1.1: folding, LWS everywhere, compact forms, escaped quotes in display names.
        guard case .request(let request) = try SIPParser().parse(try load("valid", "wsinv")) else {
            Issue.record("not a request")
            return
        }
        #expect(request.method == .invite)
        #expect(request.to?.tag == "1918181833n")
        #expect(request.from?.displayName == #"J Rosenberg \""#)
        #expect(request.from?.tag == "98asjd8")
        #expect(request.maxForwards == 68)
        #expect(request.cseq == CSeq(sequence: 9, method: .invite))
        #expect(request.vias.map(\.host) == ["192.0.2.2", "spindle.example.com", "192.168.255.111"])
        #expect(request.vias.map(\.transport) == ["UDP", "TCP", "UDP"])
        #expect(request.vias[2].branch == "z9hG4bK30239")
        #expect(request.headers["NewFangledHeader"] == "newfangled value continued newfangled value")
        #expect(request.headers["Subject"] == "")
        #expect(request.contacts.first?.displayName == #"Quoted string """#)
        #expect(request.contacts.first?.parameters.value(for: "q") == "0.33")
        #expect(request.body.count == 150)
    }

    @Test func intmethUnusualCharacters() throws {
        // §3.1.1.2: token characters in method, unusual user and password, NUL in a quoted display name.
        guard case .request(let request) = try SIPParser().parse(try load("valid", "intmeth")) else {
            Issue.record("not a request")
            return
        }
        #expect(request.method.rawValue == "!interesting-Method0123456789_*+`.%indeed'~")
        #expect(request.cseq?.method == request.method)
        let uri = try #require(request.uri.sipURI)
        #expect(uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        #expect(uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        #expect(request.to?.displayName == "BEL:\u{07} NUL:\u{00} DEL:\u{7F}")
        #expect(request.from?.tag == "_token~1'+`*%!-.")
    }

    @Test func escapedURIsKeepTheirEscapes() throws {
        // §3.1.1.3 esc01 and §3.1.1.4 escnull.
        guard case .request(let request) = try SIPParser().parse(try load("valid", "esc01")) else {
            Issue.record("not a request")
            return
        }
        #expect(request.uri.sipURI?.user == "sips%3Auser%40example.com")
        #expect(request.uri.sipURI?.unescapedUser == "sips:user@example.com")
        #expect(request.to?.uri.sipURI?.unescapedUser == "user")
        #expect(request.from?.uri.sipURI?.unescapedUser == "I have spaces")
        guard case .request(let null) = try SIPParser().parse(try load("valid", "escnull")) else {
            Issue.record("not a request")
            return
        }
        #expect(null.contacts.map { $0.uri.sipURI?.unescapedUser } == ["\u{00}", "\u{00}\u{00}"])
    }

    @Test func dblreqKeepsOnlyTheFirstRequest() throws {
        // §3.1.1.8: Content-Length 0 ends the REGISTER; the INVITE after it is not part of the datagram's message.
        guard case .request(let request) = try SIPParser().parse(try load("valid", "dblreq")) else {
            Issue.record("not a request")
            return
        }
        #expect(request.method == .register)
        #expect(request.body.isEmpty)
        #expect(request.callID == "dblreq.0ha0isndaksdj99sdfafnl3lk233412")
    }

    @Test func semiuriUserWithSemicolon() throws {
        // §3.1.1.9: the `;par=` belongs to the user part, not to the URI parameters.
        guard case .request(let request) = try SIPParser().parse(try load("valid", "semiuri")) else {
            Issue.record("not a request")
            return
        }
        #expect(request.uri.sipURI?.user == "user;par=u%40example.net")
        #expect(request.uri.sipURI?.host == "example.com")
        #expect(request.uri.sipURI?.parameters.isEmpty == true)
        #expect(request.headers.values("Accept").count == 6)
    }

    @Test func esc02ExtensionHeaderNamedLikeContact() throws {
        // §3.1.1.5: `C%6Fntact` is an extension header, not Contact; the method contains `%`.
        guard case .request(let request) = try SIPParser().parse(try load("valid", "esc02")) else {
            Issue.record("not a request")
            return
        }
        #expect(request.method.rawValue == "RE%47IST%45R")
        #expect(request.contacts.count == 2)
        #expect(request.from?.displayName == "%Z%45")
    }

    // MARK: §3.1.2 invalid messages

    enum Outcome: Sendable, Equatable {
        /// The parser throws this kind of error, answered with this status.
        case parseError(Int, SIPParseError.Kind)
        /// The message parses (the defect is semantic) and `validateForEndpoint` answers this status.
        case endpointRefuses(Int)
    }

    /// Per file: what RFC 4475 §3.1.2 says, and whether our parser or the endpoint checks catch it.
    static let invalidExpectations: [String: Outcome] = [
        "badinv01": .parseError(400, .badHeader),  // §3.1.2.1 empty Via and Contact parameters `;;,;,,`
        "clerr": .parseError(400, .truncatedBody),  // §3.1.2.2 Content-Length larger than the message
        "ncl": .parseError(400, .badContentLength),  // §3.1.2.3 negative Content-Length
        "scalar02": .parseError(400, .badHeader),  // §3.1.2.4 CSeq beyond 2^32-1
        "scalarlg": .parseError(400, .badHeader),  // §3.1.2.5 response with CSeq beyond 2^32-1: discarded, no answer
        "quotbal": .parseError(400, .badHeader),  // §3.1.2.6 unterminated quoted display name
        "ltgtruri": .parseError(400, .badURI),  // §3.1.2.7 Request-URI in <>
        "lwsruri": .parseError(400, .badStartLine),  // §3.1.2.8 LWS inside the Request-URI
        "lwsstart": .parseError(400, .badStartLine),  // §3.1.2.9 several SP between Request-Line elements
        "trws": .parseError(400, .badStartLine),  // §3.1.2.10 SP after the SIP version
        "escruri": .endpointRefuses(400),  // §3.1.2.11 headers in the Request-URI: "acceptable to reject"
        "baddate": .endpointRefuses(400),  // §3.1.2.12 non-GMT Date: syntax of a field the parser does not own
        "regbadct": .parseError(400, .badHeader),  // §3.1.2.13 Contact URI with `?` outside <>
        "badaspec": .parseError(400, .badHeader),  // §3.1.2.14 spaces inside <addr-spec>
        // §3.1.2.15 unquoted display name with non-token characters; the file also lacks the empty line ending
        // the headers (see baddnIsRefusedForItsDisplayName)
        "baddn": .parseError(400, .unterminatedHeaders),
        "badvers": .parseError(505, .badVersion),  // §3.1.2.16 SIP/7.0
        "mismatch01": .endpointRefuses(400),  // §3.1.2.17 CSeq method differs from the Request-Line method
        "mismatch02": .endpointRefuses(400),  // §3.1.2.18 unknown method, CSeq mismatch (400 acceptable, 501 preferred)
        "bigcode": .parseError(400, .badStartLine),  // §3.1.2.19 response code 4294967301: discarded, no answer
    ]

    @Test(arguments: files(in: "invalid"))
    func invalidMessageIsRefused(_ name: String) throws {
        let bytes = try load("invalid", name)
        let expected = try #require(Self.invalidExpectations[name])
        switch expected {
        case .parseError(let status, let kind):
            let error = try #require(throws: SIPParseError.self) { try SIPParser().parse(bytes) }
            #expect(error.status == status, "\(name): \(error)")
            #expect(error.kind == kind, "\(name): \(error)")
            let isResponse = bytes.starts(with: Array("SIP/".utf8))
            if isResponse {
                #expect(error.errorResponse() == nil, "\(name): a response is never answered")
            } else {
                // Every broken request still carries Via/From/To/Call-ID/CSeq lines to copy into the answer.
                let response = try #require(error.errorResponse(), "\(name)")
                #expect(response.status == status)
                #expect(response.headers.contains("Via") && response.headers.contains("Call-ID"))
                #expect(response.serialized().starts(with: Array("SIP/2.0 \(status) ".utf8)))
            }
        case .endpointRefuses(let status):
            guard case .request(let request) = try SIPParser().parse(bytes) else {
                Issue.record("\(name) is not a request")
                return
            }
            #expect(validate(request) == status, "\(name)")
        }
    }

    @Test func baddnIsRefusedForItsDisplayName() throws {
        let terminated = try load("invalid", "baddn") + Array("\r\n".utf8)
        let error = try #require(throws: SIPParseError.self) { try SIPParser().parse(terminated) }
        #expect(error.kind == .badHeader)
        #expect(error.reason.hasPrefix("malformed From header"))
        #expect(error.errorResponse()?.status == 400)
    }

    // MARK: §3.2-3.4 semantic messages, for an endpoint (a B2BUA)

    /// nil: the endpoint accepts the message and processes it.
    static let semanticExpectations: [String: Int?] = [
        "badbranch": nil,  // §3.2.1 branch is exactly the magic cookie: still an RFC 3261 branch
        "insuf": 400,  // §3.3.1 To, From, Call-ID, Max-Forwards missing
        "unkscm": 416,  // §3.3.2 unknown Request-URI scheme
        "novelsc": 416,  // §3.3.3 known but atypical scheme (soap.beep) the endpoint does not support
        "unksm2": nil,  // §3.3.4 unknown schemes in To/From/Contact: acceptable to an endpoint (a registrar would 400)
        "bext01": 420,  // §3.3.5 Require options nobody supports (Proxy-Require is for proxies)
        "invut": 415,  // §3.3.6 unknown Content-Type with a body
        "regaut01": nil,  // §3.3.7 unknown Authorization scheme: the registrar's 401 challenge, not a parse matter
        "multi01": 400,  // §3.3.8 several To, From, Call-ID, CSeq, Max-Forwards
        "mcl01": 400,  // §3.3.9 two Content-Length values
        "bcast": nil,  // §3.3.10 a response; a UAC just parses it
        "zeromf": nil,  // §3.3.11 Max-Forwards 0: an endpoint processes it (a proxy would 483)
        "cparam01": nil,  // §3.3.12 unknown Contact header parameter
        "cparam02": nil,  // §3.3.13 unknown URI parameter in Contact
        "regescrt": nil,  // §3.3.14 escaped headers in a bracketed Contact URI
        "sdp01": nil,  // §3.3.15 Accept without SDP: a 406 depends on the answer body, the TU's call
        "inv2543": nil,  // §3.4.1 RFC 2543 INVITE: no branch, no Max-Forwards, no From tag
    ]

    @Test(arguments: files(in: "semantic"))
    func semanticMessageGetsTheEndpointAnswer(_ name: String) throws {
        let message = try SIPParser().parse(try load("semantic", name))
        let expected = try #require(Self.semanticExpectations[name])
        switch message {
        case .request(let request):
            let refusal = validateForEndpoint(
                request, supportedExtensions: endpointExtensions, supportedContentTypes: endpointContentTypes)
            #expect(refusal?.status == expected, "\(name): \(String(describing: refusal))")
        case .response:
            #expect(name == "bcast")
            #expect(expected == nil)
        }
    }

    @Test func bext01ListsTheUnsupportedOptions() throws {
        guard case .request(let request) = try SIPParser().parse(try load("semantic", "bext01")) else {
            Issue.record("not a request")
            return
        }
        let refusal = validateForEndpoint(request, supportedExtensions: [], supportedContentTypes: [])
        #expect(refusal?.headers == [SIPHeader(name: "Unsupported", value: "nothingSupportsThis, nothingSupportsThisEither")])
    }

    @Test func invutAdvertisesAccept() throws {
        guard case .request(let request) = try SIPParser().parse(try load("semantic", "invut")) else {
            Issue.record("not a request")
            return
        }
        let refusal = validateForEndpoint(request, supportedExtensions: [], supportedContentTypes: ["application/sdp"])
        #expect(refusal?.headers == [SIPHeader(name: "Accept", value: "application/sdp")])
    }

    @Test func unkscmKeepsTheUnknownURI() throws {
        guard case .request(let request) = try SIPParser().parse(try load("semantic", "unkscm")) else {
            Issue.record("not a request")
            return
        }
        #expect(request.uri == .other(scheme: "nobodyknowsthisscheme", raw: "nobodyKnowsThisScheme:totallyopaquecontent"))
    }

    @Test func cparamDistinguishesHeaderAndURIParameters() throws {
        guard case .request(let unbracketed) = try SIPParser().parse(try load("semantic", "cparam01")),
              case .request(let bracketed) = try SIPParser().parse(try load("semantic", "cparam02"))
        else {
            Issue.record("not requests")
            return
        }
        #expect(unbracketed.contacts.first?.parameters.contains(named: "unknownparam") == true)
        #expect(unbracketed.contacts.first?.uri.sipURI?.parameters.isEmpty == true)
        #expect(bracketed.contacts.first?.parameters.isEmpty == true)
        #expect(bracketed.contacts.first?.uri.sipURI?.parameters.contains(named: "unknownparam") == true)
    }
}

@Suite("Hostile input")
struct HostileInputTests {
    /// Every prefix of every torture message, and every message with one byte replaced by a delimiter, must parse
    /// or throw a typed error: a trap fails the whole run. A prefix that ends inside the header section must throw.
    @Test(arguments: ["valid", "invalid", "semantic"])
    func mutatedTortureMessagesNeverTrap(_ folder: String) throws {
        let parser = SIPParser()
        let replacements: [UInt8] = [0, UInt8(ascii: ":"), UInt8(ascii: " "), UInt8(ascii: "\r"), UInt8(ascii: "<"), UInt8(ascii: "\"")]
        for name in files(in: folder) {
            let original = try load(folder, name)
            // baddn.dat has no empty line after its headers, so all of it is one unterminated header section.
            let headerEnd = headerSectionEnd(original) ?? original.count
            let acceptedPrefixes = (0..<headerEnd).filter { (try? parser.parse(Array(original[..<$0]))) != nil }
            #expect(acceptedPrefixes.isEmpty, "\(name)")
            for cut in headerEnd...original.count {
                _ = try? parser.parse(Array(original[..<cut]))
            }
            for position in original.indices {
                var mutated = original
                mutated[position] = replacements[position % replacements.count]
                _ = try? parser.parse(mutated)
                var framer = SIPStreamFramer()
                framer.append(mutated)
                _ = try? framer.nextMessage()
            }
        }
    }

    private func headerSectionEnd(_ bytes: [UInt8]) -> Int? {
        let terminator = Array("\r\n\r\n".utf8)
        return bytes.indices.first { bytes[$0...].starts(with: terminator) }.map { $0 + terminator.count }
    }
}
