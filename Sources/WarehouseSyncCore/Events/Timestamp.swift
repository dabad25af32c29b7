import Foundation

/// An RFC 3339 timestamp, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (`t` and `z` may be lower
/// case), with the text kept as it was written.
///
/// The parser checks month, day (leap years included), hour, minute, second and offset ranges.
/// A leap second (`:60`) is accepted at minute 59 and counts as the first second of the next
/// minute. Fraction digits beyond nanoseconds are accepted and ignored for ``date``.
public struct Timestamp: Sendable, Hashable, CustomStringConvertible {
    /// The text as written.
    public let text: String
    /// Whole seconds since 1970-01-01T00:00:00Z.
    public let secondsSince1970: Int64
    /// Nanoseconds within the second, 0..<1_000_000_000.
    public let nanosecond: Int32
    /// The offset from UTC the text was written in, in seconds (east positive).
    public let utcOffsetSeconds: Int32

    /// Parses `text`; `nil` when it is not an RFC 3339 timestamp. ``parse(_:)`` says why.
    public init?(parsing text: String) {
        guard let value = try? Self.parse(text) else { return nil }
        self = value
    }

    /// ``init(parsing:)`` with the reason for a failure.
    public static func parse(_ text: String) throws(TimestampParseError) -> Timestamp {
        var utf8 = text
        let fields = try utf8.withUTF8 { TimestampParser.parse($0) }.get()
        return Timestamp(
            text: text, secondsSince1970: fields.seconds,
            nanosecond: fields.nanosecond, utcOffsetSeconds: fields.offset
        )
    }

    /// `date` written in UTC with `fractionDigits` (0–9) fraction digits:
    /// `2024-05-01T12:00:00.123Z`. Dates before year 0 or after 9999 are clamped to those years.
    public init(_ date: Date, fractionDigits: Int = 3) {
        let digits = Swift.max(0, Swift.min(9, fractionDigits))
        let interval = date.timeIntervalSince1970
        let minimum = -62_167_219_200.0  // 0000-01-01T00:00:00Z
        let maximum = 253_402_300_799.0  // 9999-12-31T23:59:59Z
        let clamped = Swift.max(minimum, Swift.min(maximum, interval))
        var seconds = Int64(clamped.rounded(.down))
        var unitsPerSecond: Int64 = 1
        for _ in 0..<digits { unitsPerSecond *= 10 }
        // Round to the digits written, carrying into the seconds.
        var units = Int64(((clamped - Double(seconds)) * Double(unitsPerSecond)).rounded())
        if units >= unitsPerSecond {
            seconds += 1
            units -= unitsPerSecond
        }
        let nanos = units * (1_000_000_000 / unitsPerSecond)

        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = CivilCalendar.date(fromDays: days)
        var text = Self.pad(year, 4) + "-" + Self.pad(month, 2) + "-" + Self.pad(day, 2)
        text += "T" + Self.pad(secondOfDay / 3600, 2) + ":" + Self.pad(secondOfDay / 60 % 60, 2)
        text += ":" + Self.pad(secondOfDay % 60, 2)
        if digits > 0 {
            text += "." + Self.pad(units, digits)
        }
        text += "Z"
        self.init(text: text, secondsSince1970: seconds, nanosecond: Int32(nanos), utcOffsetSeconds: 0)
    }

    private init(text: String, secondsSince1970: Int64, nanosecond: Int32, utcOffsetSeconds: Int32) {
        self.text = text
        self.secondsSince1970 = secondsSince1970
        self.nanosecond = nanosecond
        self.utcOffsetSeconds = utcOffsetSeconds
    }

    /// The instant (as a `Date`, so to about a microsecond).
    public var date: Date {
        Date(timeIntervalSince1970: Double(secondsSince1970) + Double(nanosecond) / 1e9)
    }

    /// Whether two timestamps name the same instant, whatever their offsets. (`==` compares the
    /// text.)
    public func isSameInstant(as other: Timestamp) -> Bool {
        secondsSince1970 == other.secondsSince1970 && nanosecond == other.nanosecond
    }

    /// Whether this timestamp's instant comes before `other`'s.
    public func isBefore(_ other: Timestamp) -> Bool {
        (secondsSince1970, nanosecond) < (other.secondsSince1970, other.nanosecond)
    }

    public var description: String { text }

    public static func == (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.text == rhs.text
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(text)
    }

    private static func pad(_ value: some BinaryInteger, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: Swift.max(0, width - digits.count)) + digits
    }
}

