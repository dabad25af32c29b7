import AMQPClient
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncStore

/// One stream's worker (DESIGN §1, §5): consumes the stream's work queue(s) and runs each
/// delivery through ``WorkerPipeline``; a maintenance loop parks keys whose gap outlived
/// `GAP_TIMEOUT` and prunes old dedup records.
///
/// Graceful stop (SIGTERM/SIGINT through ServiceLifecycle): cancel the consumers, let the work
/// in hand finish (a posting that waits for the ERP's circuit is handed back instead), then
/// return. The connections and the store belong to the caller, who closes them after `run()`
/// returns (the process kit: services before this one in the same `ServiceGroup`). Deliveries
/// not settled by then come again to the next worker.
public final class WorkerService: Service, Sendable {
    /// `ROUND_MAX`'s default.
    public static let defaultRoundMax = 256
    /// `ROUND_MAX`'s range.
    public static let roundMaxRange = 1...10_000

    public struct Dependencies: Sendable {
        public var consumer: AMQPConnection
        /// In confirm mode: dead letters, retry copies and replays are confirmed before the ack.
        public var publisher: AMQPConnection
        public var store: any WorkerStore
        public var erp: any ERPClient

        public init(consumer: AMQPConnection, publisher: AMQPConnection, store: any WorkerStore, erp: any ERPClient) {
            self.consumer = consumer
            self.publisher = publisher
            self.store = store
            self.erp = erp
        }
    }

    /// What the engine takes from a worker's configuration (the process kit reads it from flags
    /// and environment: WorkerConfiguration).
    public struct Settings: Sendable {
        public var prefetch: Int
        public var gapTimeout: Duration
        /// Posting attempts before `retries-exhausted`; ≥ 1 (`RETRY_MAX_ATTEMPTS`).
        public var retryMaxAttempts: Int
        public var acceptFirstSequence: Bool
        public var dedupRetention: Duration
        public var statusMapping: StatusMapping
        /// `ERP_BATCH_MAX`: 0, the single routes; 1…1000, the batch route (DESIGN §3a).
        public var erpBatchMax: Int
        /// `ROUND_MAX`: the most decisions one store round commits (docs/worker.md, "Rounds").
        public var roundMax: Int

        public init(
            prefetch: Int, gapTimeout: Duration, retryMaxAttempts: Int, acceptFirstSequence: Bool, dedupRetention: Duration,
            statusMapping: StatusMapping, erpBatchMax: Int = 0, roundMax: Int = WorkerService.defaultRoundMax
        ) {
            self.erpBatchMax = erpBatchMax
            self.roundMax = roundMax
            self.prefetch = prefetch
            self.gapTimeout = gapTimeout
            self.retryMaxAttempts = retryMaxAttempts
            self.acceptFirstSequence = acceptFirstSequence
            self.dedupRetention = dedupRetention
            self.statusMapping = statusMapping
        }
    }

    public let stream: EventStream
    let pipeline: WorkerPipeline
    private let dependencies: Dependencies
    private let prefetch: UInt16
    private let dedupRetention: Duration
    private let maintenanceInterval: Duration
    private let logger: Logger
    private let circuitOpen = CircuitFlag()
    /// The consumers of the work queues, once `run` has started them.
    private let consumers = Mutex<[AMQPConsumer]>([])

    public init(
        stream: EventStream, configuration: Settings, topology: Topology, dependencies: Dependencies,
        workerName: String, metrics: WorkerMetrics, logger: Logger,
        circuit: CircuitBreaker<ContinuousClock.Instant>.Configuration = .init()
    ) throws(ConfigurationError) {
        guard let retryPolicy = RetryPolicy(maxAttempts: configuration.retryMaxAttempts, topology: topology) else {
            throw ConfigurationError([
                .init(setting: "RETRY_MAX_ATTEMPTS", message: "must be at least 1")
            ])
        }
        self.stream = stream
        self.dependencies = dependencies
        prefetch = UInt16(clamping: configuration.prefetch)
        dedupRetention = configuration.dedupRetention
        // Often enough that a park comes soon after GAP_TIMEOUT, rarely enough to cost nothing.
        maintenanceInterval = max(.milliseconds(200), min(.seconds(5), configuration.gapTimeout / 4))
        self.logger = logger
        let flag = circuitOpen
        let gate = CircuitGate(configuration: circuit, erp: dependencies.erp, logger: logger) { open in
            flag.value.store(open, ordering: .releasing)
            metrics.erpCircuitOpen.record(open ? 1 : 0)
        }
        pipeline = WorkerPipeline(
            settings: .init(
                stream: stream, workerName: workerName, topology: topology,
                sequencing: SequencingPolicy(acceptFirstSeen: configuration.acceptFirstSequence, gapTimeout: configuration.gapTimeout),
                retryPolicy: retryPolicy, erpBatchMax: configuration.erpBatchMax, roundMax: configuration.roundMax),
            decoder: EventDecoder(statusMapping: configuration.statusMapping), store: dependencies.store, erp: dependencies.erp,
            publisher: dependencies.publisher, circuit: gate, metrics: metrics, logger: logger)
        if retryPolicy.totalRetryDelay >= configuration.gapTimeout {
            logger.warning(
                "GAP_TIMEOUT is not above the retry schedule: a key whose event waits in a retry tier may park",
                metadata: [
                    "gapTimeout": "\(DurationParser.format(configuration.gapTimeout))",
                    "retrySchedule": "\(DurationParser.format(retryPolicy.totalRetryDelay))",
                ])
        }
    }

