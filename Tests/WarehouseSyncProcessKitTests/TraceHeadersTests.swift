import InMemoryTracing
import Logging
import Synchronization
import Testing
import Tracing
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncPublisher
import WarehouseSyncTracing
@testable import WarehouseSyncProcessKit
@testable import WarehouseSyncWorker

/// W3C trace context in headers (docs/tracing.md): what is extracted from a message or request,
/// what is injected into the next one, with and without a tracer that records. No tracer is
/// bootstrapped here (the test process shares one): the recording ones are bound to the task.
@Suite("Trace headers")
struct TraceHeadersTests {
    static let traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    static let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"

    @Test("without a recording tracer the incoming traceparent and tracestate go on unchanged")
    func forwardedUnchanged() {
        let context = TraceHeaders.context(from: ["traceparent": Self.parent, "tracestate": Self.state, "partition-key": "WH1/SKU-1"])
        #expect(TraceHeaders.headers(for: context) == ["traceparent": Self.parent, "tracestate": Self.state])
        #expect(TraceHeaders.identifiers(of: context) == TraceIdentifiers(traceparent: Self.parent))
        #expect(TraceHeaders.identifiers(of: context)?.traceId == Self.traceId)
        #expect(TraceHeaders.identifiers(of: context)?.spanId == "00f067aa0ba902b7")
    }

    @Test(
        "a malformed or missing traceparent is dropped, and its tracestate with it",
        arguments: [
            ["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"],  // no flags
            ["traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"],  // zero trace id
            ["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"],  // zero span id
            ["traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"],  // uppercase
            ["traceparent": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],  // version ff
            ["tracestate": "congo=t61rcWkgMzE"],
            [:],
        ])
    func malformedDropped(headers: [String: String]) {
        let context = TraceHeaders.context(from: headers)
        #expect(TraceHeaders.headers(for: context).isEmpty)
        #expect(TraceHeaders.identifiers(of: context) == nil)
    }

    @Test("outside any context nothing is sent, and a logger gets no trace metadata")
    func nothingOutside() {
        #expect(TraceHeaders.current.isEmpty)
        let logger = Logger(label: "test").traced()
        #expect(logger[metadataKey: "trace_id"] == nil)
    }

    @Test("a logger in an event's context carries its trace_id and span_id")
    func loggerMetadata() {
        let context = TraceHeaders.context(from: ["traceparent": Self.parent])
        let logger = ServiceContext.withValue(context) { Logger(label: "test").traced() }
        #expect(logger[metadataKey: "trace_id"] == "\(Self.traceId)")
        #expect(logger[metadataKey: "span_id"] == "00f067aa0ba902b7")
    }

    @Test("the publisher library puts the caller's trace on the message it publishes")
    func outboundMessage() throws {
        let body = #"{"schema":"inventory.delta/1","eventId":"t1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":1,"sku":"SKU-1","quantity":1,"uom":"EA","status":"available","reason":"adjustment"}"#
        let event = try EventDecoder().decode(Array(body.utf8))
        let headers = ServiceContext.withValue(TraceHeaders.context(from: ["traceparent": Self.parent])) { TraceHeaders.current }
        let message = OutboundMessage(event: event, body: Array(body.utf8)).traced(headers)
        #expect(message.properties.headers["traceparent"]?.stringValue == Self.parent)
        #expect(message.properties.headers["partition-key"]?.stringValue == "WH1/SKU-1")
        #expect(OutboundMessage(event: event, body: []).traced([:]).properties.headers["traceparent"] == nil)
    }

