import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization
import WarehouseSyncCore
import WarehouseSyncLogging
import WarehouseSyncOps
import WarehouseSyncPublisher

/// `wms-gateway`'s HTTP server (docs/gateway.md): `POST /events`, `POST /events:batch`, and the
/// operations routes `/healthz`, `/readyz`, `/metrics` on the same port.
///
/// An event is answered `202` only after the broker confirmed it; nothing invalid is published;
/// a request over the size limits gets `413` before anything is published, one without valid
/// credentials `401`, and one the broker could not take `503` (the caller sends it again, which
/// the eventId makes harmless).
public final class GatewayServer: Service, Sendable {
    enum Route: String {
        case single = "events"
        case batch = "batch"
    }

    public let configuration: GatewayConfiguration
    let publisher: EventPublisher
    let readiness: ReadinessChecks
    let registry: PrometheusCollectorRegistry
    let metrics: GatewayMetrics
    let logger: Logger
    private let bound = BoundPort()
    private let inFlight = Atomic<Int>(0)

    public init(
        configuration: GatewayConfiguration, publisher: EventPublisher, registry: PrometheusCollectorRegistry,
        metrics: GatewayMetrics = GatewayMetrics(), logger: Logger
    ) {
        self.configuration = configuration
        self.publisher = publisher
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        readiness = ReadinessChecks()
        readiness.register("broker") { [publisher] in publisher.isReady }
    }

    /// The port the server listens on, once it does (useful with port 0).
    public func boundPort() async -> Int? {
        await bound.value()
    }

    public func run() async throws {
        // An idle keep-alive connection is closed after a while, so clients cannot pile them up.
        try await runHTTPServer(
            router: makeRouter(), host: configuration.host, port: configuration.port, serverName: "wms-gateway", bound: bound,
            logger: logger, announcement: "gateway listening", addressKey: "gateway.address", idleTimeout: .seconds(60))
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        OpsServer.addRoutes(to: router, readiness: readiness, registry: registry)
        router.post("events") { [self] request, _ in await traced(request) { await handle(request, route: .single) } }
        router.post("events:batch") { [self] request, _ in await traced(request) { await handle(request, route: .batch) } }
        return router
    }

    // MARK: Handling

    func handle(_ request: Request, route: Route) async -> Response {
        let start = ContinuousClock.now
        let credentials = GatewayAuthentication.Credentials(
            authorization: request.headers[.authorization],
            timestamp: request.headers[Self.timestampField],
            signature: request.headers[Self.signatureField])
        let response: Response
        // Credentials first: a request without them never takes a slot or has its body read.
        switch configuration.authentication.verdict(credentials) {
        case .rejected(let rejection):
            response = unauthorized(rejection)
        case _ where request.headers.contains(where: { $0.name.canonicalName.hasPrefix(WireHeader.ownPrefix) }):
            // The workers trust their own headers (a replay's, an attempt's) no further than the
            // store vouches for them, but a WMS has no business sending them at all.
            response = GatewayReply.error(
                .badRequest, code: "reserved-header",
                message: "headers named \(WireHeader.ownPrefix)* are WarehouseSync's own (whsync-replay-of, whsync-attempt, ...); a WMS may not send them")
        case let verdict:
            let inHand = inFlight.add(1, ordering: .relaxed).newValue
            metrics.inFlight.record(inHand)
            if inHand <= configuration.maxConcurrentRequests {
                response = await readAndProcess(request, route: route, credentials: credentials, signed: verdict == .bodyNeeded)
            } else {
                response = GatewayReply.error(
                    .serviceUnavailable, code: "overloaded",
                    message: "more than \(configuration.maxConcurrentRequests) requests in hand; retry shortly", retryAfter: 1)
            }
            metrics.inFlight.record(inFlight.subtract(1, ordering: .relaxed).newValue)
        }
        metrics.requestDuration.recordNanoseconds(start.duration(to: .now).nanosecondsClamped)
        metrics.request(route: route.rawValue, status: response.status.code)
        return response
    }

    private func readAndProcess(
        _ request: Request, route: Route, credentials: GatewayAuthentication.Credentials, signed: Bool
    ) async -> Response {
        // A single event is held to the contract's limit; a batch to the gateway's.
        let limit = route == .single ? min(configuration.maxBodyBytes, EventDecoder.maxBodyBytes) : configuration.maxBodyBytes
        let body: [UInt8]
        do {
            body = try await Self.readBody(of: request, upTo: limit)
        } catch is BodyReadTimedOut {
            return GatewayReply.error(
                .requestTimeout, code: "too-slow",
                message: "the body did not arrive within \(Self.bodyReadTimeout.components.seconds) s")
        } catch is NIOTooManyBytesError {
            return GatewayReply.error(
                .contentTooLarge, code: "too-large",
                message: "the body is larger than \(limit) bytes\(route == .single ? " (one event)" : " (GATEWAY_MAX_BODY)")")
        } catch {
            return GatewayReply.error(.badRequest, code: "unreadable", message: "could not read the body: \(error)")
        }
        if signed, let rejection = configuration.authentication.checkSignature(credentials, body: body) {
            return unauthorized(rejection)
        }
        switch route {
        case .single: return await publishOne(body)
        case .batch: return await publishBatch(body)
        }
    }

