import Logging
import ServiceLifecycle
import WarehouseSyncPostgres
import WarehouseSyncStore

/// The one `ServiceGroup` of a long-running executable, built in dependency order: the resources
/// (store, connections, clients) first, then the operations endpoint, then the engine.
/// ServiceGroup starts them together and stops them in reverse: the engine first (it finishes or
/// hands back its work in hand while `/readyz` and `/metrics` still answer), then the operations
/// endpoint, then each resource, once nothing after it uses it any more.
enum ProcessGroup {
    /// The services in the group's order. The engine ending on its own stops the group gracefully.
    static func services(
        resources: [any Service], engine: any Service, operations: (any Service)?
    ) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        resources.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
            + (operations.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? [])
            + [.init(service: engine, successTerminationBehavior: .gracefullyShutdownGroup)]
    }

    /// The group, stopped gracefully by SIGTERM or SIGINT. The trace exporter, when there is one
    /// (``ProcessTracing``), comes first: it stops last, after the spans of the last work ended.
    static func make(resources: [any Service], engine: any Service, operations: (any Service)?, logger: Logger) -> ServiceGroup {
        let exporter = ProcessTracing.exporterService.map { [$0] } ?? []
        return ServiceGroup(
            configuration: .init(
                services: services(resources: exporter + resources, engine: engine, operations: operations),
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
    }
}

/// Holds a resource (a connection, a client) open while the group runs, and closes it when its
/// turn to stop comes: at its graceful shutdown, which the group triggers once every service
/// after it has stopped, or on cancellation.
struct ClosingService: Service, CustomStringConvertible {
    let description: String
    let close: @Sendable () async -> Void

    init(_ description: String, close: @escaping @Sendable () async -> Void) {
        self.description = description
        self.close = close
    }

    func run() async {
        // Throws only on cancellation, which closes as well.
        try? await gracefulShutdown()
        await close()
    }
}

/// A PostgreSQL store's connection pool (postgres-nio's `PostgresClient`, itself a `Service`)
/// run in the group: the store's operations wait until it runs; at its graceful shutdown the
/// store stops taking operations first (the services that used it have stopped by then), then
/// the client stops.
struct PostgresClientService: Service, CustomStringConvertible {
    let store: PostgresWorkerStore

    var description: String { "PostgresClient(\(store.configuration))" }

    func run() async {
        // Registered before the client's own handler (postgres-nio's cancelWhenGracefulShutdown),
        // so it runs first.
        await withGracefulShutdownHandler {
            await store.runClient()
        } onGracefulShutdown: { [store] in
            store.stopTakingOperations()
        }
    }
}
