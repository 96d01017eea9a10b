import Billing
import GRDB

extension Row {
    /// The row column by column as Billing reads a CDR; the accounting worker's CLI and the gateway both read
    /// `cdrs` rows this way. A blob, which no CDR column holds, reads as null.
    ///
    /// ```swift
    /// let rows = try Row.fetchAll(db, sql: "SELECT * FROM cdrs").map(\.cdrColumns)
    /// ```
    public var cdrColumns: CDRRow {
        var columns: CDRRow = [:]
        for (name, value) in self {
            switch value.storage {
            case .null, .blob: columns[name] = .null
            case .int64(let number): columns[name] = .integer(number)
            case .double(let number): columns[name] = .real(number)
            case .string(let text): columns[name] = .text(text)
            }
        }
        return columns
    }
}