    /// How long a request's body may take to arrive: a slot is held meanwhile, so a client that
    /// trickles its body cannot keep one (or all) for long.
    static let bodyReadTimeout: Duration = .seconds(30)
    struct BodyReadTimedOut: Error {}

    private static func readBody(of request: Request, upTo limit: Int) async throws -> [UInt8] {
        try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                var buffer = try await request.body.collect(upTo: limit)
                return buffer.readBytes(length: buffer.readableBytes) ?? []
            }
            group.addTask {
                try await Task.sleep(for: bodyReadTimeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let body = first else { throw BodyReadTimedOut() }
            return body
        }
    }

    private func unauthorized(_ rejection: GatewayAuthentication.Rejection) -> Response {
        metrics.authFailure(reason: rejection.reason)
        logger.notice("request refused", metadata: ["gateway.auth": "\(rejection.reason)"])
        return GatewayReply.error(
            .unauthorized, code: "unauthorized", message: rejection.message, challenge: configuration.authentication.challenge)
    }

    private func publishOne(_ body: [UInt8]) async -> Response {
        let event: ValidatedEvent
        do throws(PublishError) {
            event = try publisher.validate(body)
        } catch {
            metrics.events("invalid")
            logger.info("invalid event refused", metadata: ["error": "\(error.message)"])
            return GatewayReply.error(.badRequest, code: error.code.name, message: error.message, violations: error.violations)
        }
        let outcome = await publisher.publish([event])[0]
        let result = EventResult(event: event, outcome: outcome)
        metrics.events(result.status)
        switch outcome {
        case .success:
            return GatewayReply.json(.accepted, result)
        case .failure(let error):
            logFailure(error, count: 1)
            return GatewayReply.error(.serviceUnavailable, code: error.code.name, message: error.message, retryAfter: Self.retryAfter(error))
        }
    }

    private func publishBatch(_ body: [UInt8]) async -> Response {
        let batch: GatewayBatch
        do throws(GatewayBatch.Problem) {
            batch = try GatewayBatch(parsing: body, maxEvents: configuration.maxBatchEvents)
        } catch {
            switch error {
            case .invalid(let invalid):
                return GatewayReply.error(.badRequest, code: "invalid", message: invalid.description)
            case .tooMany(let count):
                return GatewayReply.error(
                    .contentTooLarge, code: "too-large",
                    message: "\(count)\(count > configuration.maxBatchEvents + 1 ? "" : " or more") events in one batch; at most \(configuration.maxBatchEvents) (GATEWAY_MAX_BATCH)")
            }
        }
        guard !batch.items.isEmpty else {
            return GatewayReply.error(.badRequest, code: "invalid", message: "the batch holds no events")
        }
        var results: [EventResult?] = Array(repeating: nil, count: batch.items.count)
        var valid: [(index: Int, event: ValidatedEvent)] = []
        for (index, item) in batch.items.enumerated() {
            do throws(PublishError) {
                valid.append((index, try publisher.validate(item.body)))
            } catch {
                results[index] = EventResult(index: index, line: item.line, invalidBody: item.body, error: error)
            }
        }
        let outcomes = await publisher.publish(valid.map(\.event))
        for ((index, event), outcome) in zip(valid, outcomes) {
            var result = EventResult(event: event, outcome: outcome)
            result.index = index
            result.line = batch.items[index].line
            results[index] = result
        }
        let summary = BatchResult(results: results.map { $0! })
        metrics.events("accepted", count: summary.accepted)
        metrics.events("invalid", count: summary.invalid)
        for result in summary.results where result.status != "accepted" && result.status != "invalid" {
            metrics.events(result.status)
        }
        if summary.invalid > 0 {
            logger.info("batch events refused as invalid", metadata: ["events.invalid": "\(summary.invalid)", "events.total": "\(summary.results.count)"])
        }
        var retryAfter: Int?
        for case .failure(let error) in outcomes {
            if retryAfter == nil { logFailure(error, count: summary.failed) }
            retryAfter = max(retryAfter ?? 0, Self.retryAfter(error))
        }
        return GatewayReply.json(summary.httpStatus, summary, retryAfter: retryAfter)
    }

    private func logFailure(_ error: PublishError, count: Int) {
        // Not confirmed means a topology problem (no queue bound, exchange gone): an operator's.
        logger.log(
            level: error.code == .notConfirmed ? .error : .warning, "events not published",
            metadata: ["error": "\(error)", "events": "\(count)"])
    }

    /// Seconds a client should wait before sending again: a broker blip is short; a topology
    /// problem (nothing bound for the routing key) waits for an operator.
    static func retryAfter(_ error: PublishError) -> Int {
        error.code == .notConfirmed ? 30 : 5
    }

    static let timestampField = HTTPField.Name(GatewayAuthentication.timestampHeader)!
    static let signatureField = HTTPField.Name(GatewayAuthentication.signatureHeader)!
}
