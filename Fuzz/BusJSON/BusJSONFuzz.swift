import BusSchema
import FuzzReplay

/// One input: a frame off any bus socket, given to every decoder (each reads it with the JSON reader first). A
/// message that decodes must survive the writer: its frame decodes again, and from then on the round trip is
/// exact (the first pass may normalise, e.g. a timestamp to milliseconds).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBusJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let frame = Array(UnsafeBufferPointer(start: data, count: size))
    roundTrip(frame, WorkerMessage.decode, { $0.encoded() })
    roundTrip(frame, BridgeMessage.decode, { $0.encoded() })
    roundTrip(frame, CommandRequest.decode, { $0.frame() })
    roundTrip(frame, CommandReply.decode, { $0.frame() })
    roundTrip(frame, Event.decode, { $0.jsonBytes() })
    roundTrip(frame, ReplayRequest.decode, { $0.encoded() })
    roundTrip(frame, ReplayReply.decode, { $0.encoded() })
    _ = try? ReceivedEvent.decode(frame)
    _ = CommandRequest.requestId(in: frame)
    _ = (try? CommandRequest.decode(frame))?.command.problem
    return 0
}

private func roundTrip<Message: Equatable, Failure: Error>(
    _ frame: [UInt8], _ decode: ([UInt8]) throws(Failure) -> Message, _ encode: (Message) -> [UInt8]
) {
    guard let decoded = try? decode(frame) else { return }
    let normalised = reread(encode(decoded), decode)
    let again = reread(encode(normalised), decode)
    precondition(again == normalised, "\(Message.self) does not round-trip: \(normalised) became \(again)")
}

private func reread<Message, Failure: Error>(_ frame: [UInt8], _ decode: ([UInt8]) throws(Failure) -> Message) -> Message {
    do {
        return try decode(frame)
    } catch {
        fatalError("\(Message.self) encodes to a frame it refuses (\(error)): \(String(decoding: frame, as: UTF8.self))")
    }
}

#if !FUZZING
@main enum Main {
    static func main() { replay(fuzzBusJSON) }
}
#endif
