import WarehouseSyncCore
import WarehouseSyncSettings

/// The replay worker's policy (DESIGN §6, docs/replay.md): `retries-exhausted` letters go back to
/// their queue once the ERP answers `/health` again, at most ``maxReplays`` times each and
/// ``rate`` letters a second; every other reason waits for a person. Letters replayed or purged
/// longer than ``retention`` ago are deleted from the store.
///
/// Read like ``WorkerConfiguration``: flags (`overrides`, by variable name) > environment >
/// defaults, empty values count as unset, every unusable setting reported at once.
public struct AutoReplaySettings: Sendable, Hashable, CustomStringConvertible {
    public enum Key: String, Sendable, CaseIterable {
        case enabled = "AUTO_REPLAY"
        case maxReplays = "AUTO_REPLAY_MAX"
        case rate = "AUTO_REPLAY_RATE"
        case delay = "AUTO_REPLAY_DELAY"
        case interval = "AUTO_REPLAY_INTERVAL"
        case retention = "DEAD_LETTER_RETENTION"
    }

    public static let defaultMaxReplays = 3
    public static let defaultRate = 20.0
    public static let defaultDelay: Duration = .seconds(60)
    public static let defaultInterval: Duration = .seconds(10)
    /// Below this a pass would spin on the store for nothing.
    public static let minimumInterval: Duration = .milliseconds(100)
    public static let defaultRetention: Duration = .seconds(30 * 24 * 3600)
    /// A replayed letter must outlive its replay's trip through the retry tiers: deleted
    /// earlier, a replay that fails again would come back as a new letter with no replays
    /// counted, and AUTO_REPLAY_MAX would never stop it.
    public static let minimumRetention: Duration = .seconds(3600)

    /// `AUTO_REPLAY`: `false` leaves every letter to a person (the worker still drains).
    public var enabled: Bool
    /// `AUTO_REPLAY_MAX`: replays per letter, counting an operator's; beyond it the letter waits
    /// for a person.
    public var maxReplays: Int
    /// `AUTO_REPLAY_RATE`: letters republished per second at most.
    public var rate: Double
    /// `AUTO_REPLAY_DELAY`: the least time since a letter's last failure before it is replayed,
    /// so a letter is not sent back into the failure it just came out of.
    public var delay: Duration
    /// `AUTO_REPLAY_INTERVAL`: how often the worker checks the ERP and looks for letters.
    public var interval: Duration
    /// `DEAD_LETTER_RETENTION`: how long a letter stays in the store after it was replayed or
    /// purged (for `dlq show` and the audit trail). Pending letters are never deleted.
    public var retention: Duration

    public init(
        enabled: Bool = true, maxReplays: Int = defaultMaxReplays, rate: Double = defaultRate,
        delay: Duration = defaultDelay, interval: Duration = defaultInterval, retention: Duration = defaultRetention
    ) {
        self.enabled = enabled
        self.maxReplays = maxReplays
        self.rate = rate
        self.delay = delay
        self.interval = interval
        self.retention = retention
    }

    public init(environment: [String: String], overrides: [String: String] = [:]) throws(ConfigurationError) {
        var reader = SettingsReader(environment: environment, overrides: overrides)
        let enabled = reader.bool(Key.enabled.rawValue, default: true)
        var maxReplays = Self.defaultMaxReplays
        if let text = reader.value(Key.maxReplays.rawValue) {
            if let number = Int(text), number >= 1 {
                maxReplays = number
            } else {
                reader.fail(Key.maxReplays.rawValue, "'\(text)' is not an integer ≥ 1 (replays per letter; AUTO_REPLAY=false turns replays off)")
            }
        }
        var rate = Self.defaultRate
        if let text = reader.value(Key.rate.rawValue) {
            if let number = Double(text), number.isFinite, number > 0 {
                rate = number
            } else {
                reader.fail(Key.rate.rawValue, "'\(text)' is not a number of letters per second above 0 (e.g. 20 or 0.5)")
            }
        }
        let delay = reader.duration(Key.delay.rawValue, default: Self.defaultDelay, atLeast: .zero, accepted: "zero or more")
        let interval = reader.duration(
            Key.interval.rawValue, default: Self.defaultInterval, atLeast: Self.minimumInterval,
            accepted: "at least \(DurationParser.format(Self.minimumInterval))")
        let retention = reader.duration(
            Key.retention.rawValue, default: Self.defaultRetention, atLeast: Self.minimumRetention,
            accepted: "at least \(DurationParser.format(Self.minimumRetention))")
        try reader.finish()
        self.init(enabled: enabled, maxReplays: maxReplays, rate: rate, delay: delay, interval: interval, retention: retention)
    }

    /// For the start-up line.
    public var description: String {
        [
            "autoReplay=\(enabled)",
            "autoReplayMax=\(maxReplays)",
            "autoReplayRate=\(rate)",
            "autoReplayDelay=\(DurationParser.format(delay))",
            "autoReplayInterval=\(DurationParser.format(interval))",
            "deadLetterRetention=\(DurationParser.format(retention))",
        ].joined(separator: " ")
    }
}
