#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A small JSON writer for every bus message (see ``BusMessage``).
///
/// Foundation's `JSONEncoder` costs tens of microseconds per message through its generic
/// container machinery; the bridge sends two messages per call, so they are written here directly
/// into bytes. The golden frames in `Tests/Fixtures/bus` pin the output byte for byte.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    /// Whether the container being written has no member yet (no comma needed).
    private var first = true

    init(capacity: Int = 512) {
        bytes.reserveCapacity(capacity)
    }

    mutating func openObject() {
        bytes.append(UInt8(ascii: "{"))
        first = true
    }

    mutating func closeObject() {
        bytes.append(UInt8(ascii: "}"))
        first = false
    }

    mutating func openArray() {
        bytes.append(UInt8(ascii: "["))
        first = true
    }

    mutating func closeArray() {
        bytes.append(UInt8(ascii: "]"))
        first = false
    }

    /// Starts a member; the value call that follows writes its value.
    mutating func key(_ name: String) {
        separate()
        writeString(name)
        bytes.append(UInt8(ascii: ":"))
    }

    /// Starts an array element.
    mutating func element() {
        separate()
    }

    private mutating func separate() {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
    }

    mutating func string(_ value: String) {
        writeString(value)
    }

    mutating func int(_ value: some BinaryInteger) {
        // Digits straight into the buffer: `String(value)` would allocate for every number of every event.
        guard let value = Int64(exactly: value) else { return bytes.append(contentsOf: String(value).utf8) }
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        Self.appendDigits(value.magnitude, minimumWidth: 1, to: &bytes)
    }

    /// `value` in decimal, zero-padded on the left to `minimumWidth` digits.
    static func appendDigits(_ value: UInt64, minimumWidth: Int, to bytes: inout [UInt8]) {
        var divisor: UInt64 = 1
        var count = 1
        while value / divisor >= 10 {
            divisor *= 10
            count += 1
        }
        if minimumWidth > count { bytes.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: minimumWidth - count)) }
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        }
    }

    mutating func double(_ value: Double) {
        // JSON has no NaN or infinity; none of our fields can hold one, but never emit invalid JSON.
        guard value.isFinite else {
            bytes.append(contentsOf: "null".utf8)
            return
        }
        bytes.append(contentsOf: value.description.utf8)
    }

    mutating func bool(_ value: Bool) {
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    /// Members whose value is nil are left out, as `JSONEncoder` does for optionals.
    mutating func member(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    mutating func member(_ name: String, _ value: Int) {
        key(name)
        int(value)
    }

    mutating func member(_ name: String, _ value: UInt64) {
        key(name)
        int(value)
    }

    mutating func member(_ name: String, _ value: Int?) {
        guard let value else { return }
        member(name, value)
    }

    mutating func member(_ name: String, _ value: Double?) {
        guard let value else { return }
        key(name)
        double(value)
    }

    mutating func member(_ name: String, _ value: Bool) {
        key(name)
        bool(value)
    }

    /// A string-to-string map, keys sorted so output is stable.
    mutating func member(_ name: String, _ map: [String: String]) {
        key(name)
        openObject()
        for (key, value) in map.sorted(by: { $0.key < $1.key }) { member(key, value) }
        closeObject()
    }

    private mutating func writeString(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escape: copy them whole.
        let copied = value.utf8.withContiguousStorageIfAvailable { utf8 -> Bool in
            guard !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else { return false }
            bytes.append(contentsOf: utf8)
            return true
        }
        if copied == true {
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// ISO 8601 in UTC with milliseconds (`2026-11-26T21:08:17.123Z`), the bus' timestamp format.
enum BusTimestamp {
    static func format(_ date: Date) -> String {
        // Truncated to the millisecond. A date read from a timestamp lies a rounding error off its millisecond,
        // often below it: truncating that would move every re-encoded timestamp 1 ms back, so within a
        // microsecond of a whole millisecond counts as on it.
        let exact = date.timeIntervalSince1970 * 1000
        let nearest = exact.rounded()
        let total = abs(exact - nearest) < 0.001 ? nearest : exact.rounded(.down)
        var seconds = time_t((total / 1000).rounded(.down))
        let milliseconds = Int(total - Double(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        // Into one buffer: every event is stamped, so this runs tens of thousands of times a second.
        var text: [UInt8] = []
        text.reserveCapacity(24)
        func pad(_ value: Int32, _ width: Int, then separator: Unicode.Scalar) {
            if value >= 0 {
                JSONWriter.appendDigits(UInt64(value), minimumWidth: width, to: &text)
            } else {
                // Never from 1970 on; written as before, zeros first.
                let digits = String(value)
                text.append(contentsOf: (String(repeating: "0", count: max(0, width - digits.count)) + digits).utf8)
            }
            text.append(UInt8(ascii: separator))
        }
        pad(parts.tm_year + 1900, 4, then: "-")
        pad(parts.tm_mon + 1, 2, then: "-")
        pad(parts.tm_mday, 2, then: "T")
        pad(parts.tm_hour, 2, then: ":")
        pad(parts.tm_min, 2, then: ":")
        pad(parts.tm_sec, 2, then: ".")
        pad(Int32(milliseconds), 3, then: "Z")
        return String(decoding: text, as: UTF8.self)
    }

    /// Nil unless ISO 8601 from 1970 on: no clock on the bus stamps an earlier time, and before 1582 Foundation
    /// reads the Julian calendar where ``format(_:)``'s gmtime writes the Gregorian one, so such a date would
    /// change each time it is re-encoded.
    static func parse(_ text: String) -> Date? {
        let styles: [Date.ISO8601FormatStyle] = [
            .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted),
            .iso8601,
        ]
        for style in styles {
            if let date = try? style.parse(text) { return date.timeIntervalSince1970 >= 0 ? date : nil }
        }
        return nil
    }
}
