import Metrics

/// The metrics one worker records for one stream (docs/operations-endpoints.md).
///
/// Created through swift-metrics, so pipeline code imports only `Metrics`. Production code uses
/// the global factory (bootstrapped once by the executable, see `OpsMetrics.bootstrap`); tests
/// pass a registry-backed factory (`OpsMetrics.makeFactory(registry:)`) instead.
public struct WorkerMetrics: Sendable {
    /// Metric names, all prefixed `whsync_`.
    public enum Name {
        public static let consumed = "whsync_consumed_total"
        public static let posted = "whsync_posted_total"
        public static let duplicates = "whsync_duplicates_total"
        public static let stale = "whsync_stale_total"
        public static let held = "whsync_held_total"
        public static let parked = "whsync_parked_total"
        public static let deadLettered = "whsync_dead_lettered_total"
        public static let retries = "whsync_retries_total"
        public static let erpLatency = "whsync_erp_latency_seconds"
        public static let storeLatency = "whsync_store_latency_seconds"
        public static let eventAgeAtPosting = "whsync_event_age_at_posting_seconds"
        public static let erpCircuitOpen = "whsync_erp_circuit_open"
        public static let storeUnavailable = "whsync_store_unavailable"
    }

    /// Label names.
    public enum Label {
        public static let stream = "stream"
        public static let reason = "reason"
        /// The store step an event waited for: `decide` (the gate's decision) or `settle`.
        public static let step = "step"
    }

    public let stream: String
    public let consumed: Counter
    public let posted: Counter
    public let duplicates: Counter
    public let stale: Counter
    public let held: Counter
    public let parked: Counter
    public let retries: Counter
    /// ERP call latency, recorded in nanoseconds by `Timer`, exposed as seconds.
    public let erpLatency: Metrics.Timer
    /// Time between the event's occurrence and its posting.
    public let eventAgeAtPosting: Metrics.Timer
    /// How long an event's store step took, its round's wait included: the gate's decision, and
    /// the settle (with a retry's or a dead letter's marking). Beside ``erpLatency``, where an
    /// event's time in hand goes.
    public let decideLatency: Metrics.Timer
    public let settleLatency: Metrics.Timer
    /// 1 while the ERP circuit is open (consumption paused), else 0.
    public let erpCircuitOpen: Gauge
    /// 1 while messages wait in hand for a store outage to end, else 0.
    public let storeUnavailable: Gauge
    /// The same events by warehouse, and what waits (``WarehouseMetrics``).
    public let business: WarehouseMetrics
    private let factory: any MetricsFactory

    /// `warehouseLimit`: distinct `warehouse` label values before `(other)` (``WarehouseLabels``).
    public init(
        stream: String, warehouseLimit: Int = WarehouseLabels.defaultLimit, factory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.stream = stream
        self.factory = factory
        business = WarehouseMetrics(stream: stream, warehouseLimit: warehouseLimit, factory: factory)
        let dimensions = [(Label.stream, stream)]
        consumed = Counter(label: Name.consumed, dimensions: dimensions, factory: factory)
        posted = Counter(label: Name.posted, dimensions: dimensions, factory: factory)
        duplicates = Counter(label: Name.duplicates, dimensions: dimensions, factory: factory)
        stale = Counter(label: Name.stale, dimensions: dimensions, factory: factory)
        held = Counter(label: Name.held, dimensions: dimensions, factory: factory)
        parked = Counter(label: Name.parked, dimensions: dimensions, factory: factory)
        retries = Counter(label: Name.retries, dimensions: dimensions, factory: factory)
        erpLatency = Metrics.Timer(label: Name.erpLatency, dimensions: dimensions, factory: factory)
        eventAgeAtPosting = Metrics.Timer(label: Name.eventAgeAtPosting, dimensions: dimensions, factory: factory)
        decideLatency = Metrics.Timer(label: Name.storeLatency, dimensions: dimensions + [(Label.step, "decide")], factory: factory)
        settleLatency = Metrics.Timer(label: Name.storeLatency, dimensions: dimensions + [(Label.step, "settle")], factory: factory)
        erpCircuitOpen = Gauge(label: Name.erpCircuitOpen, dimensions: dimensions, factory: factory)
        erpCircuitOpen.record(0)
        storeUnavailable = Gauge(label: Name.storeUnavailable, dimensions: dimensions, factory: factory)
        storeUnavailable.record(0)
    }

    /// Counts one message dead-lettered for `reason` (a short, bounded code such as `invalid`).
    public func deadLettered(reason: String, count: Int = 1) {
        Counter(
            label: Name.deadLettered, dimensions: [(Label.stream, stream), (Label.reason, reason)],
            factory: factory
        ).increment(by: count)
    }

    /// Records one ERP call's latency.
    public func recordERPLatency(_ duration: Duration) {
        erpLatency.recordNanoseconds(duration.nanosecondsClamped)
    }

    /// Records how long an event's store step took (`decide`: the gate's decision; else a settle).
    public func recordStoreLatency(_ duration: Duration, decide: Bool) {
        (decide ? decideLatency : settleLatency).recordNanoseconds(duration.nanosecondsClamped)
    }

    /// Records the age of an event when it was posted.
    public func recordEventAge(_ age: Duration) {
        eventAgeAtPosting.recordNanoseconds(age.nanosecondsClamped)
    }
}

