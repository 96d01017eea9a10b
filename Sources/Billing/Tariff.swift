/// How talk time is counted for billing: the first `first` seconds are charged as a block, then
/// blocks of `next` seconds, each rounded up. `60/60` bills whole minutes; `1/1` bills each second;
/// `30/6` a first half minute, then six-second steps.
///
/// ```swift
/// let increment = try BillingIncrement(parsing: "60/60")
/// increment.billedSeconds(talkMs: 61_000)   // 120
/// ```
public struct BillingIncrement: Hashable, Sendable, CustomStringConvertible {
    public var first: Int
    public var next: Int

    /// Longest block accepted: a day.
    public static let maximum = 86_400

    public init(first: Int, next: Int) throws(TariffError) {
        guard (1...Self.maximum).contains(first), (1...Self.maximum).contains(next) else {
            throw .badIncrement("\(first)/\(next)")
        }
        self.first = first
        self.next = next
    }

    /// `FIRST/NEXT` in whole seconds, such as `60/60` or `1/1`.
    public init(parsing text: String) throws(TariffError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let first = Int(parts[0]), let next = Int(parts[1]) else { throw .badIncrement(text) }
        try self.init(first: first, next: next)
    }

    public var description: String { "\(first)/\(next)" }

    /// The seconds a call of `talkMs` is billed for: none for a call that never talked; else the
    /// talk time in whole seconds (a started second counts), raised to the first block and then to
    /// whole next blocks.
    public func billedSeconds(talkMs: Int64) -> Int64 {
        guard talkMs > 0 else { return 0 }
        let seconds = (talkMs + 999) / 1000
        let first = Int64(self.first), next = Int64(self.next)
        guard seconds > first else { return first }
        return first + (seconds - first + next - 1) / next * next
    }
}

/// A price per minute with its billing increment: what one call on a route costs.
///
/// ```swift
/// let tariff = Tariff(perMinute: try Money(parsing: "0.0120"), increment: try BillingIncrement(parsing: "60/60"))
/// tariff.rate(talkMs: 61_000)   // 120 s billed, 0.024000
/// ```
public struct Tariff: Hashable, Sendable {
    public var perMinute: Money
    public var increment: BillingIncrement

    public init(perMinute: Money, increment: BillingIncrement) {
        self.perMinute = perMinute
        self.increment = increment
    }

    /// The billed seconds and the charge of a call that talked `talkMs`; a call that never talked
    /// costs nothing. The charge of a part of a minute is rounded up to the next micro-unit.
    public func rate(talkMs: Int64) -> (billedSeconds: Int64, charge: Money) {
        let billed = increment.billedSeconds(talkMs: talkMs)
        let (product, overflow) = billed.multipliedReportingOverflow(by: perMinute.micros)
        // A day at most times an Int64 price: saturate rather than trap on a hand-edited absurd rate.
        let charge = overflow ? Int64.max : (product + 59) / 60
        return (billed, Money(micros: charge))
    }
}

/// Why a rate was refused.
public enum TariffError: Error, Equatable, CustomStringConvertible {
    case badIncrement(String)

    public var description: String {
        switch self {
        case .badIncrement(let text):
            "\"\(text)\" is not a billing increment FIRST/NEXT in whole seconds (1...\(BillingIncrement.maximum)), such as 60/60 or 1/1"
        }
    }
}
