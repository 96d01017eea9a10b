/// An amount of money in millionths of the currency unit (micro-units), so sums and rounding are
/// exact integer arithmetic: a rate of 0.0120 a minute is 12,000 micro-units, never a binary fraction.
///
/// ```swift
/// let rate = try Money(parsing: "0.0120")   // 12_000 micro-units
/// rate.description                          // "0.012000"
/// ```
public struct Money: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Millionths of the currency unit.
    public var micros: Int64

    public static let zero = Money(micros: 0)
    /// Digits after the decimal point that an amount may have.
    public static let scale = 6

    public init(micros: Int64) {
        self.micros = micros
    }

    /// Reads a non-negative decimal such as `0.0120`, `12` or `.5`, exactly.
    /// - Throws: ``MoneyError`` naming what is wrong with the text.
    public init(parsing text: String) throws(MoneyError) {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0]
        let fraction = parts.count > 1 ? parts[1] : ""
        guard !(whole.isEmpty && fraction.isEmpty), (whole + fraction).allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw .notADecimal(text)
        }
        guard fraction.count <= Self.scale else { throw .tooPrecise(text) }
        guard whole.count <= 12, let units = Int64(whole.isEmpty ? "0" : whole),
              let fractionMicros = Int64(fraction.padding(toLength: Self.scale, withPad: "0", startingAt: 0)) else {
            throw .tooLarge(text)
        }
        micros = units * 1_000_000 + fractionMicros
    }

    /// Six decimals, as stored: `0.012000`; negative amounts keep their sign.
    public var description: String {
        let magnitude = micros.magnitude
        let fraction = String(magnitude % 1_000_000)
        let padded = String(repeating: "0", count: Self.scale - fraction.count) + fraction
        return "\(micros < 0 ? "-" : "")\(magnitude / 1_000_000).\(padded)"
    }

    public static func < (lhs: Money, rhs: Money) -> Bool { lhs.micros < rhs.micros }
    public static func + (lhs: Money, rhs: Money) -> Money { Money(micros: lhs.micros + rhs.micros) }
    public static func += (lhs: inout Money, rhs: Money) { lhs.micros += rhs.micros }
}

/// Why a money amount or a currency was refused.
public enum MoneyError: Error, Equatable, CustomStringConvertible {
    case notADecimal(String)
    case tooPrecise(String)
    case tooLarge(String)
    case badCurrency(String)

    public var description: String {
        switch self {
        case .notADecimal(let text): "\"\(text)\" is not a non-negative decimal such as 0.0120"
        case .tooPrecise(let text): "\"\(text)\" has more than \(Money.scale) decimals"
        case .tooLarge(let text): "\"\(text)\" is too large an amount"
        case .badCurrency(let text): "\"\(text)\" is not an ISO 4217 currency code such as EUR or USD"
        }
    }
}

/// An ISO 4217 alphabetic code (three capital letters), checked for shape only.
public enum Currency {
    /// `EUR`, `USD`, ...; refuses anything that is not three ASCII capitals.
    public static func validated(_ code: String) throws(MoneyError) -> String {
        guard code.count == 3, code.allSatisfy({ $0.isASCII && $0.isUppercase }) else { throw .badCurrency(code) }
        return code
    }
}
