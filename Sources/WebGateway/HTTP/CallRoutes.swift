import BusSchema
import CallPolicy
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The body of `POST /api/v1/calls`.
struct OriginateRequest: Decodable, Sendable {
    /// Party A, called first (the user's own phone): a number, a SIP user or a `sip:`/`tel:` URI.
    var from: String
    /// Party B, called when A answers.
    var to: String
    /// What party B's phone shows; default: A's address.
    var callerId: String?
    /// How long each phone rings, 1...300 s (the bridge's default `max_ring_timeout`); default: the bridge's `ring_timeout`.
    var ringTimeoutS: Int?
    /// `anchor`: the call's media goes through the bridge's rtpengine, for the media commands; default `relay`.
    var media: String?

    enum CodingKeys: String, CodingKey {
        case from, to, callerId = "caller_id", ringTimeoutS = "ring_timeout_s", media
    }
}

/// `POST /calls` (originate), `GET /calls`, `GET /calls/{id}`, `DELETE /calls/{id}` (hang up), and the media commands
/// on a live call (CallRoutes+Media.swift).
struct CallRoutes: Sendable {
    let table: CallTable
    let bridges: BridgeDirectory
    let metrics: GatewayMetrics
    let rules: DestinationRules
    let sipDomain: String
    let callerIdName: String

    func register(on group: RouterGroup<GatewayContext>) {
        group.post("calls", use: originate)
        group.get("calls", use: list)
        group.get("calls/{id}", use: get)
        group.delete("calls/{id}", use: hangup)
        registerMedia(on: group)
    }

    @Sendable func originate(_ request: Request, context: GatewayContext) async throws -> Response {
        let requestedAt = ContinuousClock.now
        let principal = try context.requirePrincipal()
        let body = try await decode(OriginateRequest.self, from: request, context: context)
        let a = try sipURI(body.from, field: "from")
        let b = try sipURI(body.to, field: "to")
        let callerId = try body.callerId.map { try sipURI($0, field: "caller_id") }
        if let seconds = body.ringTimeoutS, !(1...300).contains(seconds) {
            throw Problem.badRequest("`ring_timeout_s` must be between 1 and 300", field: "ring_timeout_s")
        }
        let media = try body.media.map { name in
            guard let mode = MediaMode(rawValue: name) else { throw Problem.badRequest("`media` must be relay or anchor", field: "media") }
            return mode
        } ?? .relay
        let idempotencyKey = request.headers[.idempotencyKey]
        if let key = idempotencyKey, key.isEmpty || key.count > 128 || !key.unicodeScalars.allSatisfy({ (0x21...0x7E).contains($0.value) }) {
            throw Problem.badRequest("`Idempotency-Key` must be 1 to 128 visible ASCII characters", field: "Idempotency-Key")
        }

        // Both legs cost money: both are destinations. The URIs checked are the ones the bridge gets (and
        // checks again); a denial here is the friendly early answer and sends nothing to the bridge.
        let policy = DestinationPolicy(rules: rules, allow: principal.policy.allow, deny: principal.policy.deny)
        for (field, uri) in [("from", a), ("to", b)] {
            do throws(PolicyDenial) {
                try policy.check(uri)
            } catch {
                metrics.denied(rule: error.rule.rawValue)
                metrics.originate("denied")
                context.logger.notice("originate denied", metadata: [
                    "gateway.rule": "\(error.rule)", "gateway.field": "\(field)", "gateway.destination": "\(error.destination)",
                ])
                throw Self.denied(error.rule.rawValue, pattern: error.pattern, field: field, message: "`\(field)`: " + error.message)
            }
        }
        let user: String? = if case .session = principal.kind { principal.name } else { nil }
        let callers = CallerPolicy(policy: principal.policy, user: user, sipDomain: sipDomain, rules: rules)
        if let denial = callers.check(from: body.from, callerId: body.callerId) {
            metrics.denied(rule: denial.rule)
            metrics.originate("denied")
            context.logger.notice("originate denied", metadata: ["gateway.rule": "\(denial.rule)", "gateway.field": "\(denial.field)"])
            var problem = Problem.forbidden("`\(denial.field)`: " + denial.message, kind: "caller-denied", title: "Caller not allowed")
            problem.extensions = ["rule": denial.rule, "field": denial.field]
            throw problem
        }
        let busKey = idempotencyKey.map { "\(principal.owner):\($0)" }
        // A repeat of an originate whose call is live (a client retrying after a lost response) is the same
        // call, not a new one: it does not count against the cap, and goes to the bridge that has the key.
        let repeated = busKey.flatMap { table.liveCall(owner: principal.owner, idempotencyKey: $0) }
        let release = { if repeated == nil { table.release(owner: principal.owner) } }
        guard repeated != nil || table.reserve(owner: principal.owner, limit: principal.policy.maxConcurrent) else {
            metrics.originate("concurrency")
            metrics.rateLimited(scope: "concurrency")
            throw Problem.tooManyRequests("\(principal.owner) already has \(principal.policy.maxConcurrent) live calls, its cap; "
                                          + "hang one up or wait for one to end", kind: "concurrency-limit", retryAfter: .seconds(5))
        }
        guard let bridge = repeated.flatMap({ bridges.client(id: $0.bridge) }) ?? bridges.next() else {
            release()
            throw Problem(status: .serviceUnavailable, kind: "no-bridge", title: "No bridge", detail: "no bridge is configured")
        }
        let ringTimeoutMs = body.ringTimeoutS.map { $0 * 1000 }
        let command = Originate(
            a: Party(uri: a, callerId: CallerID(uri: b, displayName: callerIdName), ringTimeoutMs: ringTimeoutMs),
            b: Party(uri: b, callerId: CallerID(uri: callerId ?? a), ringTimeoutMs: ringTimeoutMs),
            idempotencyKey: busKey,
            account: principal.owner,
            media: media)
        let result: (callId: String, existing: Bool)
        do {
            let start = ContinuousClock.now
            result = try await bridge.originate(command)
            metrics.commandLatency.record(.now - start)
        } catch {
            release()
            metrics.originate("bridge_error")
            throw Self.problem(for: error, bridge: bridge.id)
        }
        if result.existing {
            release()
        } else {
            table.commit(owner: principal.owner, callId: result.callId, bridge: bridge.id, from: a, to: b, idempotencyKey: busKey,
                         requestedAt: requestedAt)
        }
        metrics.originate(result.existing ? "existing" : "accepted")
        context.logger.info("originated", metadata: ["gateway.call_id": "\(result.callId)", "gateway.bridge": "\(bridge.id)",
                                                     "gateway.existing": "\(result.existing)"])
        let call = table.call(id: result.callId)
        let response = OriginateResponse(callId: result.callId, existing: result.existing, bridge: bridge.id,
                                         state: call?.state ?? .live(.dialing), location: "/api/v1/calls/\(result.callId)")
        return try json(response, status: result.existing ? .ok : .created, headers: [.location: response.location])
    }

