import BusSchema
import Foundation
import Logging
import NIOCore
import SIPCore

/// Where a phone's REFER goes: the workers decide its target as they decide a new call's (`DecisionGate`).
protocol TransferDecider: AnyObject {
    /// Calls `decided` once, on the SIP loop, with the decision: a worker's (its targets screened by the destination
    /// policy, none left being a 403 reject) or the fallback's.
    func decideTransfer(callId: String, offer: CallOffer, decided: @escaping (Decision) -> Void)
}

/// A phone's REFER in a call (RFC 3515), ended on the leg it arrived on, as FreeSWITCH and carrier SBCs do: the
/// far party never sees it. The REFER is screened and answered here (202, or why not), its implicit
/// subscription gets NOTIFYs with a `message/sipfrag` status line (RFC 3420), and the call's flow dials the
/// Refer-To target for the other party. Loop-bound, owned by the `B2BUA`.
final class Referrals {
    /// A REFER's implicit subscription (RFC 3515 §2.4.4): the leg it lives on, the `id` of its Event header (the
    /// REFER's CSeq), and whether the referrer wants NOTIFYs at all (RFC 4488 `Refer-Sub: false`).
    private struct Subscription {
        let leg: LegID
        let id: UInt32
        let notifies: Bool
    }

    /// Phones hang up on their own once they read the final NOTIFY; the bridge's BYE waits this long for theirs,
    /// so the two do not cross (one of them would get 481).
    static let referrerGrace: TimeAmount = .seconds(2)

    private let loop: EventLoop
    private let transactions: ServerResponder
    private let client: SIPClient
    private let uac: UACLegs
    private let uas: UASLegs
    private let destinations: DestinationGuard
    private let logger: Logger
    private let report: (Call, CallFlow.Event) -> Void
    /// Asks the workers where a REFER's target goes (the decision gate); nil dials the Refer-To target as it is.
    private let ask: () -> TransferDecider?
    /// The call and leg of a dialog of the bridge's, by Call-ID and the bridge's tag.
    private let dialog: (_ callID: String, _ localTag: String) -> (call: Call, leg: LegID)?
    /// Joins the REFER's call (sent on `referrer`) to the party the leg `replaced` of `other` talks to (the B2BUA moves
    /// that party's leg).
    private let join: (_ call: Call, _ referrer: LegID, _ other: Call, _ replaced: LegID) -> Void
    /// By call id: one REFER at a time per call.
    private var subscriptions: [String: Subscription] = [:]
    /// Released referrers whose BYE waits for `referrerGrace`, by call id.
    private var releases: [String: (leg: LegID, bye: Scheduled<Void>)] = [:]

    init(loop: EventLoop, transactions: ServerResponder, client: SIPClient, uac: UACLegs, uas: UASLegs, destinations: DestinationGuard,
         logger: Logger, report: @escaping (Call, CallFlow.Event) -> Void, ask: @escaping () -> TransferDecider?,
         dialog: @escaping (String, String) -> (call: Call, leg: LegID)?, join: @escaping (Call, LegID, Call, LegID) -> Void) {
        self.loop = loop
        self.transactions = transactions
        self.client = client
        self.uac = uac
        self.uas = uas
        self.destinations = destinations
        self.logger = logger
        self.report = report
        self.ask = ask
        self.dialog = dialog
        self.join = join
    }

