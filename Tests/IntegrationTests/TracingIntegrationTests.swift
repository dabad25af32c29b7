import AMQPClient
import Foundation
import Testing
import Tracing
import WarehouseSyncCore
import WarehouseSyncPublisher
import WarehouseSyncTesting
import WarehouseSyncTracing

/// W3C trace context from the WMS to the ERP (docs/tracing.md), through the real executables:
/// `wms-gateway` and the publisher library put the WMS's `traceparent` on the events, the
/// `inventory-worker` (no exporter configured: it forwards the context unchanged) sends it to the
/// ERP, a recording one here, and writes it into the event's log lines as `trace_id`. One of the
/// events is held first: its trace goes on when it is released.
@Suite(.serialized) struct TracingIntegrationTests {
    static let heldTrace = "0af7651916cd43dd8448eb211c80319c"
    static let postedTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

    @Test func eachEventsTraceIdReachesItsERPRequestAndItsLogLinesHeldOrNot() async throws {
        try await RecordingERP.with { erp, erpURL in
            try await WorkerSystem.with(workerEnvironment: ["ERP_BASE_URL": erpURL, "LOG_FORMAT": "json", "LOG_LEVEL": "debug"]) { system in
                let worker = try await system.startWorker(.inventory)

                // Sequence 2 first, through the gateway with the WMS's traceparent: held.
                let heldParent = "00-\(Self.heldTrace)-b7ad6b7169203331-01"
                try await GatewayHarness.with(amqpURL: system.amqpURL, amqp: system.amqp) { gateway in
                    let answer = try await gateway.post(
                        "/events", GatewayEvents.inventory("traced-2", sku: "SKU-0001", sequence: 2),
                        headers: ["traceparent": heldParent, "tracestate": "wms=1"])
                    #expect(answer.status == 202, "\(answer.json)")
                }
                try await system.waitUntil("traced-2 to be held", timeout: .seconds(30)) {
                    Self.lines(of: worker.log, eventId: "traced-2").contains { $0["message"] as? String == "held until its predecessors arrive" }
                }

                // Sequence 1 through the publisher library, called inside the WMS's trace.
                let postedParent = "00-\(Self.postedTrace)-00f067aa0ba902b7-01"
                let publisher = try await EventPublisher.connect(.init(amqp: system.amqp), logger: TestBroker.logger)
                do {
                    try await ServiceContext.withValue(TraceHeaders.context(from: ["traceparent": postedParent])) {
                        try await publisher.publish(body: Array(GatewayEvents.inventory("traced-1", sku: "SKU-0001", sequence: 1).utf8))
                    }
                } catch {
                    await publisher.close()
                    throw error
                }
                await publisher.close()

                try await system.waitUntil("both postings to reach the ERP", timeout: .seconds(60)) {
                    erp.postings.count >= 2
                }
                let postings = erp.postings
                #expect(postings.count == 2)
                let byEvent = Dictionary(postings.map { ($0.headers["idempotency-key"] ?? "?", $0) }) { first, _ in first }
                // No tracer records in the worker: the context goes on exactly as it came.
                #expect(byEvent["traced-1"]?.headers["traceparent"] == postedParent)
                #expect(byEvent["traced-2"]?.headers["traceparent"] == heldParent)
                #expect(byEvent["traced-2"]?.headers["tracestate"] == "wms=1")
                #expect(postings.map { $0.path }.sorted() == ["/inventory-movements", "/inventory-movements"])

                // Every log line of each event carries its trace id: held, released, posted.
                try await system.waitUntil("traced-2 to be logged as posted", timeout: .seconds(30)) {
                    Self.lines(of: worker.log, eventId: "traced-2").contains { $0["message"] as? String == "posted" }
                }
                // traced-1: posted; traced-2: held, released, posted.
                for (eventId, traceId, count) in [("traced-1", Self.postedTrace, 1), ("traced-2", Self.heldTrace, 3)] {
                    let lines = Self.lines(of: worker.log, eventId: eventId)
                    #expect(lines.count >= count, "\(eventId): \(lines)")
                    for line in lines {
                        #expect(line["trace_id"] as? String == traceId, "\(eventId): \(line)")
                        #expect((line["span_id"] as? String)?.count == 16, "\(eventId): \(line)")
                    }
                }
                let released = Self.lines(of: worker.log, eventId: "traced-2").filter { $0["message"] as? String == "released: its predecessors are settled" }
                #expect(released.count == 1)
            }
        }
    }

