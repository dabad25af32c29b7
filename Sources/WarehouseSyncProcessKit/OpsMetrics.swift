import Metrics
import Prometheus
import Synchronization
import WarehouseSyncWorker

/// Prometheus wiring for the executables: the factory with WarehouseSync's histogram buckets and
/// the once-only global bootstrap. Only the executables' kit calls this; libraries import `Metrics`.
public enum OpsMetrics {
    /// ERP latency buckets: 5 ms to 10 s.
    public static let erpLatencyBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// Store step buckets: 1 ms to 30 s (a round takes milliseconds; a store outage is waited out).
    public static let storeLatencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30),
    ]

    /// Event age at posting buckets: 50 ms to 1 h (backlogs and outages make events old).
    public static let eventAgeBuckets: [Duration] = [
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300),
        .seconds(900), .seconds(3600),
    ]

    /// Publish-to-posted buckets: 10 ms to 1 h (the business SLAs are minutes; an outage is hours).
    public static let publishToPostedBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        .seconds(300), .seconds(900), .seconds(3600),
    ]

    /// A factory recording into `registry`, with the buckets above. Tests use this directly.
    public static func makeFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            WorkerMetrics.Name.erpLatency: erpLatencyBuckets,
            WorkerMetrics.Name.storeLatency: storeLatencyBuckets,
            WorkerMetrics.Name.eventAgeAtPosting: eventAgeBuckets,
            WarehouseMetrics.Name.publishToPosted: publishToPostedBuckets,
        ]
        return factory
    }

    private static let bootstrapped = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Bootstraps the global `MetricsSystem` with a Prometheus factory once per process and
    /// returns its registry (the one `OpsServer` serves). Later calls return the same registry.
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry {
        bootstrapped.withLock { registry in
            if let registry { return registry }
            let new = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(makeFactory(registry: new))
            registry = new
            return new
        }
    }
}