    @Sendable func list(_ request: Request, context: GatewayContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        return try json(CallList(calls: table.liveCalls(owner: principal.policy.admin ? nil : principal.owner)))
    }

    @Sendable func get(_ request: Request, context: GatewayContext) async throws -> Response {
        try json(visibleCall(context: context))
    }

    @Sendable func hangup(_ request: Request, context: GatewayContext) async throws -> Response {
        let (call, bridge) = try liveCall(context: context)
        do {
            try await bridge.hangup(callId: call.callId)
        } catch {
            throw Self.problem(for: error, bridge: bridge.id)
        }
        context.logger.info("hangup sent", metadata: ["gateway.call_id": "\(call.callId)"])
        var ending = call
        ending.state = .live(.ending)
        return try json(ending, status: .accepted)
    }

    /// The call named in the path and its bridge, for a command: 404 as ``visibleCall(context:)``, 409 once it has
    /// ended, 503 when its bridge is no longer configured.
    func liveCall(context: GatewayContext) throws -> (LiveCall, any BridgeClient) {
        let call = try visibleCall(context: context)
        guard call.isLive else {
            throw Problem(status: .conflict, kind: "invalid-state", title: "Call has ended",
                          detail: "call \(call.callId) ended already (\(call.endCause ?? "?"))")
        }
        guard let bridge = bridges.client(id: call.bridge) else {
            throw Problem(status: .serviceUnavailable, kind: "no-bridge", title: "No bridge",
                          detail: "bridge \(call.bridge) of call \(call.callId) is not configured")
        }
        return (call, bridge)
    }

    /// The call named in the path, if the principal may see it (its own, or any for admins); else 404.
    private func visibleCall(context: GatewayContext) throws -> LiveCall {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        guard let call = table.call(id: id), principal.policy.admin || call.owner == principal.owner else {
            throw Problem.notFound("no call \(id) (ended calls are in /api/v1/cdrs)")
        }
        return call
    }

