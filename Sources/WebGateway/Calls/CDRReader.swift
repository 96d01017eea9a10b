import Foundation
import GRDB

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
/// `Sources/Workers/Accounting/CDRStore.swift` (migration "v1"). Workers is an executable and cannot
/// be imported, so this reader names only `decided_at`, `caller`, `callee`, `sip_status`, `outcome`,
/// `end_cause`, `auth_account` and `id` in its filters and returns every column as it is, so columns
/// the worker adds later appear without a change here.
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

    func list(_ query: CDRQuery) async throws -> Page {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(2)
        let database = try DatabaseQueue(path: path, configuration: configuration)
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
