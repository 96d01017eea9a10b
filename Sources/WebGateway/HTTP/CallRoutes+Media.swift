import BusSchema
import Foundation
import Hummingbird

/// The body of `POST /calls/{id}/play`: a prompt or a tone, to one leg or (without `leg`) both.
struct PlayRequest: Decodable, Sendable {
    var leg: String?
    var prompt: String?
    var tone: String?
    var repeatCount: Int?

    enum CodingKeys: String, CodingKey { case leg, prompt, tone, repeatCount = "repeat" }
}

/// The body of `POST /calls/{id}/play/stop`; optional (no body: both legs).
struct StopPlayRequest: Decodable, Sendable {
    var leg: String?
}

/// The body of `POST /calls/{id}/recording`.
struct RecordingRequest: Decodable, Sendable {
    var action: String
}

/// The body of `POST /calls/{id}/dtmf`.
struct DTMFRequest: Decodable, Sendable {
    var leg: String
    var digits: String
    var durationMs: Int?

    enum CodingKeys: String, CodingKey { case leg, digits, durationMs = "duration_ms" }
}

/// The bus's media commands on a live call (issue 16), with the same scoping as hang-up: the caller's own calls, any
/// for admins. The bridge checks and carries them out (its call must be anchored in rtpengine); its refusals map to
/// problems as every command's do (``CallRoutes/problem(for:bridge:)``), and `call.media.played`,
/// `call.media.recorded` and `call.dtmf` follow on the events socket.
///
/// ```
/// POST /api/v1/calls/b1-x-7/play        {"leg":"a","prompt":"welcome","repeat":2}
/// POST /api/v1/calls/b1-x-7/play/stop   {"leg":"a"}
/// POST /api/v1/calls/b1-x-7/recording   {"action":"start"}
/// POST /api/v1/calls/b1-x-7/dtmf        {"leg":"b","digits":"1234#"}
/// ```
extension CallRoutes {
    func registerMedia(on group: RouterGroup<GatewayContext>) {
        group.post("calls/{id}/play", use: play)
        group.post("calls/{id}/play/stop", use: stopPlay)
        group.post("calls/{id}/recording", use: record)
        group.post("calls/{id}/dtmf", use: dtmf)
    }

    @Sendable func play(_ request: Request, context: GatewayContext) async throws -> Response {
        let body = try await decode(PlayRequest.self, from: request, context: context)
        let tone = try body.tone.map { name in
            guard let tone = Tone(rawValue: name) else {
                throw Problem.badRequest("`tone` must be one of \(Tone.allCases.map(\.rawValue).joined(separator: ", "))", field: "tone")
            }
            return tone
        }
        let playback = Playback(prompt: body.prompt, tone: tone, repeatCount: body.repeatCount ?? 1)
        return try await send(context: context) { .play(callId: $0, leg: try Self.leg(body.leg), playback: playback) }
    }

    @Sendable func stopPlay(_ request: Request, context: GatewayContext) async throws -> Response {
        var request = request
        // No body is "both legs": stopping needs nothing else.
        let buffer = try await request.collectBody(upTo: 64 * 1024)
        let body = try buffer.readableBytes == 0 ? StopPlayRequest()
            : JSONDecoder().decode(StopPlayRequest.self, from: Data(buffer.readableBytesView))
        return try await send(context: context) { .stopPlay(callId: $0, leg: try Self.leg(body.leg)) }
    }

    @Sendable func record(_ request: Request, context: GatewayContext) async throws -> Response {
        let body = try await decode(RecordingRequest.self, from: request, context: context)
        guard body.action == "start" || body.action == "stop" else {
            throw Problem.badRequest("`action` must be start or stop", field: "action")
        }
        return try await send(context: context) { .record(callId: $0, on: body.action == "start") }
    }

    @Sendable func dtmf(_ request: Request, context: GatewayContext) async throws -> Response {
        let body = try await decode(DTMFRequest.self, from: request, context: context)
        return try await send(context: context) { callId in
            guard let leg = try Self.leg(body.leg) else { throw Problem.badRequest("`leg` is required", field: "leg") }
            return .dtmf(callId: callId, leg: leg, digits: body.digits, durationMs: body.durationMs)
        }
    }

    /// Checks the command as the bridge would (a 400 sends nothing), sends it to the call's bridge and answers 202 with
    /// the call: the command was taken, its result comes as an event.
    private func send(context: GatewayContext, _ make: (String) throws -> Command) async throws -> Response {
        let command = try make(try context.parameters.require("id"))
        if let problem = command.problem { throw Problem.badRequest(problem) }
        let (call, bridge) = try liveCall(context: context)
        do {
            let start = ContinuousClock.now
            try await bridge.media(command)
            metrics.commandLatency.record(.now - start)
        } catch {
            throw Self.problem(for: error, bridge: bridge.id)
        }
        context.logger.info("media command sent", metadata: ["gateway.call_id": "\(call.callId)", "gateway.command": "\(command.name.rawValue)"])
        return try json(call, status: .accepted)
    }

    private static func leg(_ name: String?) throws -> Leg? {
        guard let name else { return nil }
        guard let leg = Leg(rawValue: name) else { throw Problem.badRequest("`leg` must be a or b", field: "leg") }
        return leg
    }
}
