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
        }
    }

    private func unknown(_ callId: String) -> CommandOutcome {
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
