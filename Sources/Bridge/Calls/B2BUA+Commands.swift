import BusSchema
import Foundation

/// The commands socket's requests, carried out on the SIP loop: every reply names the call or the problem.
/// A client limited to some accounts sees and acts on their calls only; another account's call is to it
/// as if it did not exist.
extension B2BUA {
    func execute(_ command: Command, scope: CommandScope = .everyAccount) -> CommandOutcome {
        if let problem = command.problem {
            return .failed(ErrorReply(code: .badCommand, message: problem))
        }
        func live(_ callId: String) -> Call? {
            calls[callId].flatMap { scope.permits($0.account) ? $0 : nil }
        }
        switch command {
        case .originate(let originate):
            guard scope.permits(originate.account) else {
                return .failed(ErrorReply(code: .accountDenied, message: originate.account.map { "this client may not originate for account \($0)" }
                                          ?? "this client may originate only with an account it may act for"))
            }
            return self.originate(originate)
        case .list:
            return .calls(calls.values.filter { scope.permits($0.account) }.sorted { $0.createdWall < $1.createdWall }.map(snapshot))
        case .get(let callId):
            return live(callId).map { .call(snapshot($0)) } ?? unknown(callId)
        case .hangup(let callId, let leg):
            guard let call = live(callId) else { return unknown(callId) }
            if let leg, call.flow.currentLeg(leg) == nil {
                return .failed(ErrorReply(code: .invalidState, message: "call \(callId) has no leg \(leg.rawValue) yet"))
            }
            drive(call, .hangup)
            return .done(callId: callId)
        case .transfer(let callId, let leg, let target):
            guard let call = live(callId) else { return unknown(callId) }
            guard call.flow.phase == .connected, call.flow.answeredLeg(leg) != nil else {
                return .failed(ErrorReply(code: .invalidState, message: "call \(callId) is \(call.flow.phase.rawValue): only a connected call can be transferred"))
            }
            if let denial = destinations.check(target, place: .transfer, callId: callId) {
                return .failed(destinations.commandError(denial, field: "target"))
            }
            // What the IVR played the party it hands on stops: the party hears the new call's ringing instead.
            if let playing = call.media?.playing.keys, !playing.isEmpty { media?.stopPlay(call, legs: Array(playing)) { _ in } }
            drive(call, .transfer(keep: leg, target: target))
            return .done(callId: callId)
        case .hold(let callId, let leg), .unhold(let callId, let leg):
            guard let call = live(callId) else { return unknown(callId) }
            guard call.flow.phase == .connected, let index = call.flow.answeredLeg(leg) else {
                return .failed(ErrorReply(code: .invalidState, message: "call \(callId) is \(call.flow.phase.rawValue): only a connected call's legs can be held"))
            }
            let on = if case .hold = command { true } else { false }
            if call.flow.legs[index]?.held == on {
                return .failed(ErrorReply(code: .invalidState, message: "leg \(leg.rawValue) of call \(callId) is already \(on ? "on hold" : "off hold")"))
            }
            if call.sip[index]?.busy == true {
                return .failed(ErrorReply(code: .invalidState, message: "leg \(leg.rawValue) of call \(callId) has a re-INVITE in progress; try again"))
            }
            drive(call, .hold(leg: leg, on: on))
            return .done(callId: callId)
        case .decide:
            // SIPSide.command hands a well-formed decide to Handoffs; answer rather than trap should that change.
            return .failed(ErrorReply(code: .badCommand, message: "decide is answered by the bridge's hand-off, not by a call"))
        case .play, .stopPlay, .record, .dtmf:
            return .failed(ErrorReply(code: .badCommand, message: "\(command.name.rawValue) is answered once rtpengine has, by executeMedia"))
        }
    }

    /// The media commands, answered once rtpengine has: on an anchored call's answered legs only.
    func executeMedia(_ command: Command, scope: CommandScope = .everyAccount, reply: @escaping (CommandOutcome) -> Void) {
        if let problem = command.problem { return reply(.failed(ErrorReply(code: .badCommand, message: problem))) }
        let callId: String
        switch command {
        case .play(let id, _, _), .stopPlay(let id, _), .record(let id, _), .dtmf(let id, _, _, _): callId = id
        default: return reply(execute(command, scope: scope))
        }
        guard let call = calls[callId], scope.permits(call.account) else { return reply(unknown(callId)) }
        guard let media else {
            return reply(.failed(ErrorReply(code: .mediaUnavailable, message: "this bridge has no rtpengine (media_rtpengine)")))
        }
        if call.media == nil, let failure = call.mediaFailure {
            return reply(.failed(ErrorReply(code: .mediaUnavailable, message: "call \(callId)'s media could not be anchored: \(failure)")))
        }
        guard call.media != nil else {
            return reply(.failed(ErrorReply(code: .invalidState,
                                            message: "call \(callId)'s media is not anchored: bridge or originate it with \"media\":\"anchor\"")))
        }
        let done: (Result<Void, MediaError>) -> Void = { result in
            switch result {
            case .success: reply(.done(callId: callId))
            case .failure(let error): reply(.failed(ErrorReply(code: error.code, message: error.description)))
            }
        }
        func answered(_ role: Leg?) -> [(LegID, Leg)] {
            call.flow.legs.filter { $0.value.state == .answered && (role == nil || $0.value.role == role) }
                .sorted { $0.key < $1.key }.map { ($0.key, $0.value.role) }
        }
        let notAnswered = { (role: Leg?) in
            reply(.failed(ErrorReply(code: .invalidState, message: "call \(callId) has no answered leg\(role.map { " \($0.rawValue)" } ?? "")")))
        }
        switch command {
        case .play(_, let leg, let playback):
            let legs = answered(leg)
            if legs.isEmpty { return notAnswered(leg) }
            media.play(call, legs: legs, playback: playback, completion: done)
        case .stopPlay(_, let leg):
            media.stopPlay(call, legs: answered(leg).map(\.0), completion: done)
        case .record(_, let on):
            if on { media.startRecording(call, completion: done) } else { media.stopRecording(call, completion: done) }
        case .dtmf(_, let leg, let digits, let durationMs):
            guard answered(leg).first != nil else { return notAnswered(leg) }
            // The digits ride on the RTP the other party sends this one.
            guard let sender = answered(leg == .a ? .b : .a).first?.0 else {
                return reply(.failed(ErrorReply(code: .invalidState, message: "call \(callId) has no other party whose RTP could carry digits to leg \(leg.rawValue)")))
            }
            media.dtmf(call, from: sender, digits: digits, durationMs: durationMs ?? 100, completion: done)
        default:
            break
        }
    }

    func unknown(_ callId: String) -> CommandOutcome {
        .failed(ErrorReply(code: .unknownCall, message: "no live call \(callId) on this bridge"))
    }

    func snapshot(_ call: Call) -> CallSnapshot {
        let state: CallSnapshot.State = switch call.flow.phase {
        case .routing: .routing
        case .dialingA: .dialing
        case .ringing, .joining: .ringing
        case .connected: .connected
        case .ended: .ending
        }
        let legs = call.flow.legs.sorted { $0.key < $1.key }.map { index, info in
            LegSnapshot(leg: info.role, uri: info.uri, state: LegSnapshot.State(rawValue: info.state.rawValue) ?? .ended,
                        sipCallId: call.sip[index]?.sipCallId ?? "", held: info.held)
        }
        return CallSnapshot(callId: call.id, kind: call.flow.kind == .inbound ? .inbound : .originate, state: state,
                            account: call.account, createdAt: call.createdWall, connectedAt: call.connectedWall, legs: legs)
    }
}
