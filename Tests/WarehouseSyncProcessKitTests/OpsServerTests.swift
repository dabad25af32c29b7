import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Synchronization
import Testing
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncOps
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncWorker

private struct HTTPAnswer: Sendable {
    let status: UInt
    let body: String
}

/// Runs an `OpsServer` on a free loopback port in a service group, calls `body` with a GET
/// function for it, then shuts the group down gracefully.
private func withOpsServer(
    readiness: ReadinessChecks = ReadinessChecks(),
    registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
    _ body: @Sendable (_ get: @Sendable (String) async throws -> HTTPAnswer) async throws -> Void
) async throws {
    var logger = Logger(label: "ops-server-test")
    logger.logLevel = .warning
    let server = OpsServer(port: 0, readiness: readiness, registry: registry, logger: logger)
    let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(services: [.init(service: server)], logger: logger))
    let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
    do {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = try #require(await server.boundPort())
            #expect(port > 0)
            try await body { path in
                let request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
                let response = try await client.execute(request, timeout: .seconds(5))
                let bytes = try await response.body.collect(upTo: 1 << 20)
                return HTTPAnswer(status: response.status.code, body: String(buffer: bytes))
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    } catch {
        await group.triggerGracefulShutdown()
        try await client.shutdown()
        throw error
    }
    try await client.shutdown()
}

@Suite("Operations endpoint")
struct OpsServerTests {
    @Test("GET /healthz answers 200 while the server runs")
    func healthz() async throws {
        try await withOpsServer { get in
            let answer = try await get("/healthz")
            #expect(answer.status == 200)
            #expect(answer.body == "ok\n")
        }
    }

    @Test("GET /readyz is 503 naming the failing checks, then 200 once they pass")
    func readyz() async throws {
        let brokerConnected = Atomic<Bool>(false)
        let checks = ReadinessChecks()
        checks.register("store") { true }
        checks.register("broker") { brokerConnected.load(ordering: .relaxed) }
        checks.register("circuit") { true }
        try await withOpsServer(readiness: checks) { get in
            let notReady = try await get("/readyz")
            #expect(notReady.status == 503)
            let json = try JSONSerialization.jsonObject(with: Data(notReady.body.utf8)) as? [String: Any]
            #expect(json?["ready"] as? Bool == false)
            #expect(json?["failing"] as? [String] == ["broker"])

            brokerConnected.store(true, ordering: .relaxed)
            let ready = try await get("/readyz")
            #expect(ready.status == 200)
            #expect(ready.body.contains(#""failing":[]"#))
        }
    }

    @Test("GET /readyz with no checks registered is 200")
    func readyzEmpty() async throws {
        try await withOpsServer { get in
            let answer = try await get("/readyz")
            #expect(answer.status == 200)
        }
    }

    @Test("GET /metrics exposes the worker's counters and histograms with their labels")
    func metrics() async throws {
        let registry = PrometheusCollectorRegistry()
        let metrics = WorkerMetrics(stream: "goods-receipt", factory: OpsMetrics.makeFactory(registry: registry))
        metrics.consumed.increment(by: 3)
        metrics.posted.increment()
        metrics.duplicates.increment()
        metrics.stale.increment()
        metrics.held.increment()
        metrics.parked.increment()
        metrics.retries.increment(by: 2)
        metrics.deadLettered(reason: "invalid")
        metrics.deadLettered(reason: "invalid")
        metrics.recordERPLatency(.milliseconds(30))
        metrics.recordEventAge(.seconds(2))
        metrics.recordStoreLatency(.milliseconds(3), decide: true)
        metrics.recordStoreLatency(.milliseconds(40), decide: false)
        metrics.recordStoreLatency(.milliseconds(60), decide: false)

        try await withOpsServer(registry: registry) { get in
            let answer = try await get("/metrics")
            #expect(answer.status == 200)
            let text = answer.body
            for line in [
                #"whsync_consumed_total{stream="goods-receipt"} 3"#,
                #"whsync_posted_total{stream="goods-receipt"} 1"#,
                #"whsync_duplicates_total{stream="goods-receipt"} 1"#,
                #"whsync_stale_total{stream="goods-receipt"} 1"#,
                #"whsync_held_total{stream="goods-receipt"} 1"#,
                #"whsync_parked_total{stream="goods-receipt"} 1"#,
                #"whsync_retries_total{stream="goods-receipt"} 2"#,
                #"whsync_dead_lettered_total{stream="goods-receipt",reason="invalid"} 2"#,
                #"whsync_erp_latency_seconds_bucket{stream="goods-receipt",le="0.005"} 0"#,
                #"whsync_erp_latency_seconds_bucket{stream="goods-receipt",le="0.05"} 1"#,
                #"whsync_erp_latency_seconds_bucket{stream="goods-receipt",le="10.0"} 1"#,
                #"whsync_erp_latency_seconds_count{stream="goods-receipt"} 1"#,
                #"whsync_event_age_at_posting_seconds_bucket{stream="goods-receipt",le="1.0"} 0"#,
                #"whsync_event_age_at_posting_seconds_bucket{stream="goods-receipt",le="2.5"} 1"#,
                #"whsync_event_age_at_posting_seconds_count{stream="goods-receipt"} 1"#,
                #"whsync_store_latency_seconds_bucket{stream="goods-receipt",step="decide",le="0.002"} 0"#,
                #"whsync_store_latency_seconds_bucket{stream="goods-receipt",step="decide",le="0.005"} 1"#,
                #"whsync_store_latency_seconds_count{stream="goods-receipt",step="decide"} 1"#,
                #"whsync_store_latency_seconds_bucket{stream="goods-receipt",step="settle",le="0.05"} 1"#,
                #"whsync_store_latency_seconds_bucket{stream="goods-receipt",step="settle",le="0.1"} 2"#,
                #"whsync_store_latency_seconds_count{stream="goods-receipt",step="settle"} 2"#,
            ] {
                #expect(text.contains(line), "missing \(line)\n\(text)")
            }
        }
    }
}
