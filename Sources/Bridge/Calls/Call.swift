import BusSchema
import Foundation
import NIOCore
import SIPCore

/// One leg of a call, numbered in the order the flow created it: `.first` is the first party A (the
/// inbound caller, or the first party an originate calls), and every B attempt or transfer target gets
/// the next number. A number, not a role: a transfer replaces A or B with a new leg, whose role
/// (`Leg.a` / `Leg.b` on the bus) is kept in the flow's `FlowLeg`.
struct LegID: Hashable, Comparable, Sendable, CustomStringConvertible {
    let number: Int

    init(_ number: Int) {
        self.number = number
    }

    static let first = LegID(0)

    var next: LegID { LegID(number + 1) }

    static func < (lhs: LegID, rhs: LegID) -> Bool { lhs.number < rhs.number }

    var description: String { "\(number)" }
}

/// A bridged or originated call: its flow, and the SIP side of each leg.
final class Call {
    let id: String
    var flow: CallFlow
    var sip: [LegID: LegSIP] = [:]
    let account: String?
    /// Max-Forwards of the INVITEs this call's legs send: one less than the caller's (RFC 7332 §3), so
    /// a loop back into a bridge runs out of hops; 70 for a call the bridge places itself.
    let maxForwards: Int
    let createdWall: Date
    var connectedWall: Date?
    /// The `o=` each leg's peer sees, kept across every body the bridge sends it in one dialog: the caller's early
    /// dialogs (one per B early dialog) are sessions of their own, so the tag they go in is kept too.
    private var origins: [LegID: LegOrigin] = [:]
    typealias LegOrigin = (tag: String?, origin: SDPOrigin)
    /// The caller's P-Asserted-Identity, Privacy and Diversion, for the legs the call places. They are trusted because
    /// the bridge takes INVITEs from its `sip_trusted_sources` only, and the proxy there drops a phone's own
    /// (openser-cfg's route[IDENTITY]).
    let callerIdentity: [SIPHeader]
    /// The Reason (RFC 3326) of the BYE that ended the call, for the BYEs the bridge sends the other legs.
    var byeReasons: [String] = []
    /// The caller's offer, kept only when the route may ask the workers for a failure step (`on_failure: ask`).
    var offer: CallOffer?
    /// The failure step's decision request while it is out.
    var pendingStep: String?
    /// Non-nil when the call's media is anchored in rtpengine (`MediaService`).
    var media: CallMedia?
    /// Why anchoring the call's media failed (the call went on relayed), for the media commands' replies.
    var mediaFailure: String?
    /// Non-nil while one of the call's SDPs is at rtpengine: the flow events that came meanwhile, in order.
    var heldEvents: [CallFlow.Event]?

    static let identityHeaders: Set<String> = ["p-asserted-identity", "privacy", "diversion"]

    init(id: String, flow: CallFlow, account: String?, maxForwards: Int = 70, callerIdentity: [SIPHeader] = []) {
        self.id = id
        self.flow = flow
        self.account = account
        self.maxForwards = maxForwards
        self.callerIdentity = callerIdentity
        createdWall = Date()
    }

    /// `sdp` as leg `leg`'s peer gets it: whoever wrote it, under one origin for the whole call, its version up by
    /// one with each change (RFC 3264 §8), and as an answer never `a=setup:actpass`.
    /// `dialogTag` names the caller's early dialog a provisional or the 2xx goes in; a new one starts a new origin.
    func stamp(_ sdp: [UInt8]?, to leg: LegID, dialogTag: String? = nil, answer: Bool) -> [UInt8]? {
        guard let sdp else { return nil }
        if let dialogTag, let kept = origins[leg], kept.tag != dialogTag { origins[leg] = nil }
        var entry: LegOrigin = origins[leg] ?? (tag: dialogTag, origin: SDPOrigin())
        defer { origins[leg] = entry }
        return entry.origin.stamp(sdp, answer: answer)
    }

    /// A leg that moves to another call (an attended transfer) takes the origin its peer knows along.
    func removeOrigin(of leg: LegID) -> LegOrigin? {
        origins.removeValue(forKey: leg)
    }

    func adoptOrigin(_ origin: LegOrigin?, for leg: LegID) {
        origins[leg] = origin
    }

    /// A relayed body: stamped when it is SDP; any other (INFO's DTMF, a SIP-I multipart) passes as it is.
    func stamp(_ body: [UInt8], contentType: String?, to leg: LegID, answer: Bool) -> [UInt8] {
        guard MessageBody.isSDP(body, contentType: contentType) else { return body }
        return stamp(body, to: leg, answer: answer) ?? body
    }
}

/// A leg's SIP side: a class, so that a call's leg table holds references (a dictionary stores its
/// values inline in every slot, used or not). What only the call's setup needs sits in boxes that
/// are dropped once done, so an established leg carries little: 10,000 calls are 20,000 of these.
final class LegSIP {
    /// Where the leg's own INVITE exchange stands (UAC legs).
    indirect enum Setup {
        /// Our INVITE, unanswered: CANCEL is built from it.
        case inviting(SIPRequest)
        /// The 2xx that answered it, until the flow ACKs it.
        case answered(SIPResponse)
    }

    /// A 2xx this bridge sent as UAS in the leg's dialog, until its ACK: the machine, the server transaction
    /// it goes out through, and the timer the machine asked for.
    final class Answer {
        var machine: UAS2xxRetransmission
        let key: TransactionKey
        /// The 2xx to the INVITE that made the dialog, not to a re-INVITE.
        let initial: Bool
        var timer: Scheduled<Void>?

