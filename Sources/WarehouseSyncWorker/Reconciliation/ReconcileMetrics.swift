import Foundation
import Metrics
import Synchronization
import WarehouseSyncCore

/// What the replay worker's reconciliation schedule exports (docs/reconciliation.md, "Metrics").
/// The differences are gauges per warehouse (bounded by ``WarehouseLabels``, as the stream
/// workers' are: `METRICS_MAX_WAREHOUSES`) and kind (`balance`, `shipment`, `receipt`), set to
/// zero for a warehouse that no longer differs.
public final class ReconcileMetrics: Sendable {
    public enum Name {
        /// Gauge `{warehouse, kind}`: rows or documents that differ, as of the last run that compared.
        public static let differences = "whsync_reconcile_differences"
        /// Gauge: when the last run ended (Unix seconds), whatever its outcome.
        public static let lastRun = "whsync_reconcile_last_run_timestamp_seconds"
        /// Gauge: when the last run that compared both sides ended (Unix seconds).
        public static let lastSuccess = "whsync_reconcile_last_success_timestamp_seconds"
        /// Gauge: `RECONCILE_INTERVAL` in seconds, for the staleness alert.
        public static let interval = "whsync_reconcile_interval_seconds"
        /// Counter `{outcome}`: runs that found the books `agree`, that found them to `differ`, or `failed`.
        public static let runs = "whsync_reconcile_runs_total"
        /// Counter `{outcome}`: corrections `published` (resumed ones too), `refused` or `failed`.
        public static let corrections = "whsync_reconcile_corrections_total"
    }

    public enum Kind: String, Sendable, CaseIterable {
        case balance
        case shipment
        case receipt
    }

    private let factory: any MetricsFactory
    private let labels: WarehouseLabels
    private let lastRun: Gauge
    private let lastSuccess: Gauge
    /// The label pairs set last time, so that a warehouse that agrees again goes back to 0.
    private let shown = Mutex<Set<[String]>>([])

    public init(interval: Duration, maxWarehouses: Int = WarehouseLabels.defaultLimit, factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        labels = WarehouseLabels(limit: maxWarehouses)
        lastRun = Gauge(label: Name.lastRun, dimensions: [], factory: factory)
        lastSuccess = Gauge(label: Name.lastSuccess, dimensions: [], factory: factory)
        Gauge(label: Name.interval, dimensions: [], factory: factory).record(Double(interval.components.seconds))
    }

    /// Records a run that compared: the differences per warehouse and kind, the outcome, the
    /// corrections.
    public func record(_ report: Reconciler.Report, at date: Date) {
        var counts: [[String]: Int] = [:]
        for warehouse in report.warehouses {
            for kind in Kind.allCases { counts[[labels.label(for: warehouse), kind.rawValue], default: 0] += 0 }
        }
        for difference in report.balances.differences {
            counts[[labels.label(for: difference.key.warehouse), Kind.balance.rawValue], default: 0] += 1
        }
        for difference in report.documents?.differences ?? [] {
            counts[[labels.label(for: difference.key.warehouse), difference.key.kind.rawValue], default: 0] += 1
        }
        let stale = shown.withLock { shown in
            let stale = shown.subtracting(counts.keys)
            shown = Set(counts.keys)
            return stale
        }
        for pair in stale { gauge(pair).record(0) }
        for (pair, count) in counts { gauge(pair).record(Double(count)) }
        count(Name.runs, report.differenceCount == 0 ? "agree" : "differ")
        for correction in report.corrections {
            switch correction.outcome {
            case .published, .resumed: count(Name.corrections, "published")
            case .refused: count(Name.corrections, "refused")
            case .failed: count(Name.corrections, "failed")
            }
        }
        lastRun.record(date.timeIntervalSince1970)
        lastSuccess.record(date.timeIntervalSince1970)
    }

    /// Records a run that could not compare (the snapshot or the ERP could not be read): the
    /// differences keep their last values; the last success does not move.
    public func recordFailure(at date: Date) {
        count(Name.runs, "failed")
        lastRun.record(date.timeIntervalSince1970)
    }

    private func gauge(_ pair: [String]) -> Gauge {
        Gauge(label: Name.differences, dimensions: [(WarehouseMetrics.Label.warehouse, pair[0]), ("kind", pair[1])], factory: factory)
    }

    private func count(_ name: String, _ outcome: String) {
        Counter(label: name, dimensions: [(WarehouseMetrics.Label.outcome, outcome)], factory: factory).increment()
    }
}
