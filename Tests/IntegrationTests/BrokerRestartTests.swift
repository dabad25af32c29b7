import AMQPClient
import Foundation
import Testing

/// Tests that restart the scratch broker or replace its definitions: serialized, and on their
/// own broker so the rest of the suite never sees it go away.
@Suite(.serialized) struct ScratchBrokerTests {
    @Test func consumerReconnectsByItselfAfterABrokerRestartAndGetsTheRest() async throws {
        let configuration = try AMQPConfiguration(url: TestBroker.env("WHSYNC_TEST_SCRATCH_AMQP_URL"), connectionName: "restart-test")
        let queue = TestBroker.uniqueName("it-restart")
        let count = 2000
        let publisher = try await TestBroker.connect(configuration, confirms: true)
        try await publisher.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }
        let results = await publisher.publish((0..<count).map {
            OutboundMessage(
                exchange: "", routingKey: queue, body: [],
                properties: AMQPProperties(deliveryMode: .persistent, messageId: "r-\($0)"), mandatory: true)
        })
        #expect(results.allSatisfy { (try? $0.get()) != nil })
        await publisher.close()

        let fastRetry = ReconnectPolicy(initialDelay: .milliseconds(200), maximumDelay: .seconds(2))
        let connection = try await TestBroker.connect(configuration, reconnect: fastRetry)
        let consumer = try await connection.consume(queue: queue, prefetch: 50)
        var seen = Set<String>()
        var iterator = consumer.deliveries.makeAsyncIterator()
        while seen.count < 500, let delivery = await iterator.next() {
            seen.insert(delivery.properties.messageId ?? "")
            delivery.ack()
        }
        #expect(connection.isConnected)

        try await TestBroker.scratchBroker("restart")

        // The consumer never stopped: the same stream goes on after the reconnect. Deliveries
        // unacked at the restart come again (redelivered), so count distinct ids.
        let deadline = Task {
            try await Task.sleep(for: .seconds(90))
            await consumer.cancel()  // ends the stream, so the loop below ends too
        }
        while seen.count < count, let delivery = await iterator.next() {
            seen.insert(delivery.properties.messageId ?? "")
            delivery.ack()
        }
        deadline.cancel()
        #expect(seen.count == count, "got \(seen.count) of \(count) distinct messages after the restart")
        #expect(seen == Set((0..<count).map { "r-\($0)" }))
        #expect(connection.isConnected)
        await consumer.cancel()
        try await connection.withChannel { try $0.deleteQueue(queue) }
        await connection.close()
    }
}