    /// A REFER in the leg's dialog: 400 without one SIP Refer-To, 491 while the call is not connected or another
    /// REFER runs, 403 when the destination policy refuses the target (as for any target the bridge dials), else
    /// 202 with NOTIFY 100 Trying, and the flow takes it from there. A Refer-To with Replaces is an attended transfer.
    func received(_ request: SIPRequest, key: TransactionKey, from index: LegID, in call: Call) {
        let values = request.headers.values("Refer-To")
        guard values.count == 1, let referTo = NameAddress(values[0]) ?? SIPAnyURI(values[0]).map({ NameAddress(uri: $0) }) else {
            transactions.respond(key, SIPResponse(replyingTo: request, status: 400, reason: values.isEmpty ? "Missing Refer-To" : "Bad Refer-To"))
            return
        }
        guard call.flow.legs[index]?.state == .answered else {
            transactions.respond(key, SIPResponse(replyingTo: request, status: 481))
            return
        }
        guard call.flow.phase == .connected, subscriptions[call.id] == nil else {
            // RFC 3261 §14.1 semantics: the call is busy with a transfer or a join; the phone may try again.
            transactions.respond(key, SIPResponse(replyingTo: request, status: 491))
            return
        }
        guard let target = referTo.uri.sipURI else {
            refuse(request, key: key, reason: "Refer-To Not A SIP URI")
            return
        }
        if let replaces = Self.replaces(in: target) {
            attended(request, key: key, replaces: replaces, from: index, in: call)
            return
        }
        // Other headers in the Refer-To ask for more than a call to the target.
        guard target.headers.isEmpty else {
            refuse(request, key: key, reason: "Refer-To Headers Not Supported")
            return
        }
        if let denial = destinations.check(target.description, place: .transfer, callId: call.id) {
            var response = SIPResponse(replyingTo: request, status: 403)
            response.headers.add("Warning", DestinationGuard.warning(denial))
            transactions.respond(key, response)
            return
        }
        accept(request, key: key, from: index, in: call)
        let referredBy = request.headers["Referred-By"]
        // RFC 3892: the target learns who sent the party its way.
        let headers = referredBy.map { ["Referred-By": $0] } ?? [:]
        guard let decider = ask(), let referrer = call.flow.legs[index]?.role else {
            report(call, .referralRouted(BridgeRoute(targets: [BridgeTarget(uri: target.description)], headers: headers)))
            return
        }
        let offer = transferOffer(for: request, target: target, call: call, from: index, referrer: referrer, referredBy: referredBy)
        decider.decideTransfer(callId: call.id, offer: offer) {
            [self] decision in
            switch decision {
            case .bridge(var route):
                route.headers.merge(headers) { decided, _ in decided }
                report(call, .referralRouted(route))
            case .redirect(let targets):
                // A redirect's targets are tried in turn, as the bridge follows a B leg's 3xx.
                report(call, .referralRouted(BridgeRoute(targets: targets.map { BridgeTarget(uri: $0.uri) }, headers: headers)))
            case .reject(let status, let reason, _):
                report(call, .referralRefused(status: status, reason: reason ?? SIPResponse.standardReason(for: status)))
            case .answer:
                // A transfer target is a party to call; the bridge answering the transferee itself is not one.
                report(call, .referralRefused(status: 488, reason: "Not Acceptable Here"))
            }
        }
    }

    /// The transfer's new leg as a worker sees a new call: the Refer-To target dialled by the party that stays, on the
    /// call's account. No headers: Kamailio vouches for the `X-` headers of a call's INVITE, not for a phone's REFER.
    private func transferOffer(for request: SIPRequest, target: SIPURI, call: Call, from index: LegID, referrer: Leg, referredBy: String?) -> CallOffer {
        let transferee = call.flow.legs.first { $0.value.role != referrer && $0.value.state == .answered }?.value.uri ?? ""
        let peer = call.sip[index]?.destination
        let address = peer?.ipAddress ?? ""
        return CallOffer(sipCallId: request.callID ?? "", requestUri: OfferNormalizer.address(.sip(target), displayName: nil),
                         from: SIPAnyURI(transferee).map { OfferNormalizer.address($0, displayName: nil) } ?? Address(uri: transferee),
                         to: OfferNormalizer.address(.sip(target), displayName: nil),
                         source: Source(address: address, port: peer?.port ?? 0, transport: "udp", peer: address),
                         authUser: call.account, headers: [:], sdp: nil,
                         transfer: TransferOffer(callId: call.id, referrer: referrer, referredBy: referredBy))
    }

    /// 202, the subscription and its first NOTIFY (none with `Refer-Sub: false`); the transfer is under way.
    private func accept(_ request: SIPRequest, key: TransactionKey, from index: LegID, in call: Call) {
        let notifies = request.headers["Refer-Sub"].map { $0.trimmingCharacters(in: .whitespaces).lowercased() != "false" } ?? true
        var accepted = SIPResponse(replyingTo: request, status: 202)
        if !notifies { accepted.headers.add("Refer-Sub", "false") }
        transactions.respond(key, accepted)
        subscriptions[call.id] = Subscription(leg: index, id: request.cseq?.sequence ?? 0, notifies: notifies)
        logger.info("REFER accepted", metadata: ["call.id": "\(call.id)", "sip.refer_to": "\(request.headers["Refer-To"] ?? "")"])
        notify(call, leg: index, status: 100, reason: "Trying")
        report(call, .referred(by: index))
    }

