import AMQPClient
import Foundation
import Logging
import ProcessMemory
import ServiceLifecycle
import WarehouseSyncConsole
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncLogging
import WarehouseSyncOps
import WarehouseSyncSettings
import WarehouseSyncStore
import WarehouseSyncWorker

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
        var reconcile: ReconcileSettings?
        do throws(ConfigurationError) {
            reconcile = try ReconcileSettings.read(environment: environment, overrides: overrides)
        } catch {
            problems += error.problems
        }
        var console: ConsoleConfiguration?
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
        do throws(ConfigurationError) {
            console = try ConsoleConfiguration.read(environment: environment, overrides: overrides)
        } catch {
            problems += error.problems
        }
        guard problems.isEmpty, let configuration, let settings else {
            WorkerLauncher.fail(problems.map { "\(executable): \($0)" }.joined(separator: "\n"))
        }
        ProcessMemory.configureAllocator(environment: ProcessInfo.processInfo.environment)
        LoggingSystem.bootstrap(LogHandlerFactory.make(format: configuration.logFormat, level: configuration.logLevel))
        let logger = Logger(label: executable)
        do {
            try await run(
                executable: executable, configuration: configuration, settings: settings, reconcile: reconcile, console: console,
                logger: logger)
            exit(0)
        } catch {
            logger.critical("stopped on an error", metadata: ["error": "\(error)"])
            WorkerLauncher.fail("\(executable): \(error)")
        }
    }

    static func run(
        executable: String, configuration: WorkerConfiguration, settings: AutoReplaySettings,
        reconcile: ReconcileSettings? = nil, console: ConsoleConfiguration? = nil, logger: Logger
    ) async throws {
        let topology = try WorkerLauncher.loadTopology(configuration.topologyFile)
        logger.notice(
            "starting", metadata: ["configuration": "\(configuration)", "policy": "\(settings)", "console": "\(console.map { "\($0)" } ?? "off")"])
        let registry = OpsMetrics.bootstrap()

        let process = try await WorkerProcess.open(executable: executable, configuration: configuration, logger: logger)
        let worker = ReplayWorkerService(
            topology: topology, settings: settings, prefetch: configuration.prefetch,
            statusMapping: configuration.statusMapping,
            dependencies: .init(consumer: process.consumer, publisher: process.publisher, store: process.store, erp: process.erp),
            actor: WorkerProcess.actor(executable), metrics: ReplayWorkerMetrics(), logger: logger)
        // The broker and the store: the drain works whether the ERP is up or not.
        let readiness = ReadinessChecks()
        readiness.register("store") { !worker.isWaitingForStore }
        let schedule = reconcile.map {
            ReconcileSchedule.make($0, process: process, topology: topology, actor: WorkerProcess.actor(executable),
                maxWarehouses: configuration.metricsMaxWarehouses, logger: logger)
        }
        // The dead-letter console (docs/console.md), when CONSOLE_PORT is set: on the same store and
        // publisher connection, stopped before them.
        let consoleServer: ConsoleServer?
        do {
            consoleServer = try console.map {
                try ConsoleServer(
                    configuration: $0, store: process.store, publisher: process.publisher, eventsExchange: topology.eventsExchange,
                    site: WorkerProcess.actor(executable), logger: logger)
            }
        } catch {
            await process.close()
            throw error
        }
        let helpers: [any Service] = (schedule.map { [$0] } ?? []) + (consoleServer.map { [$0] } ?? [])
        try await process.serve(
            worker, also: helpers, verify: worker.verifyTopology, readiness: readiness, configuration: configuration, registry: registry)
    }
}

extension ReconcileSchedule {
    /// The schedule of `RECONCILE_*` on the replay worker's ERP adapter, store and publisher.
    static func make(
        _ settings: ReconcileSettings, process: WorkerProcess, topology: Topology, actor: String, maxWarehouses: Int, logger: Logger
    ) -> ReconcileSchedule {
        let corrector = settings.correct
            ? Reconciler.Corrector(store: process.store, publisher: process.publisher, actor: actor, eventsExchange: topology.eventsExchange)
            : nil
        return ReconcileSchedule(
            settings: settings, reconciler: Reconciler(erp: process.erp, corrector: corrector, logger: logger),
            metrics: ReconcileMetrics(interval: settings.interval, maxWarehouses: maxWarehouses), logger: logger)
    }
}
