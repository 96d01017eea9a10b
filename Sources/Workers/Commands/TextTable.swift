import Foundation

/// A plain-text table with columns padded to their widest cell, for `list` commands.
///
/// ```swift
/// TextTable.render(header: ["ID", "PREFIX"], rows: [["1", "1202"]])
/// // ID  PREFIX
/// // 1   1202
/// ```
enum TextTable {
    static func render(header: [String], rows: [[String]]) -> String {
        let lines = [header] + rows
        let widths = header.indices.map { column in lines.map { $0[column].count }.max() ?? 0 }
        return lines.map { cells in
            zip(cells, widths).map { cell, width in cell.padding(toLength: width, withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
                .trimmingSuffix()
        }.joined(separator: "\n")
    }
}

private extension String {
    func trimmingSuffix() -> String {
        String(self[..<(lastIndex(where: { $0 != " " }).map { index(after: $0) } ?? startIndex)])
    }
}