    /// RFC 3891 §3: a Refer-To header `Replaces=call-id;to-tag=..;from-tag=..` (escaped), the tags as the dialog's
    /// other end sees them: `to-tag` is the bridge's own.
    static func replaces(in target: SIPURI) -> (callID: String, toTag: String, fromTag: String)? {
        guard let header = target.headers.first(where: { $0.name.lowercased() == "replaces" }),
              let value = header.value?.removingPercentEncoding else { return nil }
        let parts = value.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        func parameter(_ name: String) -> String? {
            parts.dropFirst().first { $0.lowercased().hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
        }
        return (parts.first ?? "", parameter("to-tag") ?? "", parameter("from-tag") ?? "")
    }

    /// An attended transfer (RFC 3891): the referrer's other call through the bridge is named by Replaces, so the two
    /// parties it talks to are joined in the bridge, and both of the referrer's legs end. A dialog the bridge does not
    /// have (or one in no state to join) gets 403: the bridge cannot send an INVITE with Replaces to a dialog elsewhere.
    private func attended(_ request: SIPRequest, key: TransactionKey, replaces: (callID: String, toTag: String, fromTag: String),
                          from index: LegID, in call: Call) {
        guard let (other, replaced) = dialog(replaces.callID, replaces.toTag), other !== call,
              other.sip[replaced]?.dialog?.id.remoteTag == replaces.fromTag, other.flow.phase == .connected,
              other.flow.legs[replaced]?.state == .answered, subscriptions[other.id] == nil else {
            refuse(request, key: key, reason: "Replaces Names No Call Of This Bridge")
            return
        }
        accept(request, key: key, from: index, in: call)
        join(call, index, other, replaced)
    }

    private func refuse(_ request: SIPRequest, key: TransactionKey, reason: String) {
        transactions.respond(key, SIPResponse(replyingTo: request, status: 403, reason: reason))
    }

    /// NOTIFY of the REFER's progress on the referrer's dialog (RFC 3515 §2.4.4): the status line as a sipfrag; a
    /// final one ends the subscription.
    func notify(_ call: Call, leg index: LegID, status: Int, reason: String) {
        guard let subscription = subscriptions[call.id], subscription.leg == index else { return }
        let final = status >= 200
        if final { subscriptions[call.id] = nil }
        guard subscription.notifies, let leg = call.sip[index], var dialog = leg.dialog else { return }
        var headers: SIPHeaders = []
        headers.add("Event", "refer;id=\(subscription.id)")
        headers.add("Subscription-State", final ? "terminated;reason=noresource" : "active;expires=60")
        let request = dialog.makeRequest(.notify, via: client.makeVia(), body: Array("SIP/2.0 \(status) \(reason)\r\n".utf8),
                                         contentType: "message/sipfrag;version=2.0", extraHeaders: headers)
        leg.dialog = dialog
        uac.sendInDialog(request, leg: leg) { [logger] outcome in
            if case .response(let response) = outcome, !response.isSuccess, !response.isProvisional {
                logger.info("NOTIFY refused", metadata: ["call.id": "\(call.id)", "sip.status": "\(response.status)"])
            }
        }
    }

    /// The referrer's part is done (its final NOTIFY is on its way): BYE after `referrerGrace`, unless it hangs up first.
    func release(_ call: Call, leg index: LegID) {
        call.sip[index]?.sessionTask?.cancel()
        let bye = loop.assumeIsolated().scheduleTask(in: Self.referrerGrace) { [self] in
            releases[call.id] = nil
            uas.bye(call, leg: index)
        }
        releases[call.id] = (index, bye)
    }

    /// A BYE from the leg: a referrer that hangs up needs no BYE of ours, nor NOTIFYs.
    func hungUp(_ call: Call, leg index: LegID) {
        if subscriptions[call.id]?.leg == index { subscriptions[call.id] = nil }
        if releases[call.id]?.leg == index { releases.removeValue(forKey: call.id)?.bye.cancel() }
    }

    /// The call is over: its subscription goes (a released referrer still gets its BYE).
    func finished(_ call: Call) {
        subscriptions[call.id] = nil
    }
}
