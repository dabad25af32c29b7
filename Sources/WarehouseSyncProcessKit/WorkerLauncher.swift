import AMQPClient
import Foundation
import Logging
import Metrics
import ProcessMemory
import ServiceLifecycle
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncLogging
import WarehouseSyncOps
import WarehouseSyncSettings
import WarehouseSyncStore
import WarehouseSyncWorker

/// The whole `main` of `inventory-worker`, `shipment-worker` and `receipt-worker`: read the
/// configuration (flags over environment), set up logging and metrics, connect, and run the
/// worker and its operations endpoint until SIGTERM/SIGINT. One copy for the three executables.
public enum WorkerLauncher {
    /// Runs the worker of `stream` and exits the process: 0 after a graceful stop, 1 with one
    /// line on standard error when it cannot start.
    public static func main(stream: EventStream, executable: String, overrides: [String: String]) async -> Never {
        let configuration: WorkerConfiguration
        do {
            configuration = try WorkerConfiguration(environment: ProcessInfo.processInfo.environment, overrides: overrides)
        } catch {
            fail("\(executable): \(error)")
        }
        ProcessMemory.configureAllocator(environment: ProcessInfo.processInfo.environment)
        LoggingSystem.bootstrap(LogHandlerFactory.make(format: configuration.logFormat, level: configuration.logLevel))
        var logger = Logger(label: executable)
        logger[metadataKey: LogMetadataKey.stream.rawValue] = "\(stream)"
        do {
            try await run(stream: stream, executable: executable, configuration: configuration, logger: logger)
            exit(0)
        } catch {
            logger.critical("stopped on an error", metadata: ["error": "\(error)"])
            fail("\(executable): \(error)")
        }
    }

    static func run(stream: EventStream, executable: String, configuration: WorkerConfiguration, logger: Logger) async throws {
        let topology = try loadTopology(configuration.topologyFile)
        logger.notice("starting", metadata: ["configuration": "\(configuration)"])
        let registry = OpsMetrics.bootstrap()
        try ProcessTracing.bootstrap(serviceName: executable, logger: logger)

        let process = try await WorkerProcess.open(executable: executable, configuration: configuration, logger: logger)
        let metrics = WorkerMetrics(stream: stream.rawValue, warehouseLimit: configuration.metricsMaxWarehouses)
        let worker: WorkerService
        do {
            worker = try WorkerService(
                stream: stream, configuration: configuration.workerSettings, topology: topology,
                dependencies: .init(consumer: process.consumer, publisher: process.publisher, store: process.store, erp: process.erp),
                workerName: WorkerProcess.actor(executable), metrics: metrics, logger: logger)
        } catch {
            await process.close()
            throw error
        }
        let readiness = ReadinessChecks()
        readiness.register("erp-circuit") { !worker.isCircuitOpen }
        readiness.register("erp-misanswering") { worker.erpMisanswer == nil }
        readiness.register("store") { !worker.isWaitingForStore }
        for queue in worker.queues {
            readiness.register(ReadinessChecks.consumerCheckName(queue)) { worker.isConsuming(queue) }
        }
        let gauges = WarehouseGaugeSampler(stream: stream, store: process.store, metrics: metrics, logger: logger)
        try await process.serve(
            worker, also: [gauges], verify: worker.verifyTopology, readiness: readiness, configuration: configuration,
            registry: registry)
    }

    /// `TOPOLOGY_FILE`, or `topology/topology.json` in the working directory or a parent.
    static func loadTopology(_ path: String?) throws -> Topology {
        let url: URL
        if let path {
            url = URL(fileURLWithPath: path)
        } else if let found = Topology.findDefaultFile(from: FileManager.default.currentDirectoryPath) {
            url = found
        } else {
            throw WorkerStartError(
                "TOPOLOGY_FILE: not set, and no \(Topology.defaultRelativePath) in \(FileManager.default.currentDirectoryPath) or its parents")
        }
        do {
            return try Topology.load(contentsOf: url)
        } catch {
            throw WorkerStartError("TOPOLOGY_FILE: \(error)")
        }
    }

    /// One line on standard error, exit status 1.
    static func fail(_ line: String) -> Never {
        FileHandle.standardError.write(Data((line + "\n").utf8))
        exit(1)
    }
}