    /// Whether the ERP circuit is open (consumption paused): for readiness and status.
    public var isCircuitOpen: Bool { circuitOpen.value.load(ordering: .acquiring) }

    /// The last answer to a posting that was not the ERP speaking, while no posting has been
    /// answered properly since (DESIGN §3): for readiness.
    public var erpMisanswer: ERPResponseClass.TransientReason? { pipeline.circuit.misanswer.withLock { $0 } }

    /// Whether messages wait in hand for an unavailable store: for readiness.
    public var isWaitingForStore: Bool { pipeline.storeOutage.isOngoing }

    /// The queues this worker consumes.
    public var queues: [String] { pipeline.settings.topology.workQueues(for: stream.rawValue) }

    /// Whether the broker has this worker's consumer on `queue` right now (for readiness): false
    /// before the worker consumes, while its channel or connection is being re-established (a
    /// delivery held past the broker's `consumer_timeout`, the queue deleted) and after a stop.
    public func isConsuming(_ queue: String) -> Bool {
        consumers.withLock { $0.contains { $0.queue == queue && $0.isConsuming } }
    }

    /// Checks that the broker has what the worker needs (the work queues, the retry and
    /// dead-letter exchanges), so that a missing `whsync topology apply` fails at start with one
    /// clear line instead of as unroutable dead letters later.
    public func verifyTopology() async throws {
        let topology = pipeline.settings.topology
        let queues = queues
        do {
            try await dependencies.consumer.withChannel { channel in
                for queue in queues { _ = try channel.checkQueue(queue) }
                try channel.checkExchange(topology.retry.exchange)
                try channel.checkExchange(topology.deadLetter.exchange)
            }
        } catch let error as AMQPError where error.code == .notFound {
            throw WorkerStartError.missingTopology(error)
        }
    }

    public func run() async throws {
        logger.notice("worker starting", metadata: ["queues": "\(queues.joined(separator: ","))", "prefetch": "\(prefetch)"])
        // A crash between two releases leaves the next one in turn with nobody on it.
        await pipeline.maintain(startup: true)

        var consumers: [AMQPConsumer] = []
        for queue in queues {
            consumers.append(try await dependencies.consumer.consume(queue: queue, prefetch: prefetch))
        }
        let consuming = consumers
        self.consumers.withLock { $0 = consuming }
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for consumer in consuming {
                    group.addTask { await self.consume(consumer) }
                }
                group.addTask { await self.maintenanceLoop() }
                // The consumers end when cancelled; then stop maintenance.
                for _ in consuming { await group.next() }
                group.cancelAll()
            }
        } onGracefulShutdown: { [pipeline, logger] in
            logger.notice("stopping: consumers cancelled, finishing the work in hand")
            pipeline.beginStopping()
            Task {
                await pipeline.circuit.shutdown()
                for consumer in consuming { await consumer.cancel() }
            }
        }
        // Also when the service group cancels instead of asking gracefully: the work in hand
        // hands its message back rather than wait for a store or an ERP that may not come back.
        pipeline.beginStopping()
        await pipeline.drain()
        await pipeline.circuit.shutdown()
        // The connections and the store stay open: their owner (the process's ServiceGroup)
        // closes them after this returns, so what was not settled above goes back to the broker.
        logger.notice("worker stopped")
    }

    private func consume(_ consumer: AMQPConsumer) async {
        for await delivery in consumer.deliveries {
            // While the ERP is down, take nothing new: what is in hand waits in the pipeline. The
            // flag spares every delivery a hop to the circuit's actor while it is closed.
            if isCircuitOpen { await pipeline.circuit.waitUntilPostingAllowed() }
            pipeline.submit(delivery)
        }
    }

    private func maintenanceLoop() async {
        let clock = ContinuousClock()
        var lastPrune = clock.now.advanced(by: .seconds(-3600))
        while !Task.isCancelled {
            do {
                try await clock.sleep(for: maintenanceInterval)
            } catch {
                return
            }
            await pipeline.maintain()
            if clock.now - lastPrune >= .seconds(600) {
                lastPrune = clock.now
                await pruneExpired(
                    "posted dedup records", setting: "DEDUP_RETENTION", retention: dedupRetention, logger: logger,
                    dependencies.store.pruneProcessed(olderThan:))
            }
        }
    }
}

private final class CircuitFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// A worker cannot start; the message is one line for the operator.
public struct WorkerStartError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }

    /// The broker lacks a queue or exchange the worker needs.
    static func missingTopology(_ error: AMQPError) -> WorkerStartError {
        WorkerStartError(
            "the broker lacks the topology (\(error.message)); apply it first: `whsync topology apply`, "
                + "or in Kubernetes deploy/k8s/topology.yaml (docs/deploy.md)")
    }
}
