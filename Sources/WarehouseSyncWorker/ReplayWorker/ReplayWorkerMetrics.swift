import Metrics

/// What the replay worker records (docs/replay.md), through swift-metrics like ``WorkerMetrics``.
public struct ReplayWorkerMetrics: Sendable {
    /// Metric names, all prefixed `whsync_`.
    public enum Name {
        public static let drained = "whsync_dead_letters_drained_total"
        public static let autoReplayed = "whsync_dead_letters_auto_replayed_total"
        public static let autoReplayFailed = "whsync_dead_letters_auto_replay_failed_total"
        public static let awaitingOperator = "whsync_dead_letters_auto_replay_exhausted"
    }

    private let factory: any MetricsFactory
    /// Letters the auto-replay republished (confirmed and recorded).
    public let autoReplayed: Counter
    /// Auto-replays the broker refused (unroutable, connection lost): tried again next pass.
    public let autoReplayFailed: Counter
    /// `retries-exhausted` letters pending at `AUTO_REPLAY_MAX` replays, as of the last pass: they
    /// wait for a person.
    public let awaitingOperator: Gauge

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        autoReplayed = Counter(label: Name.autoReplayed, dimensions: [], factory: factory)
        autoReplayFailed = Counter(label: Name.autoReplayFailed, dimensions: [], factory: factory)
        awaitingOperator = Gauge(label: Name.awaitingOperator, dimensions: [], factory: factory)
    }

    /// Counts one letter stored for `reason` (`whsync_dead_letters_drained_total{reason}`); a
    /// repeat or a redelivery of a stored letter counts too: it was drained again.
    public func drained(reason: String) {
        Counter(label: Name.drained, dimensions: [(WorkerMetrics.Label.reason, reason)], factory: factory).increment()
    }
}
