import Foundation

/// Capped exponential backoff with "equal jitter" (AWS architecture blog, "Exponential Backoff
/// And Jitter"): spreads reconnecting workers out after a broker restart.
public struct ReconnectPolicy: Sendable, Equatable {
    public var initialDelay: Duration
    public var maximumDelay: Duration
    public var multiplier: Double

    public init(initialDelay: Duration = .milliseconds(200), maximumDelay: Duration = .seconds(15), multiplier: Double = 2) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = multiplier
    }

    public static let `default` = ReconnectPolicy()

    /// The ceiling for the `attempt`-th retry (1-based): initial × multiplier^(attempt−1), capped.
    public func ceiling(forAttempt attempt: Int) -> Duration {
        let initial = initialDelay.seconds
        let maximum = maximumDelay.seconds
        let exponent = Double(max(attempt - 1, 0))
        let raw = initial * pow(multiplier, min(exponent, 64))
        return .milliseconds(Int64((min(raw, maximum) * 1000).rounded()))
    }

    /// The delay before the `attempt`-th retry: uniform in [ceiling/2, ceiling], so no two
    /// workers retry in lockstep but none hammers the broker immediately.
    public func delay(forAttempt attempt: Int, random: Double = Double.random(in: 0...1)) -> Duration {
        let (seconds, attoseconds) = ceiling(forAttempt: attempt).components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        let half = nanoseconds / 2
        return .nanoseconds(half + Int64((Double(nanoseconds - half) * min(max(random, 0), 1)).rounded()))
    }
}

extension Duration {
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
