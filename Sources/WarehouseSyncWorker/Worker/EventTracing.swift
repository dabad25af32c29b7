import Tracing
import WarehouseSyncCore
import WarehouseSyncTracing

/// One event's trace through the worker (docs/tracing.md): the W3C context its delivery (or its
/// held message, on release) carries in `traceparent`/`tracestate`, and, when a tracer records,
/// the event's span under it, with `decode`, `gate`, `post` and `settle` as its children.
///
/// The pipeline runs the event's work in ``run(_:)``: the task-local context is then the event's,
/// so the ERP client sends its `traceparent` (the `post` span's, or the incoming one unchanged
/// when no tracer records) and ``WorkerPipeline``'s event logger adds its `trace_id` and
/// `span_id`.
struct EventTrace: Sendable {
    /// The context of the event's work: its span's, or the incoming one when no tracer records.
    let context: ServiceContext
    private let span: (any Span)?

    /// `released`: a held event taken up again after its predecessors settled.
    init(headers: [String: String], stream: EventStream, released: Bool = false) {
        let incoming = TraceHeaders.context(from: headers)
        span = TraceSpans.start(released ? "\(stream) event released" : "\(stream) event", context: incoming, kind: .consumer)
        context = span?.context ?? incoming
        span?.attributes["messaging.system"] = "rabbitmq"
    }

    init(_ message: PipelineMessage, stream: EventStream) {
        self.init(headers: message.headers, stream: stream)
        if let id = message.properties.messageId { span?.attributes["messaging.message.id"] = id }
    }

    /// The `decode` span around `body` (run in the consume loop, before the event's task).
    func decode<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try TraceSpans.measure("decode", context: context, body)
    }

    /// Names the event on its span, once decoded.
    func annotate(_ event: WarehouseEvent) {
        guard let span else { return }
        span.attributes["whsync.eventId"] = event.eventId
        span.attributes["whsync.key"] = event.sequencingKey
        span.attributes["whsync.sequence"] = Int64(event.sequence)
    }

    /// Runs the event's work in its context, then ends its span.
    func run<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async rethrows -> T {
        defer { span?.end() }
        return try await within(body)
    }

    /// Runs `body` in the event's context and leaves its span open: work done for this event
    /// together with others' (a key's queued events decided in one step).
    func within<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async rethrows -> T {
        try await ServiceContext.$current.withValue(context) { try await body() }
    }
}

/// The spans of one step of the current event's work (``EventTrace/run(_:)``).
enum EventStep: String {
    case gate, post, settle

    /// Runs `body` in this step's span, a child of the current event's span.
    func run<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async rethrows -> T {
        try await TraceSpans.run(rawValue, kind: self == .post ? .client : .internal, body)
    }
}
