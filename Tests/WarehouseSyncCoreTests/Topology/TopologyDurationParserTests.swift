import Testing
import WarehouseSyncCore

@Suite("Duration parser")
struct TopologyDurationParserTests {
    @Test(
        "accepted durations",
        arguments: [
            ("500ms", Duration.milliseconds(500)),
            ("5s", .seconds(5)),
            ("30s", .seconds(30)),
            ("5m", .seconds(300)),
            ("10m", .seconds(600)),
            ("1h", .seconds(3600)),
            ("0s", .zero),
            ("90s", .seconds(90)),
        ]
    )
    func accepts(text: String, expected: Duration) throws {
        #expect(try DurationParser.parse(text) == expected)
        #expect(try parseDuration(text) == expected)
    }

    @Test(
        "rejected durations name the value and the accepted form",
        arguments: ["", "5", "s", "5 s", " 5s", "5s ", "-5s", "+5s", "1.5s", "5sec", "5S", "1d", "1m30s", "5ms5", "٥s",
                    "99999999999999999999s", "9223372036854775807h"]
    )
    func rejects(text: String) {
        #expect(throws: DurationParseError(value: text)) { try DurationParser.parse(text) }
        let message = DurationParseError(value: text).description
        #expect(message == "invalid duration \"\(text)\": expected a whole number followed by ms, s, m or h (for example 500ms, 30s, 5m, 1h)")
    }

    @Test(
        "format gives the largest exact unit and parses back",
        arguments: [
            (Duration.milliseconds(500), "500ms"),
            (.milliseconds(1500), "1500ms"),
            (.seconds(5), "5s"),
            (.seconds(60), "1m"),
            (.seconds(90), "90s"),
            (.seconds(7200), "2h"),
            (.zero, "0s"),
        ]
    )
    func format(duration: Duration, text: String) throws {
        #expect(DurationParser.format(duration) == text)
        #expect(try DurationParser.parse(text) == duration)
    }
}
