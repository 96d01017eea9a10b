import Billing
import Foundation
import GRDB
import SQLiteStore

/// Filters and paging of `GET /api/v1/cdrs`.
struct CDRQuery: Equatable, Sendable {
    var page = 1
    var perPage = 50
    /// Caller / callee prefix.
    var from: String?
    var to: String?
    /// A SIP status (`486`), or an outcome / end cause (`routed`, `rejected`, `normal_clearing`).
    var status: String?
    /// ISO 8601 bounds on `decided_at`, inclusive / exclusive.
    var since: String?
    var until: String?
    /// Non-admin principals see only CDRs whose account is theirs.
    var account: String?
}

/// Reads the accounting worker's CDR file, read-only.
///
/// Coupling, on purpose and in one place: the `cdrs` table and its columns are the schema of
/// `Sources/Workers/Accounting/CDRStore.swift` (migrations "v1" and, for the rating columns and
/// `rating_settings`, "v3"). Workers is an executable and cannot be imported, so this reader names
/// only `decided_at`, `caller`, `callee`, `sip_status`, `outcome`, `end_cause`, `auth_account` and `id`
/// in its filters and returns every column as it is, so columns the worker adds later appear without
/// a change here. The recordings (``recordings(account:page:perPage:)``, ``recording(callId:account:)``) name
/// `recording_path`, `recording_ms` and `recording_bytes` (migration "v4"). The CSV export and the statistics hand whole rows to Billing (`CDRExport`,
/// `CallRecord(row:)`), the code the worker's `cdrs export` and `cdrs totals` use, which names the
/// rating columns.
///
/// ```swift
/// let reader = CDRReader(path: "cdr.sqlite")
/// let page = try await reader.list(CDRQuery(perPage: 20, status: "rejected"))
/// ```
struct CDRReader: Sendable {
    let path: String

    struct Page: Sendable {
        var records: [[String: any Sendable]]
        var total: Int
    }

