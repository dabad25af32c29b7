import Instrumentation
import Tracing

/// Spans through the active tracer (docs/tracing.md), at no cost when none records: with the
/// no-op tracer (no `OTEL_EXPORTER_OTLP_ENDPOINT`) no span is made, and the work only runs in
/// the context it was given, so that the incoming trace still reaches the ERP unchanged.
public enum TraceSpans {
    /// Whether a tracer that records spans is active (bootstrapped, or bound to the task).
    public static var isRecording: Bool { !(InstrumentationSystem.tracer is NoOpTracer) }

    /// A span started as a child of `context`, or `nil` when no tracer records. The caller ends it.
    public static func start(_ name: String, context: ServiceContext, kind: SpanKind = .internal) -> (any Span)? {
        let tracer = InstrumentationSystem.tracer
        guard !(tracer is NoOpTracer) else { return nil }
        return tracer.startSpan(name, context: context, ofKind: kind)
    }

    /// Runs `body` in a span `name`, a child of `context` (the task's current one by default),
    /// with `links` to other spans (a batch request's items), that task-local context bound
    /// while it runs. An error `body` throws marks the span failed. Without a recording tracer,
    /// `body` runs in `context` itself.
    public static func run<T>(
        _ name: String, context: ServiceContext? = nil, kind: SpanKind = .internal, links: [ServiceContext] = [],
        isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
    ) async rethrows -> T {
        let parent = context ?? ServiceContext.current ?? .topLevel
        guard let span = start(name, context: parent, kind: kind) else {
            if context == nil { return try await body() }
            return try await ServiceContext.$current.withValue(parent) { try await body() }
        }
        defer { span.end() }
        for link in links { span.addLink(SpanLink(context: link, attributes: [:])) }
        do {
            return try await ServiceContext.$current.withValue(span.context) { try await body() }
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    /// ``run(_:context:kind:links:isolation:_:)`` for synchronous work with a typed error (the
    /// worker's decode). The context is not bound: the work reads none.
    public static func measure<T, E: Error>(
        _ name: String, context: ServiceContext, _ body: () throws(E) -> T
    ) throws(E) -> T {
        guard let span = start(name, context: context) else { return try body() }
        defer { span.end() }
        do {
            return try body()
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }
}
