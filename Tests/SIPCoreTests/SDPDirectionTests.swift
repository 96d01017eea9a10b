import SIPCore
import Testing

private func sdp(_ lines: [String], end: String = "\r\n") -> [UInt8] {
    Array(lines.map { $0 + end }.joined().utf8)
}

/// An offer with a session-level direction and a media-level one that overrides it for audio.
private let offer = sdp([
    "v=0",
    "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com",
    "s=",
    "c=IN IP4 host.atlanta.example.com",
    "t=0 0",
    "a=sendrecv",
    "m=audio 49170 RTP/AVP 0 8 97",
    "a=rtpmap:0 PCMU/8000",
    "a=recvonly",
    "m=video 51372 RTP/AVP 31",
    "a=rtpmap:31 H261/90000",
])

@Suite("SDP direction")
struct SDPDirectionTests {
    @Test func holdPutsSendonlyOnEveryMediaSectionAndBumpsTheVersion() {
        #expect(SDPDirection.sendonly.applied(to: offer) == sdp([
            "v=0",
            "o=alice 2890844526 2890844527 IN IP4 host.atlanta.example.com",
            "s=",
            "c=IN IP4 host.atlanta.example.com",
            "t=0 0",
            "m=audio 49170 RTP/AVP 0 8 97",
            "a=rtpmap:0 PCMU/8000",
            "a=sendonly",
            "m=video 51372 RTP/AVP 31",
            "a=rtpmap:31 H261/90000",
            "a=sendonly",
        ]))
    }

    @Test func everyDirectionReadsBackAndEachRewriteBumpsAgain() {
        var body = offer
        for (step, direction) in [SDPDirection.sendonly, .inactive, .sendrecv, .recvonly].enumerated() {
            body = direction.applied(to: body)
            #expect(SDPDirection.direction(of: body) == direction)
            let origin = "o=alice 2890844526 \(2890844527 + step) IN IP4 host.atlanta.example.com\r\n"
            #expect(String(decoding: body, as: UTF8.self).contains(origin))
        }
    }

    @Test func directionOfTheFirstMediaSectionFallsBackToSessionThenSendrecv() {
        #expect(SDPDirection.direction(of: offer) == .recvonly)
        let sessionOnly = sdp(["v=0", "a=inactive", "m=audio 49170 RTP/AVP 0", "m=video 51372 RTP/AVP 31", "a=sendonly"])
        #expect(SDPDirection.direction(of: sessionOnly) == .inactive)
        let secondOnly = sdp(["v=0", "m=audio 49170 RTP/AVP 0", "m=video 51372 RTP/AVP 31", "a=sendonly"])
        #expect(SDPDirection.direction(of: secondOnly) == .sendrecv)
        #expect(SDPDirection.direction(of: []) == .sendrecv)
    }

    @Test func bareLFUnterminatedLastLineAndForeignBytesSurvive() {
        var body = sdp(["v=0", "o=- 1 x IN IP4 192.0.2.1", "s=Caf"], end: "\n")
        body.removeLast()
        body += [0xE9] + Array("\nm=audio 4000 RTP/AVP 0\na=sendrecv".utf8)
        let held = SDPDirection.inactive.applied(to: body)
        let expected = Array("v=0\no=- 1 x IN IP4 192.0.2.1\ns=Caf".utf8) + [0xE9]
            + Array("\nm=audio 4000 RTP/AVP 0\na=inactive\n".utf8)
        #expect(held == expected)
    }

    @Test func withoutMediaTheAttributeGoesAtSessionLevel() {
        let body = sdp(["v=0", "o=- 1 7 IN IP4 192.0.2.1", "s=-", "a=sendonly"])
        #expect(SDPDirection.sendrecv.applied(to: body) == sdp(["v=0", "o=- 1 8 IN IP4 192.0.2.1", "s=-", "a=sendrecv"]))
    }
}
