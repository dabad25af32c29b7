import AMQPClient
import Foundation
import Testing
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncOps
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncSimulation
import WarehouseSyncWorker

/// A persistent message with id `id` for `queue`, through the default exchange.
private func persistentMessage(_ id: String, to queue: String) -> OutboundMessage {
    OutboundMessage(
        exchange: "", routingKey: queue, body: Array(id.utf8),
        properties: AMQPProperties(deliveryMode: .persistent, messageId: id), mandatory: true)
}

extension ScratchBrokerTests {
    /// The broker closes the channel of a consumer that holds a delivery unacked past its
    /// `consumer_timeout` (PRECONDITION_FAILED, "delivery acknowledgement ... timed out") and
    /// requeues what was out. The consumer goes on by itself on a new channel, on the same
    /// stream: what was out comes again (the deliveries of the dead channel still waiting in the
    /// stream are skipped), later messages arrive, and an ack of the dead channel's delivery never
    /// reaches the new channel, where its delivery tag names another delivery.
    @Test func aConsumerThatHoldsADeliveryPastTheConsumerTimeoutKeepsReceiving() async throws {
        let configuration = try AMQPConfiguration(
            url: TestBroker.env("WHSYNC_TEST_SCRATCH_AMQP_URL"), connectionName: "consumer-timeout-test")
        let queue = TestBroker.uniqueName("it-consumer-timeout")
        func message(_ id: String) -> OutboundMessage { persistentMessage(id, to: queue) }
        let publisher = try await TestBroker.connect(configuration, confirms: true)
        try await publisher.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }
        let held = ["held-1", "held-2", "held-3"]
        try await withShortConsumerTimeout {
            for result in await publisher.publish(held.map(message)) { try result.get() }
            let connection = try await TestBroker.connect(
                configuration, reconnect: ReconnectPolicy(initialDelay: .milliseconds(200), maximumDelay: .seconds(2)))
            let consumer = try await connection.consume(queue: queue, prefetch: 10)
            // Ends the stream should the consumer never come back, so the waits below end too.
            let deadline = Task {
                try await Task.sleep(for: .seconds(60))
                await consumer.cancel()
            }
            defer { deadline.cancel() }
            var deliveries = consumer.deliveries.makeAsyncIterator()

            // Taken and held (the circuit-open worker's case); the other two wait in the stream.
            let first = try #require(await deliveries.next(), "the first delivery")
            #expect(first.properties.messageId == "held-1")
            #expect(!first.redelivered)
            #expect(consumer.isConsuming)
            // Past the timeout (2 s, checked every 200 ms) the broker closes the channel and
            // requeues all three.
            try await Task.sleep(for: .seconds(5))
            let next = try #require(
                await deliveries.next(), "nothing arrived after the broker closed the channel: the consumer is gone")
            #expect(next.redelivered, "a delivery of the dead channel was handed out: \(next.properties.messageId ?? "?")")
            var redelivered = [next]
            while redelivered.count < held.count, let delivery = await deliveries.next() {
                redelivered.append(delivery)
            }
            #expect(Set(redelivered.map(\.properties.messageId)) == Set(held), "each held message comes again")
            #expect(redelivered.allSatisfy { $0.redelivered })
            #expect(consumer.isConsuming)