    @Test("an event's trace: its span is a child of the delivery's traceparent, its steps children of its span")
    func eventSpans() async throws {
        let tracer = InMemoryTracer()
        await withTracer(tracer) {
            let trace = EventTrace(headers: ["traceparent": Self.parent], stream: .inventory)
            let decoded = trace.decode { () -> Int in 1 }
            #expect(decoded == 1)
            await trace.run {
                await EventStep.gate.run {}
                await EventStep.post.run {
                    // What the ERP client sends: the incoming traceparent, since the in-memory
                    // tracer injects no W3C header of its own.
                    #expect(TraceHeaders.current["traceparent"] == Self.parent)
                }
                await EventStep.settle.run {}
            }
        }
        let spans = tracer.finishedSpans
        #expect(spans.map(\.operationName).sorted() == ["decode", "gate", "inventory event", "post", "settle"])
        let event = try #require(spans.first { $0.operationName == "inventory event" })
        for step in spans where step.operationName != "inventory event" {
            #expect(step.spanContext.parentSpanID == event.spanContext.spanID, "\(step.operationName)")
            #expect(step.spanContext.traceID == event.spanContext.traceID)
        }
        #expect(event.context.incomingTrace?.traceparent == Self.parent)
    }

    @Test("a batch request is sent in its first item's context, and its span links the other items")
    func batchContext() async throws {
        final class ContextERP: ERPClient {
            let sent = Mutex<[String?]>([])
            func post(_ document: PostingDocument) async -> ERPResponseClass { .posted(documentId: "x") }
            func health() async -> Bool { true }
            func post(batch: PostingBatch) async -> [ERPResponseClass] {
                sent.withLock { $0.append(TraceHeaders.current["traceparent"]) }
                return batch.documents.map { _ in .posted(documentId: "x") }
            }
        }
        let body = #"{"schema":"inventory.delta/1","eventId":"b1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":1,"sku":"SKU-1","quantity":1,"uom":"EA","status":"available","reason":"adjustment"}"#
        let document = PostingDocument(event: try EventDecoder().decode(Array(body.utf8)))

        // No recording tracer: the item's own incoming traceparent, unchanged.
        let erp = ContextERP()
        let batcher = PostingBatcher(erp: erp, maxItems: 10)
        _ = await ServiceContext.withValue(TraceHeaders.context(from: ["traceparent": Self.parent])) {
            await batcher.post(document, key: "WH1/SKU-1")
        }
        _ = await batcher.post(document, key: "WH1/SKU-1")
        #expect(erp.sent.withLock { $0 } == [Self.parent, nil])

        // A recording tracer: a `post batch` span under the first item's, linking the others.
        let tracer = InMemoryTracer()
        let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        await withTracer(tracer) {
            let contexts = [Self.parent, other].map { TraceHeaders.context(from: ["traceparent": $0]) }
            let items = contexts.map { TraceSpans.start("item", context: $0)! }
            _ = await ServiceContext.withValue(items[0].context) { await batcher.post(document, key: "WH1/SKU-1") }
            _ = await TraceSpans.run("linked batch", context: items[0].context, kind: .client, links: [items[1].context]) { 0 }
            for item in items { item.end() }
        }
        let spans = tracer.finishedSpans
        let first = try #require(spans.first { $0.operationName == "item" && $0.context.incomingTrace?.traceparent == Self.parent })
        let batch = try #require(spans.first { $0.operationName == "post batch" })
        #expect(batch.parentSpanID == first.spanID)
        #expect(batch.kind == .client)
        let linked = try #require(spans.first { $0.operationName == "linked batch" })
        #expect(linked.parentSpanID == first.spanID)
        #expect(linked.links.count == 1)
    }

    @Test("exporting is on only with an OTLP endpoint, and off with OTEL_SDK_DISABLED")
    func exporterConfiguration() {
        #expect(!ProcessTracing.isConfigured([:]))
        #expect(!ProcessTracing.isConfigured(["OTEL_EXPORTER_OTLP_ENDPOINT": ""]))
        #expect(ProcessTracing.isConfigured(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"]))
        #expect(ProcessTracing.isConfigured(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"]))
        #expect(!ProcessTracing.isConfigured(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"]))
    }
}
