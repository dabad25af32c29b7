import AMQPClient
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncOps
import WarehouseSyncSettings
import WarehouseSyncStore
import WarehouseSyncWorker

/// What every worker process (the stream workers, the replay worker) opens at start: the store,
/// the ERP client, a consuming connection and a confirming publisher connection, each kept by a
/// service of the process's one `ServiceGroup` (``ProcessGroup``), which closes them after the
/// engine stopped. One copy of the wiring and of its cleanup, whatever fails.
struct WorkerProcess {
    let store: any WorkerStore
    /// Keeps the store (a PostgreSQL store's connection pool runs in it) and closes it.
    let storeService: any Service
    let erp: any ERPAdapter
    let consumer: AMQPConnection
    /// Confirmed publishes (dead letters, retry copies, replays) on their own connection, so that
    /// a slow confirm never stalls deliveries.
    let publisher: AMQPConnection
    let logger: Logger

    static func open(executable: String, configuration: WorkerConfiguration, logger: Logger) async throws -> WorkerProcess {
        let (store, storeService) = try await configuration.store.openForService(logger: logger)
        let erp = makeERPAdapter(http: configuration.erp, tryton: configuration.tryton, logger: logger)
        var amqp = configuration.amqp
        do {
            amqp.connectionName = amqp.connectionName ?? "\(executable) consumer"
            let consumer = try await AMQPConnection.connect(amqp, logger: logger)
            amqp.connectionName = "\(executable) publisher"
            do {
                let publisher = try await AMQPConnection.connect(amqp, options: .init(publisherConfirms: true), logger: logger)
                return WorkerProcess(
                    store: store, storeService: storeService, erp: erp, consumer: consumer, publisher: publisher, logger: logger)
            } catch {
                await consumer.close()
                throw error
            }
        } catch {
            await store.close()
            try? await erp.shutdown()
            throw WorkerStartError("AMQP_URL: \(error)")
        }
    }

    /// `executable@host`: who dead-letters (`whsync-worker`) and who replays.
    static func actor(_ executable: String) -> String {
        "\(executable)@\(ProcessInfo.processInfo.hostName)"
    }

    /// The services that keep what ``open(executable:configuration:logger:)`` opened, in
    /// dependency order: the store first (the engine's readiness and work use it to the end),
    /// then the connections, then the ERP client. Each closes its resource when the group stops
    /// it, after the engine has finished (it hands back the deliveries it could not settle
    /// before its run returns, while the connections are open).
    var resources: [any Service] {
        [
            storeService,
            ClosingService("AMQP consumer connection") { [consumer] in await consumer.close() },
            ClosingService("AMQP publisher connection") { [publisher] in await publisher.close() },
            ClosingService("ERP client") { [erp] in try? await erp.shutdown() },
        ]
    }

    /// Runs `service` and the operations endpoint until SIGTERM/SIGINT (or until `service`
    /// returns), in one `ServiceGroup` with the resources, which it stops in reverse order.
    /// `verify` runs first: a missing topology fails the start (and closes what was opened).
    /// `also`: helpers that use the resources (they stop before them, after the engine).
    func serve(
        _ service: some Service, also helpers: [any Service] = [], verify: () async throws -> Void, readiness: ReadinessChecks,
        configuration: WorkerConfiguration, registry: PrometheusCollectorRegistry
    ) async throws {
        do {
            try await verify()
        } catch {
            await close()
            throw error
        }
        readiness.register("broker") { [consumer, publisher] in consumer.isConnected && publisher.isConnected }
        let ops = OpsServer(
            host: configuration.metricsHost, port: configuration.metricsPort, readiness: readiness,
            registry: registry, logger: logger)
        try await ProcessGroup.make(resources: resources + helpers, engine: service, operations: ops, logger: logger).run()
    }

    /// Closes all of it, for a start that fails before the group runs; closing twice is harmless.
    func close() async {
        await consumer.close()
        await publisher.close()
        await store.close()
        try? await erp.shutdown()
    }
}
