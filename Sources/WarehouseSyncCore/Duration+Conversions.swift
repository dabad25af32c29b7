import Foundation

extension Duration {
    /// The duration in seconds, for `Date` arithmetic and rates.
    public var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }

    /// Whole nanoseconds, clamped to `0...Int64.max` (what metrics and NIO time amounts take).
    public var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        if seconds >= Int64.max / 1_000_000_000 { return .max }
        if seconds <= Int64.min / 1_000_000_000 { return 0 }
        return max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Whole milliseconds, truncated (what RabbitMQ's `x-message-ttl` and log lines take).
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
