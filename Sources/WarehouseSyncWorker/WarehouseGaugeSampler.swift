import Foundation
import Logging
import ServiceLifecycle
import WarehouseSyncCore
import WarehouseSyncStore

/// Sets the per-warehouse gauges of ``WarehouseMetrics`` every ``interval``: the events in this
/// worker's hand (from the pipeline) and the held and parked keys of its stream (from the store,
/// which every replica shares: sum the `in-hand` series over replicas, take the max of the others).
///
/// A `Service` of the worker's `ServiceGroup`, stopped before the store closes.
public struct WarehouseGaugeSampler: Service, CustomStringConvertible {
    public let stream: EventStream
    public let interval: Duration
    private let store: any WorkerStore
    private let metrics: WarehouseMetrics
    private let logger: Logger

    public init(stream: EventStream, store: any WorkerStore, metrics: WorkerMetrics, interval: Duration = .seconds(10), logger: Logger) {
        self.stream = stream
        self.store = store
        self.metrics = metrics.business
        self.interval = interval
        self.logger = logger
    }

    public var description: String { "WarehouseGaugeSampler(\(stream))" }

    public func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await sample()
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// One look: reads the store, sets the gauges. A store that cannot answer leaves the store's
    /// part of the gauges as they were (the in-hand part is set all the same).
    public func sample(now: Date = Date()) async {
        var backlog = metrics.inHand.summary()
        do {
            for (warehouse, stored) in try await storedBacklog() {
                backlog[warehouse, default: WarehouseBacklog()].merge(stored)
            }
        } catch {
            logger.debug(
                "warehouse gauges: the store did not answer; held, parked and the oldest age keep their last values",
                metadata: ["error": "\(error)"])
            metrics.setGauges(backlog, now: now, storeAnswered: false)
            return
        }
        metrics.setGauges(backlog, now: now, storeAnswered: true)
    }

    /// Held and parked keys per warehouse, as the store has them: two aggregate reads, however
    /// many keys hold events.
    func storedBacklog() async throws -> [String: WarehouseBacklog] {
        var backlog: [String: WarehouseBacklog] = [:]
        for key in try await store.parkedKeys(stream: stream) {
            backlog[String(WarehouseMetrics.warehouse(ofKey: key)), default: WarehouseBacklog()].parkedKeys += 1
        }
        for held in try await store.heldSummary(stream: stream) {
            let warehouse = String(WarehouseMetrics.warehouse(ofKey: held.key))
            var entry = backlog[warehouse] ?? WarehouseBacklog()
            entry.heldKeys += 1
            entry.heldEvents += held.heldEvents
            entry.noteUnposted(since: held.oldestHeldAt)
            backlog[warehouse] = entry
        }
        return backlog
    }
}