        init(machine: UAS2xxRetransmission, key: TransactionKey, initial: Bool) {
            self.machine = machine
            self.key = key
            self.initial = initial
        }
    }

    /// A re-INVITE of this leg's peer that the bridge relays to the other leg, until the requester has its final
    /// response and a far 2xx is ACKed: the relay's machine, the requester's server transaction and request,
    /// the other leg, and the re-INVITE sent there (a CANCEL is built from it).
    final class Relay {
        var machine: RelayedReinvite
        let key: TransactionKey
        let request: SIPRequest
        let far: LegID
        let farInvite: SIPRequest
        let session: SessionRefresh?
        var timerC: Scheduled<Void>?

        init(machine: RelayedReinvite, key: TransactionKey, request: SIPRequest, far: LegID, farInvite: SIPRequest,
             session: SessionRefresh?) {
            self.machine = machine
            self.key = key
            self.request = request
            self.far = far
            self.farInvite = farInvite
            self.session = session
        }
    }

    /// The caller's reliable provisionals (RFC 3262 §3): the machine, the INVITE transaction they go out through,
    /// and the retransmission timer the machine asked for.
    final class Reliable {
        var machine: ReliableProvisionals
        let key: TransactionKey
        var timer: Scheduled<Void>?

        init(machine: ReliableProvisionals, key: TransactionKey) {
            self.machine = machine
            self.key = key
        }
    }

    /// A B leg's early dialog (RFC 3261 §12.1.2) the bridge PRACKs in, and the RSeq of the last reliable
    /// provisional it PRACKed there (RFC 3262 §4).
    struct ReliableEarly {
        var dialog: Dialog
        var rseq: UInt32
    }

    /// A B leg's early dialog as the caller sees it: the B leg and the To tag B gave it (nil for a provisional
    /// without one).
    struct EarlyKey: Hashable {
        let leg: LegID
        let remoteTag: String?
    }

    /// What a relayed re-INVITE or UPDATE does to its requester's session timer (RFC 4028 §9): the timer as the
    /// request leaves it and the header fields for the 2xx, both taken only once the far side answers 2xx.
    struct SessionRefresh {
        let requester: SessionTimer
        let headers: [SIPHeader]
    }

    let sipCallId: String
    /// Leg A: the To tag of the early dialog the caller is answered in, once answered.
    var localTag: String
    var setup: Setup?
    /// The caller's INVITE transaction (the inbound leg A).
    let serverKey: TransactionKey?
    var dialog: Dialog?
    var destination: SocketAddress
    var gotProvisional = false
    var cancelWanted = false
    /// The 2xx was ACKed, with this body: a retransmitted 2xx gets the same ACK again.
    var acked = false
    var ackBody: [UInt8] = []
    /// A 2xx we sent as UAS, retransmitted until its ACK.
    var unacknowledged: Answer?
    /// The call ended before the caller ACKed our 2xx to its INVITE: the BYE follows that ACK, or the 2xx's
    /// give-up (RFC 3261 §15).
    var byeAfterACK = false
    var ringTimer: Scheduled<Void>?
    /// A re-INVITE or other request of ours in flight in the dialog (glare: a peer's gets 491).
    var busy = false
    /// The peer's re-INVITE the bridge is relaying to the other leg.
    var relaying: Relay?
    /// The leg's session timer (RFC 4028): the bridge ends the timer of each leg itself, as its UA.
    var sessionTimer: SessionTimer
    /// The refresh or expiry `sessionTimer` asks for next, on the call's loop.
    var sessionTask: Scheduled<Void>?
    /// When the leg's session ends unless refreshed (its last refresh plus the interval): a failed refresh is
    /// retried until then.
    var sessionEnds: NIODeadline?
    /// Leg A before its answer: the To tag the caller knows each B early dialog by, one each (RFC 3261 §13.2.1,
    /// RFC 6337 §3.1), so the 2xx of another B is a new dialog to the caller and its SDP a new answer.
    var earlyTags: [EarlyKey: String] = [:]
    /// Leg A whose INVITE supports 100rel: its provisionals go reliably.
    var reliable: Reliable?
    /// A B leg: the To tag of its latest provisional, the early dialog the caller hears it in.
    var earlyTag: String?
    /// A B leg: its early dialogs with a reliable provisional, by B's To tag, until answered.
    var reliableEarly: [String: ReliableEarly] = [:]
    /// The peer's Allow lists UPDATE: the bridge's refreshes go as UPDATE, else as re-INVITE (RFC 4028 §7.4).
    var peerAllowsUpdate = false

    init(sipCallId: String, localTag: String, invite: SIPRequest? = nil, serverKey: TransactionKey? = nil,
         destination: SocketAddress, sessionTimer: SessionTimer) {
        self.sipCallId = sipCallId
        self.localTag = localTag
        self.sessionTimer = sessionTimer
        setup = invite.map(Setup.inviting)
        self.serverKey = serverKey
        self.destination = destination
    }

    /// Whether `message`'s Allow lists UPDATE.
    static func allowsUpdate(_ message: some SIPMessageFields) -> Bool {
        message.headers.values("Allow").contains { $0.trimmingCharacters(in: .whitespaces).uppercased() == "UPDATE" }
    }

    /// A target refresh request or 2xx from the peer that lists Allow says anew what it takes (a PBX that moved
    /// the call to another phone, say); one without Allow changes nothing.
    func readAllow(of message: some SIPMessageFields) {
        if message.headers.contains("Allow") { peerAllowsUpdate = Self.allowsUpdate(message) }
    }

    /// Our INVITE while it is unanswered.
    var invite: SIPRequest? {
        if case .inviting(let invite) = setup { invite } else { nil }
    }
}