            // The dead channel's delivery tag 1 is taken on the new channel: this ack must be dropped.
            first.ack()
            try await publisher.publish(message("after"))
            var after: AMQPDelivery?
            while after == nil, let delivery = await deliveries.next() {
                // The held ones come again each time the timeout closes a channel meanwhile.
                if delivery.properties.messageId == "after" { after = delivery }
            }
            let afterDelivery = try #require(after, "a message published after the channel was re-established never arrived")
            afterDelivery.ack()
            #expect(consumer.isConsuming)
            await consumer.cancel()
            #expect(!consumer.isConsuming)
            await connection.close()
        }
        // None of the held messages was acked on a channel that had it: all are back in the queue.
        try await TestBroker.waitUntil("the held messages back in the queue", timeout: .seconds(20)) {
            try await TestBroker.queueDepth(configuration, queue) == UInt32(held.count)
        }
        let left = try await publisher.withChannel { channel in try channel.deleteQueue(queue) }
        #expect(left == UInt32(held.count))
        await publisher.close()
    }

    /// Issue 14's black-box case: the ERP down for longer than the broker's `consumer_timeout`.
    /// The worker holds deliveries while its circuit is open, the broker closes its channel, and
    /// the worker consumes again at once: `/readyz` is red for the circuit, for its consumer only
    /// in the moment before it is back, and once the ERP is back the worker drains the queue,
    /// each event posted once
    /// (what was in hand went stale: its redelivered copy is a dedup hit), nothing dead-lettered.
    @Test func aWorkerWhoseERPIsDownLongerThanTheConsumerTimeoutDrainsTheQueueAfterwards() async throws {
        let day = try SimulatedDay(options: SimulationOptions(seed: 43, warehouses: 2, skus: 10, events: 200))
        let inventory = day.messages.filter { $0.routingKey.hasPrefix("inventory.") }
        let expected = day.manifest.counts.byStream["inventory"]!.posted
        try await withShortConsumerTimeout {
            try await WorkerSystem.with(masterData: day.catalogue, onScratch: true) { system in
                let worker = try await system.startWorker(.inventory)
                _ = try await postJSON(system.erpURL + "/admin/faults", #"{"outage": true}"#)
                try await system.publish(inventory)
                try await system.waitUntil("the circuit to open", timeout: .seconds(30)) {
                    try await system.metricSample(.inventory, "whsync_erp_circuit_open") == 1
                }
                // Held past 2 s: the broker closes the consumer's channel (PRECONDITION_FAILED),
                // and the worker consumes again at once.
                _ = try await worker.awaitLog("channel closed by the broker; reopening.*PRECONDITION_FAILED", timeout: .seconds(30))
                // The new channel's consumer follows the close within moments (under load, a
                // probe may fall in between): readiness names the circuit, and the consumer only
                // until it is back.
                try await system.waitUntil("the consumer back while the circuit is still open", timeout: .seconds(15)) {
                    let readiness = try await system.readiness(.inventory)
                    return readiness.failing.contains("erp-circuit")
                        && !readiness.failing.contains(ReadinessChecks.consumerCheckName("erp.inventory"))
                }

                _ = try await postJSON(system.erpURL + "/admin/faults", #"{"outage": false}"#)
                try await system.waitUntil("every event to post after the outage", timeout: .seconds(120)) {
                    (try? await system.erpDocumentCount()) ?? 0 >= expected
                }
                try await system.waitUntil("the work queue to drain", timeout: .seconds(60)) {
                    try await system.queueDepth("erp.inventory") == 0
                }
                #expect(try await system.erpDocumentCount() == expected)
                #expect(try await system.queueDepth("whsync.dead-letters") == 0)
                #expect(worker.log.contains("consuming again on a new channel"))
                try await system.waitUntil("the worker ready again", timeout: .seconds(30)) {
                    try await system.readiness(.inventory).status == 200
                }
            }
        }
    }

    /// Runs `body` with the scratch broker's `consumer_timeout` at 2 s and its channel tick (when
    /// a channel checks that timeout; 60 s by default) at 200 ms, then restores both. On
    /// RabbitMQ 3.10 both are rabbit application settings read at run time: a channel takes
    /// `consumer_timeout` when it opens, and `channel_tick_interval` each time it schedules its
    /// next tick (the first when it opens). So no node restart: open the connections in `body`.
    private func withShortConsumerTimeout(_ body: () async throws -> Void) async throws {
        let keys = "[consumer_timeout, channel_tick_interval]"
        let saved = try await TestBroker.scratchBrokerOutput(
            "ctl", ["eval", "[application:get_env(rabbit, K, undefined) || K <- \(keys)]."])
        let values = saved.split(whereSeparator: { !$0.isNumber }).map(String.init)
        guard values.count == 2 else {
            throw TestBroker.ProcessFailure(description: "cannot read the broker's \(keys): \(saved)")
        }
        func set(_ consumerTimeout: String, _ tick: String) async throws {
            try await TestBroker.scratchBroker(
                "ctl", "eval",
                "application:set_env(rabbit, consumer_timeout, \(consumerTimeout)), application:set_env(rabbit, channel_tick_interval, \(tick)).")
        }
        try await set("2000", "200")
        do {
            try await body()
        } catch {
            try? await set(values[0], values[1])
            throw error
        }
        try await set(values[0], values[1])
    }
}

/// A consumer whose queue goes away: the broker cancels it, the connection consumes again with
/// backoff, and says meanwhile that it does not consume (what the workers' readiness reports).
@Suite struct ConsumerRecoveryTests {
    @Test func aConsumerIsNotConsumingWhileItsQueueIsGoneAndGoesOnOnceItIsBack() async throws {
        let queue = TestBroker.uniqueName("it-queue-gone")
        func message(_ id: String) -> OutboundMessage { persistentMessage(id, to: queue) }
        let admin = try await TestBroker.connect(confirms: true)
        try await admin.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }
        let connection = try await TestBroker.connect(
            reconnect: ReconnectPolicy(initialDelay: .milliseconds(200), maximumDelay: .seconds(1)))
        let consumer = try await connection.consume(queue: queue, prefetch: 10)
        #expect(consumer.isConsuming)
        try await admin.publish(message("before"))
        #expect(await receive(consumer, count: 1, timeout: .seconds(30)).map(\.properties.messageId) == ["before"])

        _ = try await admin.withChannel { try $0.deleteQueue(queue) }
        try await TestBroker.waitUntil("the consumer of a deleted queue to say it does not consume", timeout: .seconds(20)) {
            !consumer.isConsuming
        }
        // Still not: consuming again fails as long as the queue is gone.
        try await Task.sleep(for: .seconds(2))
        #expect(!consumer.isConsuming)

        try await admin.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }
        try await TestBroker.waitUntil("the consumer to consume again once its queue is back", timeout: .seconds(30)) {
            consumer.isConsuming
        }
        try await admin.publish(message("after"))
        #expect(await receive(consumer, count: 1, timeout: .seconds(30)).map(\.properties.messageId) == ["after"])
        await consumer.cancel()
        _ = try await admin.withChannel { try $0.deleteQueue(queue) }
        await connection.close()
        await admin.close()
    }
}

