import FuzzReplay
import SIPCore

/// One input: `n` (the low 3 bits of the first byte), then `n` chunk sizes (a byte each, size = byte + 1), then
/// the stream. The stream is fed to ``SIPStreamFramer`` whole and again in chunks of those sizes in turn, so
/// the fuzzer chooses where TCP cuts it; both must give the same messages, error and leftover bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSIPStreamFramer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    guard let first = input.first else { return 0 }
    let cutCount = Int(first & 7)
    guard input.count > cutCount else { return 0 }
    let chunkSizes = cutCount == 0 ? [input.count] : input[1...cutCount].map { Int($0) + 1 }
    let stream = Array(input[(cutCount + 1)...])
    let whole = frame(stream, chunkSizes: [max(1, stream.count)])
    let chunked = frame(stream, chunkSizes: chunkSizes)
    precondition(whole == chunked, "chunking changed the framing: whole \(whole), chunked \(chunked)")
    return 0
}

/// What the framer makes of `stream` appended in chunks of `chunkSizes` (cycled): the messages, the error that
/// stopped it, and the bytes left buffered.
private func frame(_ stream: [UInt8], chunkSizes: [Int]) -> Framing {
    var framer = SIPStreamFramer()
    var framing = Framing()
    var offset = 0
    var turn = 0
    while offset < stream.count {
        let end = min(stream.count, offset + chunkSizes[turn % chunkSizes.count])
        turn += 1
        framer.append(stream[offset..<end])
        offset = end
        do {
            while let message = try framer.nextMessage() { framing.messages.append(message) }
        } catch {
            framing.error = error.kind
            return framing
        }
    }
    framing.leftover = framer.bufferedByteCount
    return framing
}

private struct Framing: Equatable {
    var messages: [[UInt8]] = []
    var error: SIPParseError.Kind?
    var leftover = 0
}

#if !FUZZING
@main enum Main {
    static func main() { replay(fuzzSIPStreamFramer) }
}
#endif