    /// The worker's file, read-only, waiting up to 2 s for its writer.
    private func open() throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(2)
        return try DatabaseQueue(path: path, configuration: configuration)
    }

    func list(_ query: CDRQuery) async throws -> Page {
        let database = try open()
        defer { try? database.close() }
        return try await database.read { db in
            var clauses: [String] = []
            var arguments: StatementArguments = []
            func add(_ clause: String, _ values: [any DatabaseValueConvertible]) {
                clauses.append(clause)
                arguments += StatementArguments(values)
            }
            if let from = query.from { add("caller LIKE ? ESCAPE '\\'", [Self.prefixPattern(from)]) }
            if let to = query.to { add("callee LIKE ? ESCAPE '\\'", [Self.prefixPattern(to)]) }
            if let status = query.status {
                if let code = Int(status) { add("sip_status = ?", [code]) } else { add("(outcome = ? OR end_cause = ?)", [status, status]) }
            }
            if let since = query.since { add("decided_at >= ?", [since]) }
            if let until = query.until { add("decided_at < ?", [until]) }
            if let account = query.account { add("auth_account = ?", [account]) }
            let filter = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM cdrs \(filter)", arguments: arguments) ?? 0
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM cdrs \(filter) ORDER BY decided_at DESC, id DESC LIMIT ? OFFSET ?",
                                        arguments: arguments + [query.perPage, (query.page - 1) * query.perPage])
            return Page(records: rows.map(Self.json), total: total)
        }
    }

    /// Rows decided in `since..<until` (of one account, if given), oldest first, and the file's
    /// currency (nil before the worker's rating migration). More than `limit` rows: ``TooMany``.
    func rows(since: String, until: String, account: String?, limit: Int) async throws -> (rows: [CDRRow], currency: String?) {
        let database = try open()
        defer { try? database.close() }
        return try await database.read { db in
            var filter = "WHERE decided_at >= ? AND decided_at < ?"
            var arguments: StatementArguments = [since, until]
            if let account {
                filter += " AND auth_account = ?"
                arguments += [account]
            }
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM cdrs \(filter)", arguments: arguments) ?? 0
            guard count <= limit else { throw TooMany(count: count, limit: limit) }
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM cdrs \(filter) ORDER BY decided_at, id", arguments: arguments)
            let currency = try db.tableExists("rating_settings")
                ? String.fetchOne(db, sql: "SELECT currency FROM rating_settings WHERE id = 1") : nil
            return (rows.map(\.cdrColumns), currency)
        }
    }

    /// One recorded call: its CDR's ids, account and times, and the recording's file, length and size. Its JSON (in
    /// `GET /recordings`) leaves out the file's path on the media host, and has the `url` the route sets.
    struct Recording: Equatable, Sendable, Encodable {
        var callId: String
        var bridgeId: String
        var account: String?
        var caller: String?
        var callee: String?
        /// When the call was offered (or originated); `decided_at` for a CDR without it.
        var startedAt: String
        var path: String
        var durationMs: Int64?
        var bytes: Int64?
        var url: String?

        enum CodingKeys: String, CodingKey {
            case callId = "call_id", bridgeId = "bridge_id", account, caller, callee, startedAt = "started_at"
            case durationMs = "duration_ms", bytes, url
        }
    }

    /// The recorded calls (of one account, if given), newest first, and how many there are. A file written before
    /// the worker's "v4" migration has none.
    func recordings(account: String?, page: Int, perPage: Int) async throws -> (recordings: [Recording], total: Int) {
        let database = try open()
        defer { try? database.close() }
        return try await database.read { db in
            guard try Self.hasRecordings(db) else { return ([], 0) }
            var filter = "WHERE recording_path IS NOT NULL"
            var arguments: StatementArguments = []
            if let account {
                filter += " AND auth_account = ?"
                arguments += [account]
            }
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM cdrs \(filter)", arguments: arguments) ?? 0
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM cdrs \(filter) ORDER BY decided_at DESC, id DESC LIMIT ? OFFSET ?",
                                        arguments: arguments + [perPage, (page - 1) * perPage])
            return (rows.map(Self.recording), total)
        }
    }

    /// The recording of call `callId` (of one account, if given); nil when it has none, or is another account's.
    func recording(callId: String, account: String?) async throws -> Recording? {
        let database = try open()
        defer { try? database.close() }
        return try await database.read { db in
            guard try Self.hasRecordings(db) else { return nil }
            var sql = "SELECT * FROM cdrs WHERE call_id = ? AND recording_path IS NOT NULL"
            var arguments: StatementArguments = [callId]
            if let account {
                sql += " AND auth_account = ?"
                arguments += [account]
            }
            // Call ids carry their bridge's prefix; the newest row wins should two bridges ever share one.
            return try Row.fetchOne(db, sql: sql + " ORDER BY decided_at DESC, id DESC LIMIT 1", arguments: arguments).map(Self.recording)
        }
    }

    private static func hasRecordings(_ db: Database) throws -> Bool {
        try db.columns(in: "cdrs").contains { $0.name == "recording_path" }
    }

    private static func recording(_ row: Row) -> Recording {
        Recording(callId: row["call_id"], bridgeId: row["bridge_id"], account: row["auth_account"], caller: row["caller"],
                  callee: row["callee"], startedAt: row["offered_at"] ?? row["decided_at"], path: row["recording_path"],
                  durationMs: row["recording_ms"], bytes: row["recording_bytes"])
    }

    /// A period with more CDRs than one response may carry.
    struct TooMany: Error {
        var count: Int
        var limit: Int
    }

    private static func prefixPattern(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
    }

    private static func json(_ row: Row) -> [String: any Sendable] {
        var object: [String: any Sendable] = [:]
        for (column, value) in row {
            switch value.storage {
            case .null: object[column] = NSNull()
            case .int64(let number): object[column] = column == "fallback" ? number != 0 : number
            case .double(let number): object[column] = number
            case .string(let text): object[column] = text
            case .blob: continue
            }
        }
        return object
    }
}
