import AMQPClient
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncLogging
import WarehouseSyncStore

/// The replay worker (DESIGN §1, §6; docs/replay.md): drains the dead-letter queue into the
/// store, acking each letter only after the store returned it durable, and, every
/// `AUTO_REPLAY_INTERVAL` while the ERP answers `/health`, replays `retries-exhausted` letters
/// through ``DeadLetterReplayer`` (the same path as `whsync dlq replay`).
///
/// Graceful stop (SIGTERM/SIGINT through ServiceLifecycle): cancel the consumer, let the letters
/// in hand be stored and acked (or handed back), stop the replay loop, return. The connections
/// and the store belong to the caller, who closes them after `run()` returns.
public final class ReplayWorkerService: Service, Sendable {
    /// The same connections, store and ERP client as a stream worker's (``WorkerProcess``).
    public typealias Dependencies = WorkerService.Dependencies

    public let topology: Topology
    public let settings: AutoReplaySettings
    private let dependencies: Dependencies
    private let prefetch: UInt16
    private let decoder: EventDecoder
    private let replayer: DeadLetterReplayer
    private let metrics: ReplayWorkerMetrics
    private let logger: Logger
    /// An unavailable store is waited out, not answered by handing letters back: each hand-back
    /// counts towards the dead-letter queue's delivery limit (RabbitMQ 4 sets one by default),
    /// beyond which a letter would be lost.
    let storeOutage: StoreOutage
    /// Letters read from the store at a time while looking for replays (bounds memory: bodies).
    private let pageSize: Int
    private let stopping = StopFlag()

    /// `actor` names the worker in `last_replayed_by` (`replay-worker@host`).
    public init(
        topology: Topology, settings: AutoReplaySettings, prefetch: Int, statusMapping: StatusMapping = .default,
        dependencies: Dependencies, actor: String, metrics: ReplayWorkerMetrics, logger: Logger,
        pageSize: Int = 100
    ) {
        self.topology = topology
        self.settings = settings
        self.dependencies = dependencies
        self.prefetch = UInt16(clamping: prefetch)
        decoder = EventDecoder(statusMapping: statusMapping)
        replayer = DeadLetterReplayer(
            store: dependencies.store, publisher: dependencies.publisher, actor: actor, eventsExchange: topology.eventsExchange)
        self.metrics = metrics
        self.logger = logger
        storeOutage = StoreOutage(logger: logger)
        self.pageSize = max(1, pageSize)
    }

    /// Whether letters wait in hand for an unavailable store: for readiness.
    public var isWaitingForStore: Bool { storeOutage.isOngoing }

    /// Checks that the broker has the dead-letter queue to drain and the events exchange replays
    /// go to, so that a missing `whsync topology apply` fails at start with one clear line.
    public func verifyTopology() async throws {
        let queue = topology.deadLetter.queue
        let exchange = topology.eventsExchange
        do {
            try await dependencies.consumer.withChannel { channel in
                _ = try channel.checkQueue(queue)
                try channel.checkExchange(exchange)
            }
        } catch let error as AMQPError where error.code == .notFound {
            throw WorkerStartError.missingTopology(error)
        }
    }

