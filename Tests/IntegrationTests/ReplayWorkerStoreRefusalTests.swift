import AMQPClient
import Foundation
import Logging
import Synchronization
import Testing
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncOps
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncSQLiteStore
import WarehouseSyncStore
import WarehouseSyncStoreConformance
@testable import WarehouseSyncWorker


/// The replay worker keeps a dead letter in hand while the store refuses it as unavailable, also
/// for a refusal that waiting does not mend by itself (a permission, a refused login): the
/// dead-letter queue is the last stop, and RabbitMQ 4 drops a letter handed back to it 20 times.
@Suite struct ReplayWorkerStoreRefusalTests {
    /// Never called: storing a letter does not ask the ERP.
    struct UnusedERP: ERPClient {
        func post(_ document: PostingDocument) async -> ERPResponseClass { .transient(reason: .connectionFailed, retryAfter: nil) }
        func health() async -> Bool { false }
    }

    @Test func aLetterTheStoreRefusesStaysInHandAndIsStoredOnceTheStoreTakesIt() async throws {
        let directory = try TestBroker.temporaryDirectory("replay-refusal")
        defer { try? FileManager.default.removeItem(at: directory) }
        let base = try await SQLiteWorkerStore(path: directory.appendingPathComponent("store.db").path)
        let attempts = Atomic(0)
        let refusals = 3
        let store = InterceptingStore(base: base, recordDeadLetter: { letter in
            guard attempts.add(1, ordering: .relaxed).newValue > refusals else {
                throw StoreError(code: .unavailable, message: "permission denied for table dead_letters")
            }
            return try await base.recordDeadLetter(letter)
        })

        let consumerConnection = try await TestBroker.connect()
        let publisher = try await TestBroker.connect(confirms: true)
        let queue = TestBroker.uniqueName("replay-refusal")
        _ = try await consumerConnection.withChannel { try $0.declareQueue(queue, durable: false) }
        try await publisher.publish(OutboundMessage(
            exchange: "", routingKey: queue, body: Array(#"{"eventId":"refused-1"}"#.utf8),
            properties: AMQPProperties(
                headers: [
                    "whsync-reason": "invalid", "whsync-error": "eventId: must be a whole event",
                    "whsync-original-exchange": "wms.events", "whsync-original-routing-key": "inventory.WH1",
                ],
                messageId: "refused-1")))
        let consumer = try await consumerConnection.consume(queue: queue, prefetch: 1)
        let delivery = try #require(await receive(consumer, count: 1, timeout: .seconds(30), ack: false).first)

        let service = ReplayWorkerService(
            topology: try TopologyIntegrationTests.repoTopology(), settings: AutoReplaySettings(), prefetch: 1,
            dependencies: .init(consumer: consumerConnection, publisher: publisher, store: store, erp: UnusedERP()),
            actor: "replay-refusal-test", metrics: ReplayWorkerMetrics(), logger: Logger(label: "replay-refusal-test"))
        await service.record(delivery)

        // All attempts in that one call: the letter was never handed back between them.
        #expect(attempts.load(ordering: .relaxed) == refusals + 1)
        let stored = try await base.deadLetters(matching: .all, limit: 10)
        #expect(stored.map(\.eventId) == ["refused-1"])
        #expect(stored.first?.reason == .invalid)
        await consumer.cancel()
        #expect(try await consumerConnection.withChannel { try $0.checkQueue(queue).messageCount } == 0, "acked once stored")

        _ = try await consumerConnection.withChannel { try $0.deleteQueue(queue) }
        await consumerConnection.close()
        await publisher.close()
        await base.close()
    }
}
