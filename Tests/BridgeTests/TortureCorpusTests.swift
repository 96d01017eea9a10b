import BusSchema
import Foundation
import Testing
@testable import Bridge

/// Every RFC 4475 message through the bridge's SIP side (on an embedded loop, with a fake bus and wire):
/// what a caller would get back.
/// The parser's own verdicts are pinned in SIPCoreTests; this pins the bridge's answers as an endpoint.
@Suite struct TortureCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/rfc4475")

    /// What the bridge answers (nil: dropped, as RFC 4475 says for broken responses or unusable requests).
    static let expected: [String: Int?] = [
        // §3.1.1 valid: new INVITEs get the fallback (no worker here), the rest what the bridge serves;
        // wsinv carries a To tag, so it is a re-INVITE for a dialog the bridge does not have; mpart01's
        // multipart body is one the bridge reads, but MESSAGE is no method of its (§8.2.1 before §8.2.3).
        "valid/wsinv": 481, "valid/intmeth": 501, "valid/esc01": 503, "valid/escnull": 405, "valid/esc02": 501,
        "valid/lwsdisp": 200, "valid/longreq": 503, "valid/dblreq": 405, "valid/semiuri": 200, "valid/transports": 200,
        "valid/mpart01": 405, "valid/unreason": nil, "valid/noreason": nil,
        // §3.1.2 invalid: 400, 505 for the version; responses are discarded.
        "invalid/badinv01": 400, "invalid/clerr": 400, "invalid/ncl": 400, "invalid/scalar02": 400, "invalid/scalarlg": nil,
        "invalid/quotbal": 400, "invalid/ltgtruri": 400, "invalid/lwsruri": 400, "invalid/lwsstart": 400, "invalid/trws": 400,
        "invalid/escruri": 400, "invalid/baddate": 400, "invalid/regbadct": 400, "invalid/badaspec": 400, "invalid/baddn": 400,
        "invalid/badvers": 505, "invalid/mismatch01": 400, "invalid/mismatch02": 400, "invalid/bigcode": nil,
        // §3.2–3.4 semantic, answered as an endpoint.
        "semantic/badbranch": 200, "semantic/insuf": 400, "semantic/unkscm": 416, "semantic/novelsc": 416, "semantic/unksm2": 405,
        "semantic/bext01": 420, "semantic/invut": 415, "semantic/regaut01": 405, "semantic/multi01": 400, "semantic/mcl01": 400,
        "semantic/bcast": nil, "semantic/zeromf": 200, "semantic/cparam01": 405, "semantic/cparam02": 405, "semantic/regescrt": 405,
        "semantic/sdp01": 503, "semantic/inv2543": 503,
    ]

    @Test func everyCorpusFileIsPinned() throws {
        var names: [String] = []
        for folder in ["valid", "invalid", "semantic"] {
            let files = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.appendingPathComponent(folder).path)
            names += files.filter { $0.hasSuffix(".dat") }.map { "\(folder)/\($0.dropLast(4))" }
        }
        #expect(Set(names) == Set(Self.expected.keys))
    }

    @Test(arguments: expected.keys.sorted())
    func bridgeAnswers(_ name: String) throws {
        let harness = SIPSideHarness()
        let bytes = Array(try Data(contentsOf: Self.corpus.appendingPathComponent("\(name).dat")))
        harness.receive(bytes)
        // INVITEs wait for a decision: the bus answers as it does with no worker connected.
        harness.resolveAll(.fallback(.noWorker))
        let status = harness.wire.take().first?.status
        #expect(status == Self.expected[name]!, "\(name)")
        // Whatever came in, the edge still serves: an OPTIONS right after gets 200.
        let options = "OPTIONS sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKafter\r\nMax-Forwards: 70\r\n"
            + "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: after-\(name)\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        harness.receive(Array(options.utf8))
        #expect(harness.wire.take().last?.status == 200)
    }
}