extension WorkerIntegrationTests {
    /// A worker whose work queue has no consumer of its own is not ready, and `/readyz` names the
    /// queue; once the worker consumes it again (by itself) it is ready again and posts what comes.
    /// The queue is deleted under the worker here: its consumer stays gone until the topology is
    /// applied again.
    @Test func readinessNamesAWorkQueueWithoutItsConsumerUntilTheWorkerConsumesAgain() async throws {
        let day = try SimulatedDay(options: SimulationOptions(seed: 41, warehouses: 1, skus: 5, events: 40))
        let inventory = day.messages.filter { $0.routingKey.hasPrefix("inventory.") }
        let expected = day.manifest.counts.byStream["inventory"]!.posted
        let check = ReadinessChecks.consumerCheckName("erp.inventory")
        try await WorkerSystem.with(masterData: day.catalogue) { system in
            try await system.startWorker(.inventory)
            try await system.waitUntil("the worker ready", timeout: .seconds(30)) {
                try await system.readiness(.inventory).status == 200
            }
            let admin = try await TestBroker.connect(system.amqp)
            _ = try await admin.withChannel { try $0.deleteQueue("erp.inventory") }
            await admin.close()
            try await system.waitUntil("readiness to name the queue without a consumer", timeout: .seconds(30)) {
                try await system.readiness(.inventory).failing.contains(check)
            }
            #expect(try await system.readiness(.inventory).status == 503)

            try await TestBroker.applyTopology(amqpURL: system.amqpURL, file: system.topologyFile)
            try await system.waitUntil("the worker ready again once it consumes the queue", timeout: .seconds(60)) {
                try await system.readiness(.inventory).status == 200
            }
            try await system.publish(inventory)
            try await system.waitUntil("every event to post", timeout: .seconds(60)) {
                try await system.erpDocumentCount() >= expected
            }
            #expect(try await system.erpDocumentCount() == expected)
        }
    }
}
