/// Parses and formats the short duration texts used in configuration: `500ms`, `30s`, `5m`, `1h`.
///
/// One form for every setting that takes a duration (the topology's retry tiers, `GAP_TIMEOUT`),
/// so an operator learns it once: a whole number followed by `ms`, `s`, `m` or `h`, nothing else
/// (no sign, no spaces, no fractions, no compound `1m30s`: write `90s`).
public enum DurationParser {
    /// The accepted form, in words, for error messages and help texts.
    public static let acceptedForm = "a whole number followed by ms, s, m or h (for example 500ms, 30s, 5m, 1h)"

    /// Parses `text`; the error names the bad value and the accepted form.
    public static func parse(_ text: String) throws(DurationParseError) -> Duration {
        let scalars = Array(text.unicodeScalars)
        let digitCount = scalars.prefix { ("0"..."9").contains($0) }.count
        let digits = String(String.UnicodeScalarView(scalars[..<digitCount]))
        let unitText = String(String.UnicodeScalarView(scalars[digitCount...]))
        guard !digits.isEmpty, let value = Int64(digits), let unit = Unit(rawValue: unitText) else {
            throw DurationParseError(value: text)
        }
        let (milliseconds, overflow) = value.multipliedReportingOverflow(by: unit.milliseconds)
        guard !overflow else { throw DurationParseError(value: text) }
        return .milliseconds(milliseconds)
    }

    /// The shortest text `parse` reads back as `duration`, in the largest unit that divides it
    /// (`90s`, `5m`, `1h`, `1500ms`). Sub-millisecond parts are dropped.
    public static func format(_ duration: Duration) -> String {
        let milliseconds = wholeMilliseconds(duration)
        if milliseconds == 0 { return "0s" }
        for unit in [Unit.hours, .minutes, .seconds] where milliseconds % unit.milliseconds == 0 {
            return "\(milliseconds / unit.milliseconds)\(unit.rawValue)"
        }
        return "\(milliseconds)\(Unit.milliseconds.rawValue)"
    }

    /// `duration` in whole milliseconds, truncated; what RabbitMQ's `x-message-ttl` takes.
    public static func wholeMilliseconds(_ duration: Duration) -> Int64 {
        duration.wholeMilliseconds
    }

    private enum Unit: String {
        case milliseconds = "ms"
        case seconds = "s"
        case minutes = "m"
        case hours = "h"

        var milliseconds: Int64 {
            switch self {
            case .milliseconds: 1
            case .seconds: 1000
            case .minutes: 60_000
            case .hours: 3_600_000
            }
        }
    }
}

/// Parses a duration such as `30s` or `10m`; see ``DurationParser``.
public func parseDuration(_ text: String) throws(DurationParseError) -> Duration {
    try DurationParser.parse(text)
}

/// A duration text that does not have the accepted form.
public struct DurationParseError: Error, CustomStringConvertible, Sendable, Hashable {
    /// The text that was rejected.
    public let value: String

    public init(value: String) {
        self.value = value
    }

    public var description: String {
        "invalid duration \"\(value)\": expected \(DurationParser.acceptedForm)"
    }
}
