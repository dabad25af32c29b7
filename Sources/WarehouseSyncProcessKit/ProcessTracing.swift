import Foundation
import Logging
import OTel
import ServiceLifecycle
import Synchronization
import Tracing
import WarehouseSyncWorker

/// The process's tracer (docs/tracing.md): swift-otel's, exporting spans over OTLP/HTTP, when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; otherwise
/// none is bootstrapped and the no-op tracer costs next to nothing (the incoming `traceparent`
/// still reaches the ERP, unchanged). swift-otel reads the other standard variables itself
/// (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`,
/// `OTEL_EXPORTER_OTLP_HEADERS`, ...). Only traces: logs stay on standard error and metrics on
/// `/metrics`.
public enum ProcessTracing {
    /// Either one turns exporting on.
    public static let endpointVariables = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]

    /// The exporter's service once bootstrapped: ``ProcessGroup`` runs it first and stops it
    /// last, so the spans of the work finished during a graceful stop are still sent.
    private static let exporter = Mutex<(any Service)?>(nil)

    static var exporterService: (any Service)? { exporter.withLock { $0 } }

    /// Whether `environment` asks for exporting (an endpoint set, the SDK not disabled).
    public static func isConfigured(_ environment: [String: String]) -> Bool {
        guard environment["OTEL_SDK_DISABLED"]?.lowercased() != "true" else { return false }
        return endpointVariables.contains { !(environment[$0] ?? "").isEmpty }
    }

    /// Bootstraps the OTLP tracer when ``isConfigured(_:)``, once per process, with
    /// `serviceName` unless `OTEL_SERVICE_NAME` names another. A configuration swift-otel refuses
    /// (an `OTEL_EXPORTER_OTLP_PROTOCOL` other than `http/protobuf` or `http/json`: the gRPC
    /// exporter is not built) fails the start with one line.
    public static func bootstrap(
        serviceName: String, environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger
    ) throws {
        guard isConfigured(environment), exporterService == nil else { return }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.diagnosticLogger = .custom(logger)
        let backend: (factory: any Tracer, service: any Service)
        do {
            let made = try OTel.makeTracingBackend(configuration: configuration)
            backend = (made.factory, made.service)
        } catch {
            throw WorkerStartError("OTEL_EXPORTER_OTLP_ENDPOINT: cannot export traces: \(error)")
        }
        InstrumentationSystem.bootstrap(backend.factory)
        exporter.withLock { $0 = backend.service }
        let endpoint = endpointVariables.compactMap { environment[$0] }.first { !$0.isEmpty } ?? ""
        logger.notice("exporting traces over OTLP/HTTP", metadata: ["otel.endpoint": "\(endpoint)"])
    }

    /// Runs `body` while the exporter (if any) runs, then stops the exporter gracefully, which
    /// sends the spans it still holds: for a command that ends (`whsync publish`).
    public static func withExporter<T: Sendable>(logger: Logger, _ body: () async throws -> T) async throws -> T {
        guard let service = exporterService else { return try await body() }
        let group = ServiceGroup(services: [service], logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let result: Result<T, any Error>
            do {
                result = .success(try await body())
            } catch {
                result = .failure(error)
            }
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            return try result.get()
        }
    }
}
