// Micro-benchmarks of the SIP hot path: what the bridge does with every INVITE Kamailio relays to it.
//
// Usage (release build, own scratch path so that other builds are not disturbed):
//
//     swift build -c release --scratch-path .build-perf --product switchboard-bench
//     .build-perf/release/switchboard-bench [scale] [filter]
//     .build-perf/release/switchboard-bench --list
//     .build-perf/release/switchboard-bench --count N name
//
// `scale` (default 1) multiplies every iteration count; `filter` runs only the cases whose name contains it
// (for profiling one case with `perf record`). Each case runs 5 times; the best run is reported as
// ns/op and ops/s, and as a multiple of the reference case measured in the same process: copying the INVITE's
// bytes into a new [UInt8] and scanning them for CRLFs. The reference does the same work whatever SIPCore
// looks like, so "× ref" compares across machines where raw ns/op do not.
//
// Times move with the load on a shared machine; instruction and allocation counts do not. `--count N name`
// runs the case called exactly `name` once to warm up, then N times inside `countedLoop`, untimed, so that
// valgrind counts only those N calls:
//
//     valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*countedLoop*' \
//         .build-perf/release/switchboard-bench --count 1000 "parse INVITE"
//
// Instructions per op are the collected Ir divided by N. Allocations per op come from valgrind's own malloc
// (memcheck's "total heap usage: A allocs"), which sees every String, Array and class instance the Swift
// runtime allocates: A for N calls minus A for `--count 0` (the warm-up alone), divided by N. (Callgrind's
// call counts of malloc miss the calls the runtime makes by tail jump, so they undercount.) bench/sip-core
// runs every case both ways and prints both.

import SIPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An INVITE as Kamailio relays it: its own Via and Record-Route on top, the client's Via with rport and
/// received filled in, and the X-Switchboard headers the routing script adds.
let inviteText = [
    "INVITE sip:+4930123456@switchboard.internal:5080;transport=udp SIP/2.0",
    "Record-Route: <sip:10.0.0.5;lr;ftag=as5f2e3b7c;did=a1b.c2d1>",
    "Via: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK0e4b.8c3f5e1a2b7d9f0c1e3a5b7d9f1e3a5b.0",
    "Via: SIP/2.0/UDP 203.0.113.45:5060;received=203.0.113.45;rport=5060;branch=z9hG4bK-524287-1---d8754z-7c1e9f3a",
    "Max-Forwards: 69",
    "From: \"Alice Example\" <sip:alice@carrier.example.net>;tag=as5f2e3b7c",
    "To: \"Berlin Office\" <sip:+4930123456@switchboard.example.com>",
    "Call-ID: 3c26700b5e4a-9f3k2l1m0n@203.0.113.45",
    "CSeq: 102 INVITE",
    "Contact: <sip:alice@203.0.113.45:5060;transport=udp>",
    "Content-Type: application/sdp",
    "X-Switchboard-Auth-User: alice",
    "X-Switchboard-Source: 203.0.113.45:5060",
    "User-Agent: Zoiper rv2.10.20.3",
    "Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE",
    "Supported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri",
].joined(separator: "\r\n")

let sdp = [
    "v=0",
    "o=Z 1718000000000 1 IN IP4 203.0.113.45",
    "s=Z",
    "c=IN IP4 203.0.113.45",
    "t=0 0",
    "m=audio 8000 RTP/AVP 8 0 101",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
    "",
].joined(separator: "\r\n")

let inviteBytes = Array((inviteText + "\r\nContent-Length: \(sdp.utf8.count)\r\n\r\n" + sdp).utf8)

/// Keeps a result alive so the optimizer cannot drop the work that produced it.
@inline(never)
func blackHole<T>(_ value: T) {
    withExtendedLifetime(value) {}
}

/// The best of 5 runs of `iterations` calls, in nanoseconds per call.
func measure(iterations: Int, _ body: () -> Void) -> Double {
    let clock = ContinuousClock()
    var best = Duration.seconds(3600)
    for _ in 0..<5 {
        let elapsed = clock.measure {
            for _ in 0..<iterations { body() }
        }
        best = min(best, elapsed)
    }
    let (seconds, attoseconds) = best.components
    return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(iterations)
}

guard case .request(let invite) = try SIPParser().parse(inviteBytes) else { fatalError("the INVITE must parse") }
let parser = SIPParser()

