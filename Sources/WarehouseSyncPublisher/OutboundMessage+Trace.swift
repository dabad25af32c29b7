import AMQPClient

extension OutboundMessage {
    /// This message with the W3C trace headers `headers` (`TraceHeaders.headers(for:)`:
    /// `traceparent`, `tracestate`), which the workers continue the trace from (docs/tracing.md).
    public func traced(_ headers: [String: String]) -> OutboundMessage {
        guard !headers.isEmpty else { return self }
        var message = self
        for (name, value) in headers { message.properties.headers[name] = .string(value) }
        return message
    }
}