    /// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the worker records: the ERP's request is in the
    /// WMS's trace as a child of the worker's `post` span, not of the WMS's span, the event's log
    /// lines carry the trace id and the event span's id, and the spans reach the collector.
    @Test func withAnExporterTheERPRequestIsInTheTraceUnderTheWorkersSpansWhichAreExported() async throws {
        try await RecordingERP.with { erp, erpURL in
            let environment = [
                "ERP_BASE_URL": erpURL, "LOG_FORMAT": "json", "LOG_LEVEL": "debug",
                "OTEL_EXPORTER_OTLP_ENDPOINT": erpURL, "OTEL_BSP_SCHEDULE_DELAY": "100",
            ]
            try await WorkerSystem.with(workerEnvironment: environment) { system in
                let worker = try await system.startWorker(.inventory)
                _ = try await worker.awaitLog("exporting traces over OTLP/HTTP")
                let wmsSpan = "00f067aa0ba902b7"
                let publisher = try await EventPublisher.connect(.init(amqp: system.amqp), logger: TestBroker.logger)
                do {
                    try await ServiceContext.withValue(TraceHeaders.context(from: ["traceparent": "00-\(Self.postedTrace)-\(wmsSpan)-01"])) {
                        try await publisher.publish(body: Array(GatewayEvents.inventory("exported-1", sku: "SKU-0002").utf8))
                    }
                } catch {
                    await publisher.close()
                    throw error
                }
                await publisher.close()

                try await system.waitUntil("the posting to reach the ERP and the spans the collector", timeout: .seconds(60)) {
                    erp.postings.count >= 1 && !erp.traceExports.isEmpty
                }
                let sent = try #require(erp.postings.first?.headers["traceparent"].flatMap(TraceIdentifiers.init(traceparent:)))
                #expect(sent.traceId == Self.postedTrace)
                #expect(sent.spanId != wmsSpan, "the ERP's parent is the worker's post span")
                let export = try #require(erp.traceExports.first)
                #expect(export.headers["content-type"] == "application/x-protobuf")

                try await system.waitUntil("exported-1 to be logged as posted", timeout: .seconds(30)) {
                    Self.lines(of: worker.log, eventId: "exported-1").contains { $0["message"] as? String == "posted" }
                }
                for line in Self.lines(of: worker.log, eventId: "exported-1") {
                    #expect(line["trace_id"] as? String == Self.postedTrace, "\(line)")
                    #expect(line["span_id"] as? String != wmsSpan, "the event span's id: \(line)")
                }
            }
        }
    }

    /// `whsync publish` continues the trace of `$TRACEPARENT` (OpenTelemetry's environment
    /// carrier) on every event of the file; without it (and without an exporter) it sets none.
    @Test func whsyncPublishCarriesTheTraceOfItsEnvironment() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        try await TestBroker.applyTopology(amqpURL: vhost.url)
        let whsync = try TestBroker.executablePath("whsync")

        let parent = "00-\(Self.postedTrace)-00f067aa0ba902b7-01"
        let traced = [1, 2].map { GatewayEvents.inventory("env-\($0)", sku: "SKU-T", sequence: $0) }
        let untraced = [GatewayEvents.inventory("env-3", sku: "SKU-T", sequence: 3)]
        for (lines, environment) in [(traced, ["TRACEPARENT": parent, "TRACESTATE": "wms=1"]), (untraced, [:])] {
            let result = try await TestBroker.run(whsync, ["publish", "-", "--amqp-url", vhost.url], environment: environment, stdin: Data(lines.joined(separator: "\n").utf8))
            #expect(result.status == 0, "\(result.stderr)")
        }

        let connection = try await TestBroker.connect(vhost.configuration)
        let consumer = try await connection.consume(queue: "erp.inventory", prefetch: 10)
        let deliveries = await receive(consumer, count: 3, timeout: .seconds(20))
        await consumer.cancel()
        await connection.close()
        #expect(deliveries.map(\.properties.messageId) == ["env-1", "env-2", "env-3"])
        for delivery in deliveries.prefix(2) {
            #expect(delivery.properties.headers["traceparent"] == .string(parent))
            #expect(delivery.properties.headers["tracestate"] == .string("wms=1"))
        }
        #expect(deliveries.last?.properties.headers["traceparent"] == nil)
    }

    /// The worker's JSON log lines about `eventId`.
    static func lines(of log: String, eventId: String) -> [[String: Any]] {
        log.split(separator: "\n").compactMap { line in
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else { return nil }
            return object["whsync.eventId"] as? String == eventId ? object : nil
        }
    }
}