/// Why a text is not an RFC 3339 timestamp. The description does not repeat the text.
public struct TimestampParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case malformed
            case outOfRange = "out of range"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Not the shape `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
        public static let malformed = Code(.malformed)
        /// The shape is right but a field is out of its range (month 13, 31 April, 24:00).
        public static let outOfRange = Code(.outOfRange)

        public var description: String { base.rawValue }
    }

    public let code: Code
    /// What is wrong: "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)", "day must be 01-30
    /// for month 04".
    public let detail: String

    public init(code: Code, detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { detail }
}

private enum TimestampParser {
    struct Fields {
        var seconds: Int64
        var nanosecond: Int32
        var offset: Int32
    }

    static let shape = "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<Fields, TimestampParseError> {
        let malformed = Result<Fields, TimestampParseError>.failure(TimestampParseError(code: .malformed, detail: shape))
        func range(_ detail: String) -> Result<Fields, TimestampParseError> {
            .failure(TimestampParseError(code: .outOfRange, detail: detail))
        }
        func number(_ start: Int, _ count: Int) -> Int? {
            guard start + count <= bytes.count else { return nil }
            var value = 0
            for index in start..<(start + count) {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value * 10 + Int(digit)
            }
            return value
        }
        func byte(_ index: Int) -> UInt8? {
            index < bytes.count ? bytes[index] : nil
        }

        guard let year = number(0, 4), byte(4) == UInt8(ascii: "-"),
            let month = number(5, 2), byte(7) == UInt8(ascii: "-"),
            let day = number(8, 2), let separator = byte(10), separator | 0x20 == UInt8(ascii: "t"),
            let hour = number(11, 2), byte(13) == UInt8(ascii: ":"),
            let minute = number(14, 2), byte(16) == UInt8(ascii: ":"),
            let second = number(17, 2)
        else { return malformed }

        var index = 19
        var nanosecond = 0
        if byte(index) == UInt8(ascii: ".") {
            index += 1
            let start = index
            while let digit = byte(index), digit &- UInt8(ascii: "0") < 10 {
                if index - start < 9 { nanosecond = nanosecond * 10 + Int(digit - UInt8(ascii: "0")) }
                index += 1
            }
            guard index > start else { return malformed }
            for _ in Swift.min(9, index - start)..<9 { nanosecond *= 10 }
        }

        var offset = 0
        guard let zone = byte(index) else { return malformed }
        if zone | 0x20 == UInt8(ascii: "z") {
            index += 1
        } else if zone == UInt8(ascii: "+") || zone == UInt8(ascii: "-") {
            guard let offsetHour = number(index + 1, 2), byte(index + 3) == UInt8(ascii: ":"),
                let offsetMinute = number(index + 4, 2)
            else { return malformed }
            guard offsetHour <= 23 else { return range("offset hour must be 00-23") }
            guard offsetMinute <= 59 else { return range("offset minute must be 00-59") }
            offset = (offsetHour * 60 + offsetMinute) * 60 * (zone == UInt8(ascii: "-") ? -1 : 1)
            index += 6
        } else {
            return malformed
        }
        guard index == bytes.count else { return malformed }

        guard (1...12).contains(month) else { return range("month must be 01-12") }
        let monthDays = CivilCalendar.daysIn(month: month, year: year)
        guard (1...monthDays).contains(day) else {
            return range("day must be 01-\(monthDays) for \(String(format4: year))-\(String(format2: month))")
        }
        guard hour <= 23 else { return range("hour must be 00-23") }
        guard minute <= 59 else { return range("minute must be 00-59") }
        guard second <= 59 || (second == 60 && minute == 59) else {
            return range("second must be 00-59 (60 only for a leap second at minute 59)")
        }

        let days = CivilCalendar.days(year: year, month: month, day: day)
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second - offset)
        return .success(Fields(seconds: seconds, nanosecond: Int32(nanosecond), offset: Int32(offset)))
    }
}

/// Proleptic Gregorian calendar arithmetic (H. Hinnant's days-from-civil algorithms).
private enum CivilCalendar {
    static func isLeap(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01.
    static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The civil date of a day count since 1970-01-01.
    static func date(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

private extension String {
    init(format4 value: Int) {
        let digits = String(value)
        self = String(repeating: "0", count: Swift.max(0, 4 - digits.count)) + digits
    }

    init(format2 value: Int) {
        let digits = String(value)
        self = String(repeating: "0", count: Swift.max(0, 2 - digits.count)) + digits
    }
}
