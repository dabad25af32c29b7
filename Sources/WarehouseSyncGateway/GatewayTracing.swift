import HTTPTypes
import Hummingbird
import Tracing
import WarehouseSyncTracing

extension GatewayServer {
    /// The W3C headers a WMS may send with its request (docs/tracing.md).
    static let traceFields: [HTTPField.Name] = [
        HTTPField.Name(TraceHeaders.traceparent)!, HTTPField.Name(TraceHeaders.tracestate)!, HTTPField.Name("baggage")!,
    ]

    /// Handles `request` in the trace its `traceparent` names: in a server span when a tracer
    /// records, so that the events it publishes carry that span as their parent; otherwise the
    /// request's own `traceparent` and `tracestate` go on each event unchanged.
    func traced(_ request: Request, _ handle: () async -> Response) async -> Response {
        var headers: [String: String] = [:]
        for name in Self.traceFields {
            if let value = request.headers[name] { headers[name.canonicalName] = value }
        }
        let context = TraceHeaders.context(from: headers)
        return await TraceSpans.run("POST \(request.uri.path)", context: context, kind: .server) {
            await handle()
        }
    }
}
