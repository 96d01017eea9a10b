import SIPCore
import Testing

private func sdp(_ origin: String, port: Int = 4000, extra: [String] = [], end: String = "\r\n") -> [UInt8] {
    let lines = ["v=0", "o=\(origin)", "s=-", "c=IN IP4 192.0.2.1", "t=0 0", "m=audio \(port) RTP/AVP 0"] + extra
    return Array(lines.map { $0 + end }.joined().utf8)
}

private func origin(of body: [UInt8]) -> String? {
    String(decoding: body, as: UTF8.self).split(separator: "\r\n").first { $0.hasPrefix("o=") }.map { String($0.dropFirst(2)) }
}

/// RFC 3264 §8: whoever wrote the bodies a B2BUA sends one peer, the peer sees one session.
@Suite("SDP origin")
struct SDPOriginTests {
    @Test func theFirstBodyGoesAsItCame() {
        var stamper = SDPOrigin()
        let first = sdp("bob 77 5 IN IP4 192.0.2.2")
        #expect(stamper.stamp(first, answer: true) == first)
    }

    @Test func anotherPartysBodyGoesUnderTheFirstOriginOneVersionHigher() {
        var stamper = SDPOrigin()
        _ = stamper.stamp(sdp("bob 77 5 IN IP4 192.0.2.2"), answer: true)
        let carol = stamper.stamp(sdp("carol 9 1 IN IP4 192.0.2.3", port: 6000), answer: false)
        #expect(origin(of: carol) == "bob 77 6 IN IP4 192.0.2.2")
        #expect(carol == sdp("bob 77 6 IN IP4 192.0.2.2", port: 6000))
        let dave = stamper.stamp(sdp("dave 1 900 IN IP4 192.0.2.4", port: 7000), answer: false)
        #expect(origin(of: dave) == "bob 77 7 IN IP4 192.0.2.2")
    }

    /// A refresh or a glare retry sends the same session again: same version (RFC 3264 §8, "unchanged").
    @Test func anUnchangedBodyKeepsTheVersionWhateverItsOwnOriginSays() {
        var stamper = SDPOrigin()
        _ = stamper.stamp(sdp("bob 77 5 IN IP4 192.0.2.2"), answer: true)
        _ = stamper.stamp(sdp("carol 9 1 IN IP4 192.0.2.3", port: 6000), answer: false)
        let again = stamper.stamp(sdp("carol 9 2 IN IP4 192.0.2.3", port: 6000), answer: false)
        #expect(origin(of: again) == "bob 77 6 IN IP4 192.0.2.2")
    }

    @Test func anAnswerNeverSaysActpassAnOfferMay() {
        var stamper = SDPOrigin()
        let offer = sdp("a 1 1 IN IP4 192.0.2.1", extra: ["a=setup:actpass", "a=fingerprint:sha-256 AB:CD"])
        #expect(stamper.stamp(offer, answer: false) == offer)
        var answering = SDPOrigin()
        #expect(answering.stamp(offer, answer: true) == sdp("a 1 1 IN IP4 192.0.2.1", extra: ["a=setup:active", "a=fingerprint:sha-256 AB:CD"]))
        let passive = sdp("a 1 1 IN IP4 192.0.2.1", extra: ["a=setup:passive"])
        #expect(answering.stamp(passive, answer: true) == sdp("a 1 2 IN IP4 192.0.2.1", extra: ["a=setup:passive"]))
    }

    @Test func lineEndsAreKept() {
        var stamper = SDPOrigin()
        _ = stamper.stamp(sdp("bob 77 5 IN IP4 192.0.2.2", end: "\n"), answer: false)
        #expect(stamper.stamp(sdp("carol 9 1 IN IP4 192.0.2.3", port: 6000, end: "\n"), answer: false)
            == sdp("bob 77 6 IN IP4 192.0.2.2", port: 6000, end: "\n"))
    }

    @Test func aBodyWithoutAWellFormedOriginKeepsItsOwn() {
        var stamper = SDPOrigin()
        let broken = sdp("bob seventy 5 IN IP4")
        #expect(stamper.stamp(broken, answer: false) == broken)
        let good = sdp("carol 9 1 IN IP4 192.0.2.3")
        #expect(stamper.stamp(good, answer: false) == good, "the first well-formed origin is the one kept")
        #expect(origin(of: stamper.stamp(sdp("dave 1 1 IN IP4 192.0.2.4", port: 7000), answer: false)) == "carol 9 2 IN IP4 192.0.2.3")
    }

    @Test func aBodyOfOurOwnGetsItsOwnOriginAtVersionOne() {
        let replaced = SDPOrigin.replacingOrigin(of: sdp("alice 1000 3 IN IP4 192.0.2.1"), username: "switchboard", sessionID: 42)
        #expect(replaced == sdp("switchboard 42 1 IN IP4 192.0.2.1"))
    }
}
