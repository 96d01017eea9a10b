import BusSchema
import Logging
import Metrics
import SIPCore

/// Who is reachable: Kamailio's registrar outcomes, which its cfg relays to a bridge as out-of-dialog
/// MESSAGEs of type ``RegistrationNotice/contentType`` (route REG_NOTIFY in openser-cfg/kamailio.cfg),
/// become `registration.*` events, journaled and published like the calls' own.
///
/// Only Kamailio can send them: the edge takes SIP from `sip_trusted_sources` alone, before any of this
/// runs. The body is read strictly (``RegistrationNotice/decode(_:)``): a notice that breaks a rule gets a
/// 400 naming it and publishes nothing.
///
/// Loop-bound, like the edge that calls it.
final class RegistrationRelay {
    private let bus: BridgeBus
    private let logger: Logger
    private let refused = Counter(label: "switchboard_registration_notices_refused_total")

    init(bus: BridgeBus, logger: Logger) {
        self.bus = bus
        self.logger = logger
    }

    /// Whether `request` is a registration notice: a MESSAGE outside a dialog whose body is of the notice's
    /// type. Any other MESSAGE gets the edge's usual answer.
    static func isNotice(_ request: SIPRequest) -> Bool {
        guard request.method == .message, request.to?.tag == nil, let type = request.contentType else { return false }
        let mediaType = type.prefix { $0 != ";" }.filter { $0 != " " && $0 != "\t" }.lowercased()
        return mediaType == RegistrationNotice.contentType
    }

    /// The answer to a notice: 200 once its event is queued for the journal and the bus, or the refusal
    /// (400 naming the problem; what ``validateForEndpoint(_:supportedExtensions:supportedContentTypes:)`` refuses).
    func answer(_ request: SIPRequest, toTag: String) -> SIPResponse {
        if let problem = validateForEndpoint(request, supportedExtensions: [], supportedContentTypes: [RegistrationNotice.contentType]) {
            return refuse(request, status: problem.status, reason: problem.reason, headers: problem.headers, toTag: toTag)
        }
        let notice: RegistrationNotice
        do {
            notice = try RegistrationNotice.decode(request.body)
        } catch {
            return refuse(request, status: 400, reason: "Bad Registration Notice (\(error.message))", toTag: toTag)
        }
        bus.publish(callId: nil, notice.change.body(notice.registration))
        Counter(label: "switchboard_registration_events_total", dimensions: [("type", notice.change.rawValue)]).increment()
        logger.debug("registration relayed", metadata: [
            "registration.type": "\(notice.change.rawValue)", "registration.aor": "\(notice.registration.aor)",
            "registration.contact": "\(notice.registration.contact)",
        ])
        return SIPResponse(replyingTo: request, status: 200, toTag: toTag)
    }

    private func refuse(_ request: SIPRequest, status: Int, reason: String, headers: [SIPHeader] = [], toTag: String) -> SIPResponse {
        refused.increment()
        logger.warning("registration notice refused", metadata: [
            "sip.status": "\(status)", "sip.reason": "\(reason)", "sip.call_id": "\(request.callID ?? "-")",
        ])
        var response = SIPResponse(replyingTo: request, status: status, reason: Self.reasonPhrase(reason), toTag: toTag)
        for header in headers { response.headers.add(header.name, header.value) }
        return response
    }

    /// A reason phrase is one line of text (RFC 3261 §25.1): the decoder's message quotes what it read, so
    /// control characters become spaces and a long one is cut.
    static func reasonPhrase(_ text: String) -> String {
        let line = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
        return line.count > 200 ? String(line.prefix(199)) + "…" : line
    }
}
