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

/// What every worker process (the stream workers, the replay worker) opens at start and closes at
/// the end: the store, the ERP client, a consuming connection and a confirming publisher
/// connection. One copy of the wiring and of its cleanup, whatever fails.
struct WorkerProcess {
    let store: any WorkerStore
    let erp: HTTPERPClient
    let consumer: AMQPConnection
    /// Confirmed publishes (dead letters, retry copies, replays) on their own connection, so that
    /// a slow confirm never stalls deliveries.
    let publisher: AMQPConnection
    let logger: Logger

    static func open(executable: String, configuration: WorkerConfiguration, logger: Logger) async throws -> WorkerProcess {
        let store = try await configuration.store.open(logger: logger)
        let erp = HTTPERPClient(configuration: configuration.erp, logger: logger)
        var amqp = configuration.amqp
        do {
            amqp.connectionName = amqp.connectionName ?? "\(executable) consumer"
            let consumer = try await AMQPConnection.connect(amqp, logger: logger)
            amqp.connectionName = "\(executable) publisher"
            do {
                let publisher = try await AMQPConnection.connect(amqp, options: .init(publisherConfirms: true), logger: logger)
                return WorkerProcess(store: store, erp: erp, consumer: consumer, publisher: publisher, logger: logger)
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

    /// Runs `service` and the operations endpoint until SIGTERM/SIGINT (or until `service`
    /// returns), then closes everything. `verify` runs first: a missing topology fails the start.
    func serve(
        _ service: some Service, verify: () async throws -> Void, readiness: ReadinessChecks,
        configuration: WorkerConfiguration, registry: PrometheusCollectorRegistry
    ) async throws {
        do {
            try await verify()
            readiness.register("broker") { [consumer, publisher] in consumer.isConnected && publisher.isConnected }
            let ops = OpsServer(
                host: configuration.metricsHost, port: configuration.metricsPort, readiness: readiness,
                registry: registry, logger: logger)
            let group = ServiceGroup(
                configuration: .init(
                    // Stopped in reverse order: the worker first, so that /readyz and /metrics
                    // answer while it finishes its work in hand.
                    services: [
                        .init(service: ops),
                        .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup),
                    ],
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger))
            try await group.run()
        } catch {
            await close()
            throw error
        }
        await close()
    }

    /// Closes all of it; closing twice is harmless (the services close the connections on a
    /// graceful stop already).
    func close() async {
        await consumer.close()
        await publisher.close()
        await store.close()
        try? await erp.shutdown()
    }
}
