import Foundation
import Logging
import ServiceLifecycle
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncSettings

/// The replay worker's reconciliation schedule (docs/reconciliation.md, "The schedule"):
/// `RECONCILE_INTERVAL` (off when unset), `RECONCILE_SOURCE` (a snapshot file or URL, required
/// with an interval), `RECONCILE_CORRECT` (default `false`: report only).
public struct ReconcileSettings: Sendable, Hashable, CustomStringConvertible {
    public enum Key: String, Sendable, CaseIterable {
        case interval = "RECONCILE_INTERVAL"
        case source = "RECONCILE_SOURCE"
        case correct = "RECONCILE_CORRECT"
    }

    /// Below this a run would barely end before the next began.
    public static let minimumInterval: Duration = .seconds(1)

    public var interval: Duration
    public var source: SnapshotSource
    public var correct: Bool

    public init(interval: Duration, source: SnapshotSource, correct: Bool = false) {
        self.interval = interval
        self.source = source
        self.correct = correct
    }

    /// `nil` when `RECONCILE_INTERVAL` is unset: no schedule.
    public static func read(environment: [String: String], overrides: [String: String] = [:]) throws(ConfigurationError) -> ReconcileSettings? {
        var reader = SettingsReader(environment: environment, overrides: overrides)
        guard reader.value(Key.interval.rawValue) != nil else {
            if reader.value(Key.source.rawValue) != nil || reader.value(Key.correct.rawValue) != nil {
                reader.fail(Key.interval.rawValue, "not set, but RECONCILE_SOURCE or RECONCILE_CORRECT is: set it to run the schedule (e.g. 15m)")
            }
            try reader.finish()
            return nil
        }
        let interval = reader.duration(
            Key.interval.rawValue, default: .seconds(900), atLeast: minimumInterval,
            accepted: "at least \(DurationParser.format(minimumInterval))")
        let source = reader.value(Key.source.rawValue).flatMap(SnapshotSource.init)
        if source == nil {
            reader.fail(Key.source.rawValue, "not set: the WMS's snapshot (a file path or an http(s) URL) is needed with RECONCILE_INTERVAL")
        }
        let correct = reader.bool(Key.correct.rawValue, default: false)
        try reader.finish()
        guard let source else { return nil }
        return ReconcileSettings(interval: interval, source: source, correct: correct)
    }

    public var description: String {
        "reconcileInterval=\(DurationParser.format(interval)) reconcileSource=\(source) reconcileCorrect=\(correct)"
    }
}

/// Runs ``Reconciler`` every ``ReconcileSettings/interval`` (the first run at start), exports the
/// outcome (``ReconcileMetrics``), and logs each difference found at `notice`. A run that cannot
/// read the snapshot or ask the ERP is logged and counted as failed; the next comes on time.
/// Stops at graceful shutdown, after the run in progress.
public struct ReconcileSchedule: Service {
    let settings: ReconcileSettings
    let reconciler: Reconciler
    let metrics: ReconcileMetrics
    let logger: Logger

    public init(settings: ReconcileSettings, reconciler: Reconciler, metrics: ReconcileMetrics, logger: Logger) {
        self.settings = settings
        self.reconciler = reconciler
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        logger.notice("reconciliation scheduled", metadata: ["settings": "\(settings)"])
        let clock = ContinuousClock()
        var next = clock.now
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await runOnce()
            next = max(next.advanced(by: settings.interval), clock.now)
            // Only the wait is cut short by a graceful shutdown: a run in progress finishes.
            do {
                let deadline = next
                try await cancelWhenGracefulShutdown { try await clock.sleep(until: deadline) }
            } catch {
                return
            }
        }
    }

    /// One run: read, compare (and correct), record.
    public func runOnce(now: @autoclosure () -> Date = Date()) async {
        let bytes: [UInt8]
        let snapshot: WMSSnapshot
        do {
            bytes = try await settings.source.read()
            snapshot = try WMSSnapshot.parse(bytes)
        } catch {
            logger.warning("reconciliation failed: the snapshot cannot be read", metadata: ["source": "\(settings.source)", "error": "\(error)"])
            metrics.recordFailure(at: now())
            return
        }
        do {
            let report = try await reconciler.run(snapshot, now: now())
            for difference in report.balances.differences {
                logger.notice("balance differs", metadata: [
                    "warehouse": "\(difference.key.warehouse)", "sku": "\(difference.key.sku)", "status": "\(difference.key.status)",
                    "wms": "\(difference.expected)", "erp": "\(difference.actual)",
                ])
            }
            for difference in report.documents?.differences ?? [] {
                logger.notice("\(difference.key.kind) differs", metadata: [
                    "warehouse": "\(difference.key.warehouse)", "id": "\(difference.key.id)",
                    "wms": "\(difference.wms ?? "(none)")", "erp": "\(difference.erp ?? "(none)")",
                ])
            }
            metrics.record(report, at: now())
            logger.info("reconciliation done", metadata: [
                "warehouses": "\(report.warehouses.count)", "differences": "\(report.differenceCount)",
                "corrections": "\(report.corrections.count)",
            ])
        } catch {
            logger.warning("reconciliation failed", metadata: ["error": "\(error)"])
            metrics.recordFailure(at: now())
        }
    }
}
