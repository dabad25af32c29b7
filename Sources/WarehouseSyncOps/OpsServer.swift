import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization
import WarehouseSyncCore

/// The worker's operations endpoint (DESIGN §8): `/healthz`, `/readyz`, `/metrics`.
///
/// ```swift
/// let registry = OpsMetrics.bootstrap()
/// let ops = OpsServer(port: configuration.metricsPort, readiness: checks, registry: registry, logger: logger)
/// // run `ops` in the worker's ServiceGroup
/// ```
public final class OpsServer: Service, Sendable {
    /// Loopback by default; containers set `0.0.0.0`.
    public static let defaultHost = "127.0.0.1"

    public let host: String
    public let port: Int
    public let readiness: ReadinessChecks
    public let registry: PrometheusCollectorRegistry
    let logger: Logger
    private let bound = BoundPort()

    public init(
        host: String = OpsServer.defaultHost, port: Int, readiness: ReadinessChecks,
        registry: PrometheusCollectorRegistry, logger: Logger
    ) {
        self.host = host
        self.port = port
        self.readiness = readiness
        self.registry = registry
        self.logger = logger
    }

    /// The port the server listens on, once it does (useful with port 0). Returns nil if the
    /// waiting task is cancelled first.
    public func boundPort() async -> Int? {
        await bound.value()
    }

    public func run() async throws {
        try await runHTTPServer(
            router: makeRouter(), host: host, port: port, serverName: "whsync-ops", bound: bound, logger: logger,
            announcement: "operations endpoint listening", addressKey: "ops.address")
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        Self.addRoutes(to: router, readiness: readiness, registry: registry)
        return router
    }

    /// `/healthz`, `/readyz` and `/metrics` on `router`: the workers serve them alone, the
    /// gateway beside its own routes.
    public static func addRoutes(to router: Router<BasicRequestContext>, readiness: ReadinessChecks, registry: PrometheusCollectorRegistry) {
        router.get("healthz") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("readyz") { [readiness] _, _ in
            let failing = await readiness.failing()
            let body = ReadinessBody(ready: failing.isEmpty, failing: failing)
            let data = try JSONEncoder().encode(body)
            return Response(
                status: failing.isEmpty ? .ok : .serviceUnavailable,
                headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("metrics") { [registry] _, _ in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(4096)
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
        }
    }
}

/// `/readyz` body: `{"ready":false,"failing":["broker"]}`.
struct ReadinessBody: Codable, Sendable {
    let ready: Bool
    let failing: [String]
}

/// Runs a Hummingbird server until a graceful stop (which lets the requests in hand finish), logs
/// `announcement` with the bound address and hands the port to `bound`.
public func runHTTPServer(
    router: Router<BasicRequestContext>, host: String, port: Int, serverName: String, bound: BoundPort, logger: Logger,
    announcement: Logger.Message, addressKey: String, idleTimeout: Duration? = nil
) async throws {
    let app = Application(
        router: router,
        server: .http1(configuration: .init(idleTimeout: idleTimeout.map { .nanoseconds($0.nanosecondsClamped) })),
        configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: serverName),
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? 0
            logger.notice(announcement, metadata: [addressKey: "\(host):\(port)"])
            bound.set(port)
        },
        logger: logger)
    // `run()`, the Service entry point, not `runService()`: that one runs a ServiceGroup of its
    // own that also reacts to SIGTERM, so the server ended by itself while the process was still
    // stopping, and the process exited 1 ("a service has finished unexpectedly").
    try await app.run()
}

/// The bound port, set once by the server, awaited by tests.
public final class BoundPort: Sendable {
    private struct State {
        var port: Int?
        var waiters: [UUID: CheckedContinuation<Int?, Never>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func set(_ port: Int) {
        let waiters = state.withLock { state in
            state.port = port
            let waiters = state.waiters
            state.waiters = [:]
            return waiters
        }
        for waiter in waiters.values { waiter.resume(returning: port) }
    }

    public func value() async -> Int? {
        let id = UUID()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int?, Never>) in
                let resumeNow: Int?? = state.withLock { state in
                    if let port = state.port { return .some(port) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let resumeNow { continuation.resume(returning: resumeNow) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }
}
