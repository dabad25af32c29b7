import Instrumentation
import Logging
import Tracing
import W3CTraceContext

/// W3C trace context in message and request headers (docs/tracing.md): `traceparent` and
/// `tracestate` on the AMQP events, on the gateway's requests, on the ERP's requests.
///
/// Extraction and injection go through the active instrument (`InstrumentationSystem`: the OTLP
/// tracer when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else nothing), and the incoming context is
/// also kept as it arrived: when no tracer records, it is what goes on, unchanged, as W3C Trace
/// Context asks of a participant that does not record. A malformed `traceparent` is dropped.
public enum TraceHeaders {
    public static let traceparent = "traceparent"
    public static let tracestate = "tracestate"

    /// The context the `headers` carry (lowercase names), on top of `base`: whatever the active
    /// instrument extracts, and the valid `traceparent` (with its `tracestate`) as it arrived.
    public static func context(from headers: [String: String], base: ServiceContext = .topLevel) -> ServiceContext {
        var context = base
        InstrumentationSystem.instrument.extract(headers, into: &context, using: DictionaryExtractor())
        if let parent = headers[traceparent] {
            let state = headers[tracestate]
            if (try? TraceContext(traceParentHeaderValue: parent, traceStateHeaderValue: state)) != nil {
                context.incomingTrace = IncomingTrace(traceparent: parent, tracestate: state)
            }
        }
        return context
    }

    /// The headers to send on behalf of `context`: what the active instrument injects (the
    /// current span as parent), or, when it injects no `traceparent` (no tracer records), the
    /// incoming one unchanged. Empty when the context carries no trace.
    public static func headers(for context: ServiceContext) -> [String: String] {
        var headers: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &headers, using: DictionaryInjector())
        if headers[traceparent] == nil, let incoming = context.incomingTrace {
            headers[traceparent] = incoming.traceparent
            headers[tracestate] = incoming.tracestate
        }
        return headers
    }

    /// The headers for the task's current context (``headers(for:)``); empty outside any.
    public static var current: [String: String] {
        guard let context = ServiceContext.current else { return [:] }
        return headers(for: context)
    }

    /// The trace and span ids that ``headers(for:)`` sends for `context`: the span's under a
    /// recording tracer, the incoming parent's otherwise. `nil` when it carries no trace.
    public static func identifiers(of context: ServiceContext) -> TraceIdentifiers? {
        headers(for: context)[traceparent].flatMap(TraceIdentifiers.init(traceparent:))
    }
}

/// A trace's id and a span's id, as log metadata: `trace_id`, `span_id` (lowercase hex, the
/// names OpenTelemetry's log correlation uses).
public struct TraceIdentifiers: Sendable, Hashable {
    public static let traceIdKey = "trace_id"
    public static let spanIdKey = "span_id"

    public let traceId: String
    public let spanId: String

    /// From a valid `traceparent` (`00-<trace id>-<span id>-<flags>`); `nil` otherwise.
    public init?(traceparent: String) {
        guard let parsed = try? TraceContext(traceParentHeaderValue: traceparent) else { return nil }
        traceId = parsed.traceID.description
        spanId = parsed.spanID.description
    }

    /// Adds `trace_id` and `span_id` to `logger`'s metadata.
    public func annotate(_ logger: inout Logger) {
        logger[metadataKey: Self.traceIdKey] = "\(traceId)"
        logger[metadataKey: Self.spanIdKey] = "\(spanId)"
    }
}

extension Logger {
    /// This logger with the `trace_id` and `span_id` of `context` (the task's current one by
    /// default), when it carries a trace.
    public func traced(_ context: ServiceContext? = ServiceContext.current) -> Logger {
        guard let context, let ids = TraceHeaders.identifiers(of: context) else { return self }
        var logger = self
        ids.annotate(&logger)
        return logger
    }
}

/// The W3C headers a message or request arrived with, kept to be forwarded unchanged.
public struct IncomingTrace: Sendable, Hashable {
    public let traceparent: String
    public let tracestate: String?
}

private enum IncomingTraceKey: ServiceContextKey {
    typealias Value = IncomingTrace
    static var nameOverride: String? { "whsync-incoming-trace" }
}

extension ServiceContext {
    /// The W3C headers the work in this context arrived with (``TraceHeaders/context(from:base:)``).
    public var incomingTrace: IncomingTrace? {
        get { self[IncomingTraceKey.self] }
        set { self[IncomingTraceKey.self] = newValue }
    }
}

/// Reads headers from a dictionary with lowercase names.
public struct DictionaryExtractor: Extractor {
    public init() {}
    public func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key] ?? carrier[key.lowercased()]
    }
}

/// Writes headers into a dictionary.
public struct DictionaryInjector: Injector {
    public init() {}
    public func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}
