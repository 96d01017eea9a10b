import Foundation
import Testing
@testable import BusSchema

/// The golden frames in `Tests/Fixtures/bus/<channel>/`: one file per message kind, byte for byte as
/// the bridge (or a worker or client of the SDK) writes it. `test_contract.py` validates the same files
/// against `docs/asyncapi.yaml`, so the schema and the code cannot drift apart unseen.
struct GoldenFrame: CustomTestStringConvertible, Sendable {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // BusSchemaTests
        .deletingLastPathComponent()  // Tests
        .appendingPathComponent("Fixtures/bus")

    static let all: [GoldenFrame] = ["events", "decisions", "replay", "commands"].flatMap { channel in
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent(channel).path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { GoldenFrame(channel: channel, name: String($0.dropLast(5))) }
    }

    let channel: String
    /// The message type, then `-variant` when a type has several shapes.
    let name: String

    var testDescription: String { "\(channel)/\(name)" }

    var bytes: [UInt8] {
        get throws { Array(try Data(contentsOf: Self.folder.appendingPathComponent("\(channel)/\(name).json"))) }
    }

    /// The frame decoded with the reader its channel and type call for, and written again.
    func rewritten() throws -> [UInt8] {
        let bytes = try bytes
        let type = try JSONObject.message(bytes).type
        switch channel {
        case "events": return try Event.decode(bytes).jsonBytes()
        case "decisions" where type.hasPrefix("worker.") || type == MessageType.decision.rawValue:
            return try WorkerMessage.decode(bytes).encoded()
        case "decisions": return try BridgeMessage.decode(bytes).encoded()
        case "replay" where type == ReplayRequest.type: return try ReplayRequest.decode(bytes).encoded()
        case "replay": return try ReplayReply.decode(bytes).encoded()
        case "commands" where type == CommandRequest.type: return try CommandRequest.decode(bytes).frame()
        case "commands": return try CommandReply.decode(bytes).frame()
        default: throw BusDecodingError(code: .badMessage, message: "no channel \(channel)")
        }
    }
}

@Suite struct GoldenFrameTests {
    @Test(arguments: GoldenFrame.all)
    func decodesAndWritesBackByteForByte(frame: GoldenFrame) throws {
        let bytes = try frame.bytes
        let type = try JSONObject.message(bytes).type
        #expect(frame.name == type || frame.name.hasPrefix(type + "-"), "the file name starts with the type")
        let rewritten = try frame.rewritten()
        #expect(Data(rewritten) == Data(bytes), "wrote \(String(decoding: rewritten, as: UTF8.self))")
    }

    @Test func everyKindHasOne() {
        let names = Set(GoldenFrame.all.map(\.testDescription))
        func has(_ channel: String, _ name: String) -> Bool {
            names.contains("\(channel)/\(name)") || names.contains { $0.hasPrefix("\(channel)/\(name)-") }
        }
        #expect(GoldenFrame.all.count >= 40)
        for type in EventType.allCases { #expect(has("events", type.rawValue), "\(type)") }
        for type in MessageType.allCases {
            let channel = switch type {
            case .command, .commandReply: "commands"
            case .replayRequest, .replayEvents, .replayEnd: "replay"
            default: "decisions"
            }
            #expect(has(channel, type.rawValue), "\(type)")
        }
        #expect(has("replay", MessageType.error.rawValue))
        for name in CommandName.allCases { #expect(has("commands", "command-\(name.rawValue)"), "\(name)") }
        for result in ["originated", "done", "calls", "call", "failed", "decided"] { #expect(has("commands", "command.reply-\(result)")) }
        for action in DecisionAction.allCases { #expect(has("decisions", "decision-\(action.rawValue)"), "\(action)") }
    }

    /// A replayed or live event of a type or version this build does not know keeps its place (its seq).
    @Test func replayKeepsEventsOfUnknownTypes() throws {
        let known = Event(bridgeId: "b1", seq: 7, timestamp: Date(timeIntervalSince1970: 0), callId: nil,
                          body: .workerJoined(WorkerInfo(workerId: "w")))
        let future = Array(#"{"v":1,"type":"call.teleported","bridge_id":"b1","seq":8,"ts":"1970-01-01T00:00:00.000Z","teleported":{}}"#.utf8)
        let reply = try ReplayReply.decode(ReplayReply.eventsFrame(requestId: "r", journaled: [known.jsonBytes(), future]))
        #expect(reply == .events(requestId: "r", events: [ReceivedEvent(bridgeId: "b1", seq: 7, type: "worker.joined", event: known),
                                                          ReceivedEvent(bridgeId: "b1", seq: 8, type: "call.teleported", event: nil)]))
        #expect(throws: BusDecodingError.self) { try ReceivedEvent.decode(Array(#"{"v":1,"type":"call.ended","bridge_id":"b1"}"#.utf8)) }
        let newer = try ReceivedEvent.decode(Array(#"{"v":2,"type":"worker.joined","bridge_id":"b1","seq":9,"worker":{"worker_id":"w"}}"#.utf8))
        #expect(newer == ReceivedEvent(bridgeId: "b1", seq: 9, type: "worker.joined", event: nil))
    }
}
