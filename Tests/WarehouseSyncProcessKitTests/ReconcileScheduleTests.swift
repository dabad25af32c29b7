import Foundation
import Prometheus
import Testing
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncProcessKit
import WarehouseSyncWorker

/// The replay worker's reconciliation schedule: its settings and what it exports.
@Suite("Reconcile schedule")
struct ReconcileScheduleTests {
    @Test("off unless RECONCILE_INTERVAL is set; a source is required with it; correcting is opt-in")
    func settings() throws {
        #expect(try ReconcileSettings.read(environment: [:]) == nil)
        let url = try #require(try ReconcileSettings.read(environment: [
            "RECONCILE_INTERVAL": "15m", "RECONCILE_SOURCE": "https://user:pw@wms.example/snapshot?token=t",
        ]))
        #expect(url.interval == .seconds(900) && url.correct == false)
        #expect(url.source == .url("https://user:pw@wms.example/snapshot?token=t"))
        #expect(url.description == "reconcileInterval=15m reconcileSource=https://wms.example/snapshot reconcileCorrect=false")
        let file = try #require(try ReconcileSettings.read(environment: [
            "RECONCILE_INTERVAL": "30s", "RECONCILE_SOURCE": "/srv/snapshot.jsonl", "RECONCILE_CORRECT": "yes",
        ]))
        #expect(file.source == .file("/srv/snapshot.jsonl") && file.correct)
    }

    @Test(
        "an unusable setting names its variable",
        arguments: [
            (["RECONCILE_INTERVAL": "15m"], "RECONCILE_SOURCE"),
            (["RECONCILE_INTERVAL": "500ms", "RECONCILE_SOURCE": "/s"], "RECONCILE_INTERVAL"),
            (["RECONCILE_INTERVAL": "soon", "RECONCILE_SOURCE": "/s"], "RECONCILE_INTERVAL"),
            (["RECONCILE_INTERVAL": "1m", "RECONCILE_SOURCE": "/s", "RECONCILE_CORRECT": "maybe"], "RECONCILE_CORRECT"),
            (["RECONCILE_SOURCE": "/s"], "RECONCILE_INTERVAL"),
        ])
    func refused(environment: [String: String], variable: String) {
        do throws(ConfigurationError) {
            _ = try ReconcileSettings.read(environment: environment)
            Issue.record("\(environment) was accepted")
        } catch {
            #expect(error.problems.map(\.setting) == [variable], "\(error)")
        }
    }

    @Test("differences per warehouse and kind, back to 0 when a warehouse agrees; runs and corrections counted")
    func metrics() throws {
        let registry = PrometheusCollectorRegistry()
        let metrics = ReconcileMetrics(interval: .seconds(60), factory: OpsMetrics.makeFactory(registry: registry))
        func sample(_ series: String) -> Double? {
            registry.emitToString().split(separator: "\n").first { $0.hasPrefix(series + " ") }
                .flatMap { Double($0.dropFirst(series.count + 1)) }
        }
        let row = { (warehouse: String, quantity: Quantity) in
            StockBalance(warehouse: warehouse, sku: "A", status: "available", quantity: quantity)
        }
        let differing = Reconciler.Report(
            warehouses: ["WH1", "WH2"],
            balances: try BalanceReconciliation.compare(expected: [row("WH1", 1), row("WH2", 2)], actual: [row("WH1", 1), row("WH2", 3)]),
            documents: try DocumentReconciliation.compare(
                kinds: [.shipment], expected: [DocumentStatus(kind: .shipment, warehouse: "WH1", id: "S", status: "packed")], actual: []),
            corrections: [.init(key: row("WH2", 0).key, quantity: -1, outcome: .published(eventId: "reconcile-x", letterId: 1))])
        metrics.record(differing, at: Date(timeIntervalSince1970: 100))
        #expect(sample(#"whsync_reconcile_differences{warehouse="WH2",kind="balance"}"#) == 1)
        #expect(sample(#"whsync_reconcile_differences{warehouse="WH1",kind="balance"}"#) == 0)
        #expect(sample(#"whsync_reconcile_differences{warehouse="WH1",kind="shipment"}"#) == 1)
        #expect(sample(#"whsync_reconcile_corrections_total{outcome="published"}"#) == 1)
        #expect(sample(#"whsync_reconcile_runs_total{outcome="differ"}"#) == 1)
        #expect(sample("whsync_reconcile_interval_seconds") == 60)

        let agreeing = Reconciler.Report(
            warehouses: ["WH2"], balances: try BalanceReconciliation.compare(expected: [row("WH2", 3)], actual: [row("WH2", 3)]),
            documents: nil)
        metrics.record(agreeing, at: Date(timeIntervalSince1970: 200))
        #expect(sample(#"whsync_reconcile_differences{warehouse="WH2",kind="balance"}"#) == 0)
        #expect(sample(#"whsync_reconcile_differences{warehouse="WH1",kind="shipment"}"#) == 0)
        #expect(sample(#"whsync_reconcile_runs_total{outcome="agree"}"#) == 1)
        metrics.recordFailure(at: Date(timeIntervalSince1970: 300))
        #expect(sample(#"whsync_reconcile_runs_total{outcome="failed"}"#) == 1)
        #expect(sample("whsync_reconcile_last_run_timestamp_seconds") == 300)
        #expect(sample("whsync_reconcile_last_success_timestamp_seconds") == 200)
    }
}
