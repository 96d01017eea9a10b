import Foundation

/// One column value of a row of the accounting worker's `cdrs` table, as SQLite stores it. The
/// worker (`cdrs export`, `cdrs totals`) and the gateway (`/api/v1/cdrs.csv`, `/api/v1/stats`) both
/// read rows into this, so the CSV and the statistics are made by the same code.
public enum CDRColumnValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    var text: String? {
        if case .text(let value) = self { return value }
        return nil
    }

    var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .real(let value): Int64(value.rounded())
        default: nil
        }
    }
}

/// A `cdrs` row by column name.
public typealias CDRRow = [String: CDRColumnValue]

/// CDRs as CSV, one row per call, oldest first: the columns of ``columns``. Money is written in
/// currency units with six decimals (`charge`, `rate_per_minute`), never as a float.
///
/// ```swift
/// let csv = CDRExport.csv(rows)   // "decided_at,bridge_id,...\r\n2026-...,b1,...\r\n"
/// ```
public enum CDRExport {
    public static let columns = [
        "decided_at", "bridge_id", "call_id", "sip_call_id", "caller", "callee", "auth_account", "bill_to", "outcome", "sip_status",
        "end_cause", "offered_at", "ringing_at", "answered_at", "ended_at", "pdd_ms", "setup_ms", "talk_ms", "rate_route",
        "rate_plan", "rate_per_minute", "rate_increment", "billed_seconds", "charge", "currency",
        "recording_path", "recording_ms", "recording_bytes",
    ]

    /// The media type, with the header row RFC 4180 §3 lets a client know of.
    public static let mediaType = "text/csv; charset=utf-8; header=present"

    public static func csv(_ rows: [CDRRow]) -> String {
        var writer = CSVWriter()
        writer.append(columns.map { .text($0) })
        for row in rows {
            writer.append(columns.map { field(row, $0) })
        }
        return writer.text
    }

    private static func field(_ row: CDRRow, _ column: String) -> CSVWriter.Field {
        let money = ["charge": "charge_micros", "rate_per_minute": "rate_per_minute_micros"]
        if let stored = money[column] {
            return row[stored]?.integer.map { .number(Money(micros: $0).description) } ?? .empty
        }
        switch row[column] ?? .null {
        case .null: return .empty
        case .integer(let value): return .number(String(value))
        case .real(let value): return .number(value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value))
        case .text(let value): return .text(value)
        }
    }
}

extension CallRecord {
    /// The record of a `cdrs` row; nil for a row without a readable `decided_at`.
    public init?(row: CDRRow) {
        guard let decided = row["decided_at"]?.text.flatMap(CDRTime.parse) else { return nil }
        let outcome = CallRecord.outcome(cdrOutcome: row["outcome"]?.text ?? "", sipStatus: Int(row["sip_status"]?.integer ?? 0),
                                         endedAt: row["ended_at"]?.text)
        self.init(decidedAt: decided, account: row["bill_to"]?.text ?? row["auth_account"]?.text, route: row["rate_route"]?.text, outcome: outcome,
                  talkMs: outcome == .answered ? row["talk_ms"]?.integer ?? 0 : 0, pddMs: row["pdd_ms"]?.integer,
                  billedSeconds: row["billed_seconds"]?.integer ?? 0, charge: row["charge_micros"]?.integer.map(Money.init(micros:)))
    }
}

/// The bus's and the CDR file's timestamps: ISO 8601 UTC, with or without milliseconds.
public enum CDRTime {
    public static func parse(_ text: String) -> Date? {
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = fractional.date(from: text) { return date }
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        return plain.date(from: text)
    }

    /// `2026-11-26T20:00:00.000Z`: the stored form, which sorts as text.
    public static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
