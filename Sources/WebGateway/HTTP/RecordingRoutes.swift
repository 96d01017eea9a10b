import Foundation
import Hummingbird
#if canImport(Glibc)
import Glibc
#endif

/// `GET /recordings` (the recorded calls of the caller's account, every account's for admins) and
/// `GET /recordings/{call_id}` (the file). The accounting worker puts a call's last `call.media.recorded` in its CDR;
/// the CDR's account decides who may see it, as for `GET /cdrs`. A file is served only from `recordings_dir`,
/// checked on its real path (symlinks resolved), so a CDR naming another file, or a link out of the folder, serves
/// nothing.
///
/// ```
/// GET /api/v1/recordings?per_page=20
/// GET /api/v1/recordings/b1-x-7        -> application/vnd.tcpdump.pcap
/// ```
struct RecordingRoutes: Sendable {
    let reader: CDRReader?
    /// Nil: recordings are listed, not served.
    let directory: String?

    static let mediaType = "application/vnd.tcpdump.pcap"

    func register(on group: RouterGroup<GatewayContext>) {
        group.get("recordings", use: list)
        group.get("recordings/{call_id}", use: download)
    }

    struct Listing: Encodable {
        var recordings: [CDRReader.Recording]
        var page: Int
        var perPage: Int
        var total: Int

        enum CodingKeys: String, CodingKey { case recordings, page, perPage = "per_page", total }
    }

    @Sendable func list(_ request: Request, context: GatewayContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let reader = try requireReader()
        let parameters = request.uri.queryParameters
        func number(_ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
            guard let raw = parameters.get(name) else { return value }
            guard let parsed = Int(raw), range.contains(parsed) else {
                throw Problem.badRequest("`\(name)` must be a whole number in \(range.lowerBound)...\(range.upperBound)", field: name)
            }
            return parsed
        }
        let page = try number("page", default: 1, range: 1...1_000_000)
        let perPage = try number("per_page", default: 50, range: 1...500)
        let found = try await read(context) {
            try await reader.recordings(account: principal.policy.admin ? nil : principal.owner, page: page, perPage: perPage)
        }
        let listed = found.recordings.map { found in
            var recording = found
            // A recording the call's end stopped has no size in its event (rtpengine was still writing it): the file's.
            recording.bytes = found.bytes ?? directory.flatMap { Self.servable(found.path, in: $0) }.flatMap(Self.size)
            recording.url = "/api/v1/recordings/"
                + (found.callId.addingPercentEncoding(withAllowedCharacters: CharacterSet.urlPathAllowed) ?? found.callId)
            return recording
        }
        return try json(Listing(recordings: listed, page: page, perPage: perPage, total: found.total))
    }

    @Sendable func download(_ request: Request, context: GatewayContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let callId = try context.parameters.require("call_id")
        guard let directory else { throw Problem.notFound("recordings are not served: the gateway has no recordings_dir configured") }
        let reader = try requireReader()
        let account = principal.policy.admin ? nil : principal.owner
        guard let recording = try await read(context, { try await reader.recording(callId: callId, account: account) }) else {
            throw Problem.notFound("no recording of call \(callId)")
        }
        guard let file = Self.servable(recording.path, in: directory) else {
            context.logger.notice("recording not served", metadata: [
                "gateway.call_id": "\(callId)", "gateway.recording": "\(recording.path)", "gateway.recordings_dir": "\(directory)",
                "gateway.reason": "missing, not a file, or outside recordings_dir",
            ])
            throw Problem.notFound("the recording of call \(callId) is not available")
        }
        let name = String(callId.unicodeScalars.filter { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) })
        let body = try await FileIO().loadFile(path: file, context: context)
        return Response(status: .ok, headers: [.contentType: Self.mediaType,
                                               .contentDisposition: "attachment; filename=\"\(name.isEmpty ? "recording" : name).pcap\""],
                        body: body)
    }

    /// The real path of `path` when it is a regular file inside the real path of `directory`; else nil.
    static func servable(_ path: String, in directory: String) -> String? {
        guard let folder = realPath(directory), let file = realPath(path) else { return nil }
        let inside = folder == "/" ? file.hasPrefix("/") : file.hasPrefix(folder + "/")
        guard inside, let type = try? FileManager.default.attributesOfItem(atPath: file)[.type] as? FileAttributeType,
              type == .typeRegular else { return nil }
        return file
    }

    private static func size(_ file: String) -> Int64? {
        (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.int64Value
    }

    /// `realpath(3)`: absolute, every symlink and `..` resolved; nil when it does not exist.
    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private func requireReader() throws -> CDRReader {
        guard let reader else {
            throw Problem(status: .serviceUnavailable, kind: "no-cdrs", title: "No CDR database",
                          detail: "the gateway has no cdr_database configured")
        }
        return reader
    }

    private func read<T>(_ context: GatewayContext, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            context.logger.error("CDR database unreadable", metadata: ["gateway.error": "\(error)"])
            throw Problem(status: .serviceUnavailable, kind: "no-cdrs", title: "CDR database unavailable",
                          detail: "the CDR database could not be read")
        }
    }
}