    public func run() async throws {
        let queue = topology.deadLetter.queue
        logger.notice(
            "replay worker starting",
            metadata: ["queue": "\(queue)", "prefetch": "\(prefetch)", "policy": "\(settings)"])
        let consumer = try await dependencies.consumer.consume(queue: queue, prefetch: prefetch)
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Bool.self) { group in
                group.addTask { await self.drain(consumer); return true }
                group.addTask { await self.retentionLoop(); return false }
                if self.settings.enabled {
                    group.addTask { await self.autoReplayLoop(); return false }
                }
                // The drain ends when the consumer is cancelled (the loops may end before it, once
                // stopping): wait for the drain, then stop the loops.
                while let drained = await group.next(), !drained {}
                group.cancelAll()
            }
        } onGracefulShutdown: { [stopping, logger] in
            logger.notice("stopping: consumer cancelled, storing the letters in hand")
            stopping.set()
            Task { await consumer.cancel() }
        }
        // The connections and the store stay open: their owner (the process's ServiceGroup)
        // closes them after this returns.
        logger.notice("replay worker stopped")
    }

    // MARK: Drain

    private func drain(_ consumer: AMQPConsumer) async {
        // One task per letter: the prefetch bounds how many are in hand, and concurrent writes
        // share the store's group commit.
        await withDiscardingTaskGroup { group in
            for await delivery in consumer.deliveries {
                group.addTask { await self.record(delivery) }
            }
        }
    }

    /// Stores one letter, then acks it; hands it back if the store cannot take it.
    func record(_ delivery: AMQPDelivery) async {
        let letter = DeadLetterIntake.letter(
            body: delivery.body, properties: delivery.properties, routingKey: delivery.routingKey, receivedAt: Date(),
            topology: topology, decoder: decoder)
        var logger = self.logger
        logger[metadataKey: LogMetadataKey.reason.rawValue] = "\(letter.reason)"
        if let eventId = letter.eventId { logger[metadataKey: LogMetadataKey.eventId.rawValue] = "\(eventId)" }
        if let stream = letter.stream { logger[metadataKey: LogMetadataKey.stream.rawValue] = "\(stream)" }
        if let key = letter.key { logger[metadataKey: LogMetadataKey.key.rawValue] = "\(key)" }
        if let sequence = letter.sequence { logger[metadataKey: LogMetadataKey.sequence.rawValue] = "\(sequence)" }
        if let correlationId = delivery.properties.correlationId, !correlationId.isEmpty {
            logger[metadataKey: LogMetadataKey.correlationId.rawValue] = "\(correlationId.prefix(128))"
        }
        let record: DeadLetterRecord
        do {
            record = try await patiently { [store = dependencies.store] in
                try await store.recordDeadLetter(letter)
            }
        } catch {
            // Never ack what is not stored: the broker keeps it for the next try.
            logger.error(
                "could not store the dead letter; handed back to the broker", metadata: ["error": "\(error)"])
            delivery.nack(requeue: true)
            return
        }
        delivery.ack()
        metrics.drained(reason: record.reason.rawValue)
        // The error is the worker's short text (or ours for broker letters); never the body.
        logger.info(
            "dead letter stored",
            metadata: [
                "deadLetter.id": "\(record.id)", "routingKey": "\(record.originalRoutingKey)",
                "error": "\(record.error.prefix(500))", "failures": "\(record.failureCount)",
                "status": "\(record.status)",
            ])
    }

    /// Runs `operation`, waiting out any unavailable store for as long as it lasts (until
    /// stopping; ``StoreOutage``), also the kinds only a person mends (a refused login, a
    /// read-only file): the dead-letter queue has no dead-letter exchange, and on RabbitMQ 4 a
    /// quorum queue drops a message handed back 20 times, so a letter in hand stays in hand.
    /// Other store errors concern the letter itself and are thrown after a pause, so that a letter
    /// the store refuses does not spin through the broker.
    private func patiently<T: Sendable>(_ operation: @Sendable () async throws -> T) async throws -> T {
        do {
            return try await storeOutage.waitOut(
                maximumDelay: .seconds(5), waitingOut: StoreOutage.anyUnavailability, isStopping: { stopping.isSet }, operation)
        } catch {
            if !stopping.isSet { try? await ContinuousClock().sleep(for: .seconds(1)) }
            throw error
        }
    }

    // MARK: Retention

    /// Deletes letters replayed or purged longer than `DEAD_LETTER_RETENTION` ago: at start, then
    /// every tenth of the retention, at most every 10 minutes.
    private func retentionLoop() async {
        let clock = ContinuousClock()
        let interval = min(.seconds(600), settings.retention / 10)
        while !Task.isCancelled, !stopping.isSet {
            await pruneExpired(
                "replayed and purged letters", setting: "DEAD_LETTER_RETENTION", retention: settings.retention, logger: logger,
                dependencies.store.pruneDeadLetters(olderThan:))
            do {
                try await clock.sleep(for: interval)
            } catch {
                return
            }
        }
    }

    // MARK: Auto-replay

    private func autoReplayLoop() async {
        let clock = ContinuousClock()
        var erpHealthy = true
        while !Task.isCancelled, !stopping.isSet {
            do {
                try await clock.sleep(for: settings.interval)
                try await autoReplayPass(erpHealthy: &erpHealthy)
            } catch is CancellationError {
                return
            } catch {
                logger.warning("automatic replay pass failed; trying again next interval", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One look: if the ERP is healthy, replays every pending `retries-exhausted` letter that
    /// failed at least `AUTO_REPLAY_DELAY` ago and was replayed fewer than `AUTO_REPLAY_MAX`
    /// times, oldest id first, at `AUTO_REPLAY_RATE`. Returns how many it replayed.
    @discardableResult
    func autoReplayPass(erpHealthy: inout Bool) async throws -> Int {
        let healthy = await dependencies.erp.health()
        if healthy != erpHealthy {
            erpHealthy = healthy
            logger.notice(healthy ? "ERP healthy: automatic replays resume" : "ERP not healthy: automatic replays wait")
        }
        guard healthy else { return 0 }

        let cutoff = Date().addingTimeInterval(-settings.delay.timeInterval)
        var filter = DeadLetterFilter(reason: .retriesExhausted, failedBefore: cutoff, status: .pending)
        let spacing = Duration.seconds(1 / settings.rate)
        var replayed = 0
        var atLimit = 0
        while !stopping.isSet {
            try Task.checkCancellation()
            let page = try await dependencies.store.deadLetters(matching: filter, limit: pageSize)
            guard let last = page.last else { break }
            filter.afterId = last.id
            // Letters that must not be replayed (not from the events exchange) wait for a person too.
            let due = page.filter { $0.replayCount < Int64(settings.maxReplays) && replayer.refusal(of: $0) == nil }
            atLimit += page.count - due.count
            guard !due.isEmpty else { continue }
            if replayed > 0 {
                // The ERP may have gone again during a long pass: leave the rest for later.
                guard await dependencies.erp.health() else {
                    erpHealthy = false
                    logger.notice("ERP not healthy: automatic replays wait")
                    return replayed
                }
                // The replayer spaces letters within one call; keep the spacing across pages.
                try await Task.sleep(for: spacing)
            }
            let outcomes = try await replayer.replay(due, perSecond: settings.rate) { [logger, metrics] outcome in
                switch outcome {
                case .replayed(let record):
                    metrics.autoReplayed.increment()
                    logger.info(
                        "dead letter replayed automatically",
                        metadata: [
                            "deadLetter.id": "\(record.id)", LogMetadataKey.eventId.rawValue: "\(record.eventId ?? "-")",
                            "routingKey": "\(record.originalRoutingKey)", "replays": "\(record.replayCount)",
                        ])
                case .skipped(let id, let reason):
                    metrics.autoReplayFailed.increment()
                    logger.warning(
                        "dead letter not replayed; trying again next pass",
                        metadata: ["deadLetter.id": "\(id)", "reason": "\(reason)"])
                case .wouldReplay:
                    break
                }
            }
            replayed += outcomes.count { if case .replayed = $0 { true } else { false } }
        }
        metrics.awaitingOperator.record(atLimit)
        return replayed
    }
}

/// Set once when the graceful stop begins; read by the drain and the replay loop.
private final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
