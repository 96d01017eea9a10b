import Foundation
import HTTPTypes
import Hummingbird

/// An RFC 9457 problem detail: every error the API returns, as `application/problem+json`.
///
/// ```swift
/// throw Problem.badRequest("`to` is required", field: "to")
/// // 400 {"type":"https://switchboard.dev/problems/invalid-request","title":"Invalid request","status":400,
/// //      "detail":"`to` is required","invalid_params":[{"name":"to","reason":"`to` is required"}]}
/// ```
struct Problem: Error, HTTPResponseError, Equatable {
    /// One offending input, RFC 9457 §3 `invalid-params` style.
    struct InvalidParam: Codable, Equatable, Sendable {
        var name: String
        var reason: String
    }

    var status: HTTPResponse.Status
    /// The last path segment of the `type` URI (`invalid-request`, `destination-denied`, ...).
    var kind: String
    var title: String
    var detail: String
    var invalidParams: [InvalidParam] = []
    /// Extra members (`rule`, `bridge_code`, ...), strings only.
    var extensions: [String: String] = [:]
    var headers: HTTPFields = [:]

    static let typeBase = "https://switchboard.dev/problems/"

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var body: [String: Any] = ["type": Self.typeBase + kind, "title": title, "status": Int(status.code), "detail": detail,
                                   "instance": request.uri.path]
        if !invalidParams.isEmpty {
            body["invalid_params"] = invalidParams.map { ["name": $0.name, "reason": $0.reason] }
        }
        for (key, value) in extensions { body[key] = value }
        let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        var fields = headers
        fields[.contentType] = "application/problem+json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func badRequest(_ detail: String, field: String? = nil) -> Problem {
        Problem(status: .badRequest, kind: "invalid-request", title: "Invalid request", detail: detail,
                invalidParams: field.map { [InvalidParam(name: $0, reason: detail)] } ?? [])
    }

    static func unauthorized(_ detail: String) -> Problem {
        Problem(status: .unauthorized, kind: "unauthorized", title: "Not authenticated", detail: detail,
                headers: [.wwwAuthenticate: "Bearer realm=\"switchboard\""])
    }

    static func forbidden(_ detail: String, kind: String = "forbidden", title: String = "Forbidden") -> Problem {
        Problem(status: .forbidden, kind: kind, title: title, detail: detail)
    }

    static func notFound(_ detail: String) -> Problem {
        Problem(status: .notFound, kind: "not-found", title: "Not found", detail: detail)
    }

    /// 429 with `Retry-After` in whole seconds (at least 1).
    static func tooManyRequests(_ detail: String, kind: String = "rate-limited", retryAfter: Duration?) -> Problem {
        var problem = Problem(status: .tooManyRequests, kind: kind, title: "Too many requests", detail: detail)
        if let retryAfter {
            let seconds = max(1, Int(retryAfter.components.seconds) + (retryAfter.components.attoseconds > 0 ? 1 : 0))
            problem.headers[.retryAfter] = String(seconds)
        }
        return problem
    }

    /// The JSON path of a decoding error (`b.uri`, `ring_timeout_s`), for `invalid_params`.
    static func from(decoding error: DecodingError) -> Problem {
        func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            let keys = codingPath + (last.map { [$0] } ?? [])
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return text.isEmpty ? "body" : text.replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let name = path(context.codingPath, key)
            return .badRequest("`\(name)` is required", field: name)
        case .typeMismatch(let type, let context):
            let name = path(context.codingPath)
            return .badRequest("`\(name)` must be \(describe(type))", field: name)
        case .valueNotFound(let type, let context):
            let name = path(context.codingPath)
            return .badRequest("`\(name)` must be \(describe(type)), not null", field: name)
        case .dataCorrupted(let context):
            let name = path(context.codingPath)
            if name == "body" { return .badRequest("the body is not valid JSON", field: "body") }
            return .badRequest("`\(name)`: \(context.debugDescription)", field: name)
        @unknown default:
            return .badRequest("the body could not be read", field: "body")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Double.Type: "a number"
        case is Bool.Type: "true or false"
        default: "a \(type)"
        }
    }
}

/// Turns every error a route throws into a problem detail, so no error leaves as plain text.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            throw problem
        } catch let error as DecodingError {
            throw Problem.from(decoding: error)
        } catch let error as HTTPError {
            throw Problem(status: error.status, kind: error.status == .notFound ? "not-found" : "http-error",
                          title: error.status.reasonPhrase, detail: error.body ?? error.status.reasonPhrase)
        } catch {
            context.logger.error("request failed", metadata: ["http.error": "\(error)"])
            throw Problem(status: .internalServerError, kind: "internal", title: "Internal error",
                          detail: "the gateway failed to handle the request; see its log")
        }
    }
}
