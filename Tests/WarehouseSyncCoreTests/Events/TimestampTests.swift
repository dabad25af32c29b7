import Foundation
import Testing
import WarehouseSyncCore

@Suite("Timestamp")
struct TimestampTests {
    @Test(
        "valid RFC 3339 timestamps",
        arguments: [
            ("1970-01-01T00:00:00Z", 0, 0, 0),
            ("2024-05-01T08:30:00.123Z", 1_714_552_200, 123_000_000, 0),
            ("2024-05-01T10:30:00+02:00", 1_714_552_200, 0, 7200),
            ("2024-05-01t08:30:00z", 1_714_552_200, 0, 0),
            ("2024-05-04T09:00:00-05:00", 1_714_831_200, 0, -18000),
            ("2024-02-29T23:59:59Z", 1_709_251_199, 0, 0),
            ("2000-02-29T00:00:00Z", 951_782_400, 0, 0),
            ("2000-03-01T00:00:00Z", 951_868_800, 0, 0),
            ("1900-03-01T00:00:00Z", -2_203_891_200, 0, 0),
            ("1969-12-31T23:59:59.5Z", -1, 500_000_000, 0),
            ("2016-12-31T23:59:60Z", 1_483_228_800, 0, 0),
            ("0001-01-01T00:00:00Z", -62_135_596_800, 0, 0),
            ("9999-12-31T23:59:59Z", 253_402_300_799, 0, 0),
            ("2024-05-01T08:30:00.123456789123Z", 1_714_552_200, 123_456_789, 0),
            ("2024-05-01T08:30:00.1+23:59", 1_714_465_860, 100_000_000, 86_340),
            ("2024-05-01T08:30:00-00:00", 1_714_552_200, 0, 0),
        ] as [(String, Int64, Int32, Int32)]
    )
    func parsesValid(text: String, seconds: Int64, nanosecond: Int32, offset: Int32) throws {
        let timestamp = try Timestamp.parse(text)
        #expect(timestamp.text == text)
        #expect(timestamp.description == text)
        #expect(timestamp.secondsSince1970 == seconds)
        #expect(timestamp.nanosecond == nanosecond)
        #expect(timestamp.utcOffsetSeconds == offset)
        #expect(abs(timestamp.date.timeIntervalSince1970 - (Double(seconds) + Double(nanosecond) / 1e9)) < 1e-6)
    }

    @Test(
        "invalid timestamps fail with the reason",
        arguments: [
            ("", "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"),
            ("2024-05-01", "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"),
            ("2024-05-01T08:30:00", "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"),
            ("2024-05-01 08:30:00Z", "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"),
            ("2024-5-01T08:30:00Z", "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"),
            ("2024-05-01T08:30Z", "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"),
            ("2024-05-01T08:30:00.Z", "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"),
            ("2024-05-01T08:30:00ZZ", "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"),
            ("2024-05-01T08:30:00+0200", "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"),
            ("2024-05-01T08:30:00+02", "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"),
            (" 2024-05-01T08:30:00Z", "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"),
            ("+2024-05-01T08:30:00Z", "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"),
            ("2024-00-10T00:00:00Z", "month must be 01-12"),
            ("2024-13-01T00:00:00Z", "month must be 01-12"),
            ("2023-02-29T00:00:00Z", "day must be 01-28 for 2023-02"),
            ("1900-02-29T00:00:00Z", "day must be 01-28 for 1900-02"),
            ("2024-02-30T00:00:00Z", "day must be 01-29 for 2024-02"),
            ("2024-04-31T00:00:00Z", "day must be 01-30 for 2024-04"),
            ("2024-01-00T00:00:00Z", "day must be 01-31 for 2024-01"),
            ("2024-01-01T24:00:00Z", "hour must be 00-23"),
            ("2024-01-01T23:60:00Z", "minute must be 00-59"),
            ("2024-01-01T23:58:60Z", "second must be 00-59 (60 only for a leap second at minute 59)"),
            ("2024-01-01T23:59:61Z", "second must be 00-59 (60 only for a leap second at minute 59)"),
            ("2024-01-01T00:00:00+24:00", "offset hour must be 00-23"),
            ("2024-01-01T00:00:00-01:60", "offset minute must be 00-59"),
        ]
    )
    func rejectsInvalid(text: String, detail: String) {
        #expect {
            try Timestamp.parse(text)
        } throws: { error in
            (error as? TimestampParseError)?.detail == detail
        }
        #expect(Timestamp(parsing: text) == nil)
    }

    @Test("formatting a Date in UTC")
    func formatting() throws {
        let date = Date(timeIntervalSince1970: 1_714_552_200.123)
        #expect(Timestamp(date).text == "2024-05-01T08:30:00.123Z")
        #expect(Timestamp(date, fractionDigits: 0).text == "2024-05-01T08:30:00Z")
        #expect(Timestamp(Date(timeIntervalSince1970: -0.5), fractionDigits: 1).text == "1969-12-31T23:59:59.5Z")
        let parsed = try Timestamp.parse(Timestamp(date).text)
        #expect(parsed.isSameInstant(as: Timestamp(date)))
    }

    @Test("equality compares the text; instants compare across offsets")
    func instants() throws {
        let utc = try Timestamp.parse("2024-05-01T08:30:00Z")
        let local = try Timestamp.parse("2024-05-01T10:30:00+02:00")
        let later = try Timestamp.parse("2024-05-01T08:30:00.000001Z")
        #expect(utc != local)
        #expect(utc.isSameInstant(as: local))
        #expect(local.isBefore(later))
        #expect(!later.isBefore(utc))
    }
}
