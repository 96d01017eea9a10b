import FuzzReplay
import SIPCore

/// One input: a datagram for ``SIPParser`` with the default limits. A message the parser accepts must give its
/// typed fields, endpoint verdict and session description (a multipart body's parts included) without trapping, and must survive the bridge relaying it: serialised, it
/// parses again to the same start line, header fields and body.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSIPParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let parser = SIPParser()
    let message: SIPMessage
    do {
        message = try parser.parse(Array(UnsafeBufferPointer(start: data, count: size)))
    } catch {
        _ = error.errorResponse()?.serialized()
        return 0
    }
    _ = (message.callID, message.cseq, message.from, message.to, message.vias, message.contacts)
    _ = (message.maxForwards, message.contentLength, message.contentType)
    _ = try? MessageBody.sessionDescription(of: message)
    if case .request(let request) = message {
        _ = validateForEndpoint(request, supportedExtensions: ["100rel"], supportedContentTypes: ["application/sdp"])
    }
    let wire = message.serialized()
    guard let again = try? relayParser.parse(wire) else {
        fatalError("an accepted message serialises to bytes the parser refuses: \(String(decoding: wire, as: UTF8.self).debugDescription)")
    }
    // serialized() rewrites Content-Length (compact form `l`) to the body's length, so that field alone may differ.
    func relayed(_ message: SIPMessage) -> [SIPHeader] {
        message.headers.filter { !["content-length", "l"].contains($0.name.lowercased()) }
    }
    switch (message, again) {
    case (.request(let a), .request(let b)):
        precondition(a.method == b.method && a.uri == b.uri, "the Request-Line changed when relayed")
    case (.response(let a), .response(let b)):
        precondition(a.status == b.status && a.reason == b.reason, "the Status-Line changed when relayed")
    default:
        fatalError("a relayed message changed kind")
    }
    precondition(relayed(message) == relayed(again), "header fields changed when relayed")
    precondition(message.body == again.body, "the body changed when relayed")
    return 0
}

/// Reads what serialized() wrote. It adds a Content-Length line when the message had none: one field and a few
/// bytes past what the default limits let in, so these leave room for that line.
private let relayParser: SIPParser = {
    var limits = SIPParserLimits()
    limits.maxHeaderCount += 1
    limits.maxMessageSize += "Content-Length: 65535\r\n".utf8.count
    return SIPParser(limits: limits)
}()

#if !FUZZING
@main enum Main {
    static func main() { replay(fuzzSIPParser) }
}
#endif
