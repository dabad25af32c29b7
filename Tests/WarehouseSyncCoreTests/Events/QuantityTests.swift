import Testing
import WarehouseSyncCore

@Suite("Quantity")
struct QuantityTests {
    @Test(
        "valid literals parse exactly",
        arguments: [
            ("0", 0),
            ("-0", 0),
            ("0.0", 0),
            ("1", 1_000_000),
            ("12.5", 12_500_000),
            ("12.50", 12_500_000),
            ("-3", -3_000_000),
            ("0.000001", 1),
            ("-0.000001", -1),
            ("1.2300000000", 1_230_000),
            ("0.0000010", 1),
            ("007", 7_000_000),
            ("1.5e3", 1_500_000_000),
            ("1.5E+3", 1_500_000_000),
            ("12.50e1", 125_000_000),
            ("1e-6", 1),
            ("123456789e-3", 123_456_789_000),
            ("100e-8", 1),
            ("0e999999999999", 0),
            ("0.0000000e5", 0),
            ("9223372036854.775807", Int64.max),
            ("-9223372036854.775807", -Int64.max),
            ("922337203685477.5807e-2", Int64.max),
            ("10000000000000000000000e-10", 1_000_000_000_000_000_000),
        ] as [(String, Int64)]
    )
    func parsesValid(text: String, microUnits: Int64) throws {
        let quantity = try Quantity.parse(text)
        #expect(quantity.microUnits == microUnits)
        #expect(Quantity(parsing: text) == quantity)
    }

    @Test(
        "invalid literals fail with the reason",
        arguments: [
            ("", QuantityParseError.Code.empty),
            ("abc", .invalidSyntax),
            ("NaN", .invalidSyntax),
            ("nan", .invalidSyntax),
            ("Infinity", .invalidSyntax),
            ("-Infinity", .invalidSyntax),
            ("inf", .invalidSyntax),
            ("+1", .invalidSyntax),
            (" 1", .invalidSyntax),
            ("1 ", .invalidSyntax),
            (".5", .invalidSyntax),
            ("5.", .invalidSyntax),
            ("-", .invalidSyntax),
            ("--1", .invalidSyntax),
            ("1e", .invalidSyntax),
            ("1e+", .invalidSyntax),
            ("1.2.3", .invalidSyntax),
            ("0x10", .invalidSyntax),
            ("1,5", .invalidSyntax),
            ("1_000", .invalidSyntax),
            ("١", .invalidSyntax),
            ("0.0000001", .tooManyFractionDigits),
            ("-0.0000001", .tooManyFractionDigits),
            ("1e-7", .tooManyFractionDigits),
            ("1.5e-6", .tooManyFractionDigits),
            ("15e-7", .tooManyFractionDigits),
            ("1.0000001", .tooManyFractionDigits),
            ("1e-999999999999", .tooManyFractionDigits),
            ("9223372036854.775808", .outOfRange),
            ("-9223372036854.775808", .outOfRange),
            ("1e13", .outOfRange),
            ("1e999999999999", .outOfRange),
            ("99999999999999999999999", .outOfRange),
            ("10000000000000000000000e-9", .outOfRange),
        ] as [(String, QuantityParseError.Code)]
    )
    func rejectsInvalid(text: String, code: QuantityParseError.Code) {
        #expect(throws: QuantityParseError(code: code)) {
            try Quantity.parse(text)
        }
        #expect(Quantity(parsing: text) == nil)
    }

    @Test("errors explain the failure without repeating the text")
    func errorDescriptions() {
        #expect(QuantityParseError(code: .tooManyFractionDigits).description == "quantity has more than 6 fraction digits")
        #expect(QuantityParseError(code: .invalidSyntax).description == "quantity is not a decimal number")
        #expect(QuantityParseError(code: .empty).description == "quantity is empty")
    }

    @Test(
        "description is canonical",
        arguments: [
            (0, "0"),
            (12_500_000, "12.5"),
            (-3_000_000, "-3"),
            (1, "0.000001"),
            (-1, "-0.000001"),
            (10, "0.00001"),
            (1_230_000, "1.23"),
            (100_000_000, "100"),
            (1_000_001, "1.000001"),
            (Int64.max, "9223372036854.775807"),
            (-Int64.max, "-9223372036854.775807"),
        ] as [(Int64, String)]
    )
    func canonicalDescription(microUnits: Int64, text: String) throws {
        let quantity = Quantity(microUnits: microUnits)
        #expect(quantity.description == text)
        #expect(try Quantity.parse(text) == quantity)
        #expect(quantity.jsonValue == .number(text))
    }

    @Test("arithmetic, sign and comparison")
    func arithmetic() throws {
        let a = try Quantity.parse("12.5")
        let b = try Quantity.parse("0.000001")
        #expect((a + b).description == "12.500001")
        #expect((b - a).description == "-12.499999")
        #expect((-a).description == "-12.5")
        #expect(-(-a) == a)
        #expect((a - a).isZero)
        #expect(!a.isZero)
        #expect(a.signum == 1 && (-a).signum == -1 && Quantity.zero.signum == 0)
        #expect(b < a && -a < b && Quantity.zero < b)
        #expect([a, -a, b].max() == a)
        var total: Quantity = 0
        total += 5
        total -= try Quantity.parse("0.25")
        #expect(total == (try Quantity.parse("4.75")))
        #expect(Quantity(units: 3) == 3)
        #expect(Quantity(units: Int64.max) == nil)
        #expect(Quantity.max.adding(b) == nil)
        #expect(Quantity.min.subtracting(b) == nil)
        #expect(Quantity.max.adding(-b)?.description == "9223372036854.775806")
        #expect(Quantity.min == -Quantity.max)
    }

    @Test("from JSON: a number or a decimal string, nothing else")
    func fromJSON() throws {
        #expect(Quantity(json: .number("1.5"))?.description == "1.5")
        #expect(Quantity(json: .string("-0.000001"))?.description == "-0.000001")
        #expect(Quantity(json: .string("1.0000001")) == nil, "more than six fraction digits")
        #expect(Quantity(json: .bool(true)) == nil)
        #expect(Quantity(json: .null) == nil)
        #expect(Quantity(json: nil) == nil)
    }
}
