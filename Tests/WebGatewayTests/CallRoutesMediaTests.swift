import BusSchema
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import WebGateway

/// `POST /calls/{id}/play`, `/play/stop`, `/recording` and `/dtmf`: the bus command each sends, who may send it, and
/// what is refused before anything reaches the bridge.
@Suite struct CallRoutesMediaTests {
    let originate = #"{"from":"+12025550100","to":"sip:bob@switchboard.local"}"#

    /// The test's call: originated by `key`, live in the table.
    private func call(_ client: any TestClientProtocol, key: String) async throws -> String {
        let created = try await client.send(.post, "/api/v1/calls", key: key, json: originate)
        return try #require(created.object["call_id"] as? String)
    }

    @Test func eachEndpointSendsItsCommandToTheCallsBridge() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            let id = try await call(client, key: key.secret)
            let requests: [(String, String?, Command)] = [
                ("play", #"{"leg":"a","prompt":"welcome","repeat":2}"#, .play(callId: id, leg: .a, playback: Playback(prompt: "welcome", repeatCount: 2))),
                ("play", #"{"tone":"ringback"}"#, .play(callId: id, leg: nil, playback: Playback(tone: .ringback))),
                ("play/stop", nil, .stopPlay(callId: id, leg: nil)),
                ("play/stop", #"{"leg":"b"}"#, .stopPlay(callId: id, leg: .b)),
                ("recording", #"{"action":"start"}"#, .record(callId: id, on: true)),
                ("recording", #"{"action":"stop"}"#, .record(callId: id, on: false)),
                ("dtmf", #"{"leg":"b","digits":"12#","duration_ms":100}"#, .dtmf(callId: id, leg: .b, digits: "12#", durationMs: 100)),
                ("dtmf", #"{"leg":"a","digits":"*"}"#, .dtmf(callId: id, leg: .a, digits: "*", durationMs: nil)),
            ]
            for (path, body, command) in requests {
                let response = try await client.send(.post, "/api/v1/calls/\(id)/\(path)", key: key.secret, json: body)
                #expect(response.status == .accepted, "\(path) \(body ?? "")")
                #expect(response.object["call_id"] as? String == id)
                #expect(fixture.bridge.sent.last == .media(command), "\(path) \(body ?? "")")
            }
        }
    }

    /// The media commands need an anchored call: a Click2Call asks for one with `media`.
    @Test func anOriginateMayAnchorItsMedia() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key(AccessPolicy(maxConcurrent: 10, ratePerSecond: 100, burst: 100, numbers: ["+1"]))
        try await fixture.test { client async throws in
            for media in ["\"anchor\"", "\"relay\"", "null"] {
                let json = #"{"from":"+12025550100","to":"bob","media":\#(media)}"#
                #expect(try await client.send(.post, "/api/v1/calls", key: key.secret, json: json).status == .created)
            }
            let bad = try await client.send(.post, "/api/v1/calls", key: key.secret, json: #"{"from":"+12025550100","to":"bob","media":"rtp"}"#)
            #expect(bad.invalidParamNames == ["media"])
        }
        let sent = fixture.bridge.sent.compactMap { sent -> MediaMode? in
            if case .originate(let originate) = sent { return originate.media }
            return nil
        }
        #expect(sent == [.anchor, .relay, .relay])
    }

    @Test func onlyTheOwnerOrAnAdminMaySendAndOnlyToALiveCall() async throws {
        let fixture = try GatewayFixture()
        let owner = try fixture.key()
        let stranger = try fixture.key()
        let admin = try fixture.key(AccessPolicy(ratePerSecond: 100, burst: 100, admin: true, numbers: ["+1"]))
        try await fixture.test { client async throws in
            let id = try await call(client, key: owner.secret)
            let play = #"{"prompt":"welcome"}"#
            #expect(try await client.send(.post, "/api/v1/calls/\(id)/play", key: stranger.secret, json: play).status == .notFound)
            #expect(try await client.send(.post, "/api/v1/calls/nope/play", key: owner.secret, json: play).status == .notFound)
            #expect(try await client.send(.post, "/api/v1/calls/\(id)/play", json: play).status == .unauthorized)
            #expect(fixture.bridge.sent.count == 1)   // the originate
            #expect(try await client.send(.post, "/api/v1/calls/\(id)/play", key: admin.secret, json: play).status == .accepted)
            fixture.table.apply(.ended(callId: id, cause: "normal_clearing"), bridge: "bridge-1", seq: 9, at: Timestamp.now())
            let ended = try await client.send(.post, "/api/v1/calls/\(id)/recording", key: owner.secret, json: #"{"action":"start"}"#)
            #expect(ended.status == .conflict)
            #expect(fixture.bridge.sent.count == 2)
        }
    }

    @Test func badInputIs400AndSendsNothing() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            let id = try await call(client, key: key.secret)
            let cases: [(String, String?, String, String?)] = [
                ("play", "{}", "play needs a prompt or a tone", nil),
                ("play", #"{"prompt":"welcome","tone":"busy"}"#, "not both", nil),
                ("play", #"{"tone":"siren"}"#, "`tone` must be one of ringback, busy, beep", "tone"),
                ("play", #"{"prompt":"../../etc/passwd"}"#, "is not a prompt name", nil),
                ("play", #"{"prompt":"welcome","repeat":0}"#, "repeat 0 is outside 1...100", nil),
                ("play", #"{"prompt":"welcome","leg":"c"}"#, "`leg` must be a or b", "leg"),
                ("play", nil, "a JSON body is required", "body"),
                ("play/stop", #"{"leg":3}"#, "`leg` must be a string", "leg"),
                ("recording", #"{"action":"pause"}"#, "`action` must be start or stop", "action"),
                ("recording", "{}", "`action` is required", "action"),
                ("dtmf", #"{"digits":"1"}"#, "`leg` is required", "leg"),
                ("dtmf", #"{"leg":"a","digits":"12x"}"#, "only 0-9, *, # and A-D are DTMF", nil),
                ("dtmf", #"{"leg":"a","digits":""}"#, "digits is empty", nil),
                ("dtmf", #"{"leg":"a","digits":"1","duration_ms":10}"#, "duration_ms 10 is outside 40...2000", nil),
            ]
            for (path, body, detail, field) in cases {
                let response = try await client.send(.post, "/api/v1/calls/\(id)/\(path)", key: key.secret, json: body)
                #expect(response.status == .badRequest, "\(path) \(body ?? "")")
                #expect((response.object["detail"] as? String)?.contains(detail) == true, "\(path) \(body ?? ""): \(response.text)")
                #expect(response.invalidParamNames == (field.map { [$0] } ?? []), "\(path) \(body ?? "")")
            }
            #expect(fixture.bridge.sent.count == 1)   // the originate only
        }
    }

    @Test func theBridgesRefusalsMapToProblems() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            let id = try await call(client, key: key.secret)
            let cases: [(ErrorCode, HTTPResponse.Status)] = [
                (.mediaUnavailable, .serviceUnavailable), (.unknownCall, .notFound), (.invalidState, .conflict), (.badCommand, .badRequest),
            ]
            for (code, status) in cases {
                fixture.bridge.failure = BridgeError(code: code, message: "call \(id) is not anchored")
                let response = try await client.send(.post, "/api/v1/calls/\(id)/play", key: key.secret, json: #"{"tone":"beep"}"#)
                #expect(response.status == status, "\(code)")
                #expect(response.object["bridge_code"] as? String == code.rawValue)
                #expect((response.object["detail"] as? String)?.contains("is not anchored") == true)
            }
            fixture.bridge.failure = BridgeError(code: .mediaUnavailable, message: "rtpengine did not answer")
            let unavailable = try await client.send(.post, "/api/v1/calls/\(id)/dtmf", key: key.secret, json: #"{"leg":"a","digits":"1"}"#)
            #expect(unavailable.object["type"] as? String == Problem.typeBase + "media-unavailable")
        }
    }
}