/// The reads the bridge makes of every INVITE it is offered.
func readAccessors(_ request: SIPRequest) {
    blackHole(request.callID)
    blackHole(request.cseq)
    blackHole(request.from)
    blackHole(request.to)
    blackHole(request.topVia)
    blackHole(request.vias)
    blackHole(request.maxForwards)
    blackHole(request.contentType)
    blackHole(request.headers["X-Switchboard-Source"])
}

/// The reference: copy the datagram as a receive path does and find every line end.
let referenceName = "reference (copy + CRLF scan)"
let referenceBody = {
    let copy = Array(inviteBytes)
    var lineEnds = 0
    copy.withUnsafeBufferPointer { buffer in
        var index = 0
        while index + 1 < buffer.count {
            if buffer[index] == 0x0D, buffer[index + 1] == 0x0A { lineEnds += 1 }
            index += 1
        }
    }
    blackHole(lineEnds)
}

let cases: [(name: String, iterations: Int, body: () -> Void)] = [
    ("parse INVITE", 20_000, { blackHole(try? parser.parse(inviteBytes)) }),
    ("parse + accessors (what the bridge reads)", 20_000, {
        guard case .request(let request) = try? parser.parse(inviteBytes) else { return }
        readAccessors(request)
    }),
    ("accessors (9 typed reads)", 20_000, { readAccessors(invite) }),
    ("headers[\"X-Switchboard-Source\"]", 200_000, { blackHole(invite.headers["X-Switchboard-Source"]) }),
    ("callID", 200_000, { blackHole(invite.callID) }),
    ("TransactionKey.forServer", 50_000, { blackHole(TransactionKey.forServer(invite)) }),
    ("validateForEndpoint", 20_000, {
        blackHole(validateForEndpoint(
            invite, supportedExtensions: ["replaces", "timer"], supportedContentTypes: ["application/sdp"]))
    }),
    ("302 reply + serialized()", 20_000, {
        var response = SIPResponse(replyingTo: invite, status: 302, toTag: "sb-7f3a9c")
        response.headers.add("Contact", "<sip:+4930123456@media-7.switchboard.internal:5060>")
        blackHole(response.serialized())
    }),
    ("parse + accessors + key + validate + 302", 10_000, {
        guard case .request(let request) = try? parser.parse(inviteBytes) else { return }
        readAccessors(request)
        blackHole(TransactionKey.forServer(request))
        blackHole(validateForEndpoint(
            request, supportedExtensions: ["replaces", "timer"], supportedContentTypes: ["application/sdp"]))
        var response = SIPResponse(replyingTo: request, status: 302, toTag: "sb-7f3a9c")
        response.headers.add("Contact", "<sip:+4930123456@media-7.switchboard.internal:5060>")
        blackHole(response.serialized())
    }),
]

/// Runs `body` `iterations` times; the one function valgrind's `--toggle-collect` counts in `--count` mode.
@inline(never)
func countedLoop(iterations: Int, _ body: () -> Void) {
    for _ in 0..<iterations { body() }
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "--list" {
    print(referenceName)
    for (name, _, _) in cases { print(name) }
    exit(0)
}
if arguments.first == "--count" {
    guard arguments.count == 3, let iterations = Int(arguments[1]), iterations >= 0 else {
        fatalError("usage: switchboard-bench --count ITERATIONS CASE-NAME")
    }
    let all = [(referenceName, referenceBody)] + cases.map { ($0.name, $0.body) }
    guard let body = all.first(where: { $0.0 == arguments[2] })?.1 else {
        fatalError("no case called \(arguments[2]); --list names them")
    }
    // The first call pays one-time costs (lazy globals, type metadata) that a server pays once per process.
    body()
    countedLoop(iterations: iterations, body)
    exit(0)
}

let scale = arguments.first.flatMap(Int.init) ?? 1
let filter = arguments.dropFirst().first
let reference = measure(iterations: 200_000 * scale, referenceBody)

func row(_ name: String, _ nanoseconds: Double) -> String {
    func pad(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
    let name = name + String(repeating: " ", count: max(0, 42 - name.count))
    let multiple = Int((nanoseconds / reference * 10).rounded())
    return name + pad(String(Int(nanoseconds.rounded())), 10) + pad(String(Int((1e9 / nanoseconds).rounded())), 12)
        + pad("\(multiple / 10).\(multiple % 10)", 9)
}

print("INVITE: \(inviteBytes.count) bytes; best of 5; scale \(scale)")
print("case" + String(repeating: " ", count: 38) + "     ns/op       ops/s    × ref")
print(row(referenceName, reference))
for (name, iterations, body) in cases where filter.map(name.contains) ?? true {
    print(row(name, measure(iterations: iterations * scale, body)))
}