    /// A number or user name becomes `sip:X@domain`; URIs are checked for what may not be in them. What passes is
    /// exactly what the OpenAPI document's `Party` pattern and `maxLength` describe (a client that follows the
    /// document never gets this 400): at most 256 characters; spaces and tabs around it are dropped; then either a
    /// `sip:`, `sips:` or `tel:` URI (any case) with no `<`, `>`, `"`, space, tab, CR or LF, or a number or user name of
    /// ASCII letters, digits, `+`, `.` and `_`, which may be written with spaces, `-`, `(` and `)` (`+1 (202) 555-0100`).
    func sipURI(_ value: String, field: String) throws -> String {
        let text = value.trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
        let lower = text.lowercased()
        let isURI = lower.hasPrefix("sip:") || lower.hasPrefix("sips:") || lower.hasPrefix("tel:")
        if isURI {
            guard value.unicodeScalars.count <= 256, !text.drop(while: { $0 != ":" }).dropFirst().isEmpty,
                  text.rangeOfCharacter(from: CharacterSet(charactersIn: "<>\"\r\n\t ")) == nil else {
                throw Problem.badRequest("`\(field)` is not a usable sip:/sips:/tel: URI (empty, over 256 characters, or with <, >, \", "
                                         + "white space or a line break)", field: field)
            }
            return text
        }
        let number = text.unicodeScalars.filter { !" -()".unicodeScalars.contains($0) }
        guard value.unicodeScalars.count <= 256, !number.isEmpty,
              number.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "+._".unicodeScalars.contains($0)) }) else {
            throw Problem.badRequest("`\(field)` must be a phone number, a SIP user name or a sip:/tel: URI", field: field)
        }
        return "sip:\(String(number))@\(sipDomain)"
    }

    /// 403 `destination-denied` naming the rule (and the field and pattern when known).
    static func denied(_ rule: String, pattern: String?, field: String?, message: String) -> Problem {
        var problem = Problem.forbidden(message, kind: "destination-denied", title: "Destination denied")
        problem.extensions = ["rule": rule]
        if let field { problem.extensions["field"] = field }
        if let pattern { problem.extensions["pattern"] = pattern }
        return problem
    }

    /// Bus error codes as HTTP.
    static func problem(for error: any Error, bridge: String) -> Problem {
        guard let error = error as? BridgeError else {
            return Problem(status: .badGateway, kind: "bridge-error", title: "Bridge error", detail: "bridge \(bridge): \(error)")
        }
        var problem: Problem
        switch error.code {
        case .unknownCall:
            problem = .notFound(error.message)
        case .invalidState:
            problem = Problem(status: .conflict, kind: "invalid-state", title: "Invalid state", detail: error.message)
        case .accountLimit:
            problem = .tooManyRequests(error.message, kind: "concurrency-limit", retryAfter: .seconds(5))
        case .limitExceeded:
            problem = Problem(status: .serviceUnavailable, kind: "bridge-busy", title: "Bridge at capacity", detail: error.message,
                              headers: [.retryAfter: "5"])
        case .shuttingDown, .unreachable:
            problem = Problem(status: .serviceUnavailable, kind: "bridge-unavailable", title: "Bridge unavailable",
                              detail: "bridge \(bridge): \(error.message)", headers: [.retryAfter: "5"])
        case .timeout:
            problem = Problem(status: .gatewayTimeout, kind: "bridge-timeout", title: "Bridge did not answer",
                              detail: "bridge \(bridge) did not answer in time")
        case .badCommand:
            problem = .badRequest("the bridge refused the command: \(error.message)")
        case .mediaUnavailable:
            // No rtpengine, rtpengine down, a call whose media is not anchored, no room for a recording: the call goes on.
            problem = Problem(status: .serviceUnavailable, kind: "media-unavailable", title: "Media unavailable",
                              detail: "bridge \(bridge): \(error.message)")
        case .policyDenied:
            // The bridge's message is `rule: sentence`; the rule is what clients match on.
            let rule = error.message.prefix { $0 != ":" }
            problem = denied(String(rule), pattern: nil, field: nil, message: "the bridge refused the destination: \(error.message)")
        default:
            problem = Problem(status: .badGateway, kind: "bridge-error", title: "Bridge error", detail: "bridge \(bridge): \(error)")
        }
        problem.extensions["bridge_code"] = error.code.rawValue
        return problem
    }
}

struct OriginateResponse: Codable, Sendable {
    var callId: String
    var existing: Bool
    var bridge: String
    var state: LiveCallState
    var location: String

    enum CodingKeys: String, CodingKey { case callId = "call_id", existing, bridge, state, location }
}

struct CallList: Codable, Sendable {
    var calls: [LiveCall]
}

/// Reads a JSON body (at most 64 KiB); a missing body or a wrong field is a 400 naming it.
func decode<T: Decodable>(_ type: T.Type, from request: Request, context: GatewayContext) async throws -> T {
    var request = request
    let buffer = try await request.collectBody(upTo: 64 * 1024)
    guard buffer.readableBytes > 0 else { throw Problem.badRequest("a JSON body is required", field: "body") }
    do {
        return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
    } catch let error as DecodingError {
        throw Problem.from(decoding: error)
    }
}

/// A JSON response (snake_case keys come from the types' CodingKeys).
func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var fields = headers
    fields[.contentType] = "application/json"
    return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}
