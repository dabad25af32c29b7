import AMQPClient
import Foundation
import Logging
import ServiceLifecycle
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncLogging
import WarehouseSyncStore

/// The whole `main` of `replay-worker`: the stream workers' configuration (``WorkerConfiguration``)
/// plus the auto-replay policy (``AutoReplaySettings``), logging, metrics, two connections (one
/// consumes the dead-letter queue, one publishes replays with confirms), the store, the ERP's
/// `/health`, and a `ServiceGroup` with ``ReplayWorkerService`` and the operations endpoint.
public enum ReplayWorkerLauncher {
    /// Runs the replay worker and exits the process: 0 after a graceful stop, 1 with one line
    /// per unusable setting on standard error when it cannot start.
    public static func main(executable: String, overrides: [String: String]) async -> Never {
        let environment = ProcessInfo.processInfo.environment
        var problems: [ConfigurationError.Problem] = []
        var configuration: WorkerConfiguration?
        var settings: AutoReplaySettings?
        do throws(ConfigurationError) {
            configuration = try WorkerConfiguration(environment: environment, overrides: overrides)
        } catch {
            problems += error.problems
        }
        do throws(ConfigurationError) {
            settings = try AutoReplaySettings(environment: environment, overrides: overrides)
        } catch {
            problems += error.problems
        }
        guard problems.isEmpty, let configuration, let settings else {
            WorkerLauncher.fail(problems.map { "\(executable): \($0)" }.joined(separator: "\n"))
        }
        LoggingSystem.bootstrap(LogHandlerFactory.make(format: configuration.logFormat, level: configuration.logLevel))
        let logger = Logger(label: executable)
        do {
            try await run(executable: executable, configuration: configuration, settings: settings, logger: logger)
            exit(0)
        } catch {
            logger.critical("stopped on an error", metadata: ["error": "\(error)"])
            WorkerLauncher.fail("\(executable): \(error)")
        }
    }

    static func run(
        executable: String, configuration: WorkerConfiguration, settings: AutoReplaySettings, logger: Logger
    ) async throws {
        let topology = try WorkerLauncher.loadTopology(configuration.topologyFile)
        logger.notice("starting", metadata: ["configuration": "\(configuration)", "policy": "\(settings)"])
        let registry = OpsMetrics.bootstrap()

        let store = try await configuration.store.open(logger: logger)
        let erp = HTTPERPClient(configuration: configuration.erp, logger: logger)
        var amqp = configuration.amqp
        let consumer: AMQPConnection
        let publisher: AMQPConnection
        do {
            amqp.connectionName = amqp.connectionName ?? "\(executable) consumer"
            consumer = try await AMQPConnection.connect(amqp, logger: logger)
            amqp.connectionName = "\(executable) publisher"
            // Replays wait for their confirm before they are recorded: on their own connection,
            // so that a slow confirm never stalls the drain.
            publisher = try await AMQPConnection.connect(amqp, options: .init(publisherConfirms: true), logger: logger)
        } catch {
            await store.close()
            try? await erp.shutdown()
            throw WorkerStartError("AMQP_URL: \(error)")
        }

        let host = ProcessInfo.processInfo.hostName
        let worker = ReplayWorkerService(
            topology: topology, settings: settings, prefetch: configuration.prefetch,
            statusMapping: configuration.statusMapping,
            dependencies: .init(consumer: consumer, publisher: publisher, store: store, erp: erp),
            actor: "\(executable)@\(host)", metrics: ReplayWorkerMetrics(), logger: logger)
        do {
            try await worker.verifyTopology()
        } catch {
            await consumer.close()
            await publisher.close()
            await store.close()
            try? await erp.shutdown()
            throw error
        }

        // Not the ERP: the drain works whether it is up or not.
        let readiness = ReadinessChecks()
        readiness.register("broker") { consumer.isConnected && publisher.isConnected }
        let ops = OpsServer(
            host: configuration.metricsHost, port: configuration.metricsPort, readiness: readiness, registry: registry,
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup),
                    .init(service: ops),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            await store.close()
            try? await erp.shutdown()
            throw error
        }
        await store.close()
        try? await erp.shutdown()
    }
}
