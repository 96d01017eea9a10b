import Billing
import Testing

/// Known calls → known charges: the increments, rounding, and calls that cost nothing.
@Suite struct TariffTests {
    static let cent = try! Money(parsing: "0.0120")

    @Test func moneyIsReadAndWrittenExactly() throws {
        #expect(try Money(parsing: "0.0120").micros == 12_000)
        #expect(try Money(parsing: "12").micros == 12_000_000)
        #expect(try Money(parsing: ".5").micros == 500_000)
        #expect(try Money(parsing: "0.000001").micros == 1)
        #expect(Money(micros: 24_000).description == "0.024000")
        #expect(Money(micros: 1_234_567_890).description == "1234.567890")
        #expect(throws: MoneyError.tooPrecise("0.0000001")) { try Money(parsing: "0.0000001") }
        #expect(throws: MoneyError.notADecimal("-1")) { try Money(parsing: "-1") }
        #expect(throws: MoneyError.notADecimal("1e3")) { try Money(parsing: "1e3") }
        #expect(throws: MoneyError.notADecimal("")) { try Money(parsing: "") }
        #expect(throws: MoneyError.notADecimal(".")) { try Money(parsing: ".") }
        #expect(throws: MoneyError.tooLarge("9999999999999")) { try Money(parsing: "9999999999999") }
        #expect(try Currency.validated("EUR") == "EUR")
        #expect(throws: MoneyError.badCurrency("eur")) { try Currency.validated("eur") }
    }

    @Test func incrementsAreParsedAndChecked() throws {
        #expect(try BillingIncrement(parsing: "60/60") == BillingIncrement(first: 60, next: 60))
        #expect(try BillingIncrement(parsing: "30/6").description == "30/6")
        for bad in ["60", "60/", "0/1", "1/0", "-1/1", "a/b", "60/60/60", "1/86401"] {
            #expect(throws: TariffError.badIncrement(bad)) { try BillingIncrement(parsing: bad) }
        }
    }

    @Test(arguments: [
        // (talk ms, billed seconds with 60/60, with 1/1, with 30/6)
        (0, 0, 0, 0),
        (1, 60, 1, 30),
        (1_000, 60, 1, 30),
        (1_001, 60, 2, 30),
        (30_000, 60, 30, 30),
        (31_000, 60, 31, 36),
        (60_000, 60, 60, 60),
        (61_000, 120, 61, 66),
        (125_400, 180, 126, 126),
    ] as [(Int64, Int64, Int64, Int64)])
    func billedSecondsRoundUpToTheIncrement(talkMs: Int64, minutes: Int64, seconds: Int64, thirtySix: Int64) throws {
        #expect(try BillingIncrement(parsing: "60/60").billedSeconds(talkMs: talkMs) == minutes)
        #expect(try BillingIncrement(parsing: "1/1").billedSeconds(talkMs: talkMs) == seconds)
        #expect(try BillingIncrement(parsing: "30/6").billedSeconds(talkMs: talkMs) == thirtySix)
    }

    @Test func chargesAreExactAndRoundedUpToAMicroUnit() throws {
        let minutes = Tariff(perMinute: Self.cent, increment: try BillingIncrement(parsing: "60/60"))
        let seconds = Tariff(perMinute: Self.cent, increment: try BillingIncrement(parsing: "1/1"))
        #expect(minutes.rate(talkMs: 61_000) == (120, Money(micros: 24_000)))
        #expect(seconds.rate(talkMs: 61_000) == (61, Money(micros: 12_200)))
        // 7 s at 0.0100/min = 0.0011666…: rounded up, never down
        let odd = Tariff(perMinute: try Money(parsing: "0.0100"), increment: try BillingIncrement(parsing: "1/1"))
        #expect(odd.rate(talkMs: 7_000) == (7, Money(micros: 1_167)))
        #expect(minutes.rate(talkMs: 0) == (0, .zero))
        #expect(minutes.rate(talkMs: -5) == (0, .zero))
        let free = Tariff(perMinute: .zero, increment: try BillingIncrement(parsing: "60/60"))
        #expect(free.rate(talkMs: 61_000) == (120, .zero))
    }
}
