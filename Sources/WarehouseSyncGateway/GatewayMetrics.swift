import Metrics

/// What `wms-gateway` records (docs/gateway.md "Metrics"), through swift-metrics like the workers.
public struct GatewayMetrics: Sendable {
    public enum Name {
        public static let requests = "whsync_gateway_requests_total"
        public static let events = "whsync_gateway_events_total"
        public static let authFailures = "whsync_gateway_auth_failures_total"
        public static let requestDuration = "whsync_gateway_request_duration_seconds"
        public static let inFlight = "whsync_gateway_requests_in_flight"
    }

    private let factory: any MetricsFactory
    /// Request handling time, from the request's head to the answer (confirms included).
    let requestDuration: Metrics.Timer
    let inFlight: Gauge

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        requestDuration = Metrics.Timer(label: Name.requestDuration, dimensions: [], factory: factory)
        inFlight = Gauge(label: Name.inFlight, dimensions: [], factory: factory)
    }

    /// One answered request to `route` (`events`, `batch`) with its HTTP status code.
    func request(route: String, status: Int) {
        Counter(label: Name.requests, dimensions: [("route", route), ("status", String(status))], factory: factory).increment()
    }

    /// Events by outcome: `accepted`, `invalid`, `unavailable`, `timeout`, `not-confirmed`.
    func events(_ outcome: String, count: Int = 1) {
        guard count > 0 else { return }
        Counter(label: Name.events, dimensions: [("outcome", outcome)], factory: factory).increment(by: count)
    }

    /// One request turned away with 401, by reason (`missing`, `token`, `signature`, `stale`, ...).
    func authFailure(reason: String) {
        Counter(label: Name.authFailures, dimensions: [("reason", reason)], factory: factory).increment()
    }
}
