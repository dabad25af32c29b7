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

extension ScratchBrokerTests {
    /// Under a memory alarm the broker stops reading from a connection once it publishes, so the
    /// closing handshake gets no reply (without bounds: 5 s for the confirm, then two waits of
    /// librabbitmq's 60 s RPC timeout). `close(timeout:)` returns at its bound, and the
    /// connection's thread ends its own close soon after, each reply waited for 2 s.
    @Test func closeReturnsWhenTheBrokerStoppedReading() async throws {
        let configuration = try AMQPConfiguration(
            url: TestBroker.env("WHSYNC_TEST_SCRATCH_AMQP_URL"), connectionName: "close-blocked-test")
        let queue = TestBroker.uniqueName("it-close-blocked")
        let publisher = try await TestBroker.connect(configuration, confirms: true)
        try await publisher.withChannel { try $0.declareQueue(queue) }
        try await TestBroker.scratchBroker("ctl", "set_vm_memory_high_watermark", "0")
        do {
            let publishing = Task {
                await publisher.publish([OutboundMessage(
                    exchange: "", routingKey: queue, body: Array("blocked".utf8),
                    properties: AMQPProperties(deliveryMode: .persistent, messageId: "blocked"), mandatory: true)])
            }
            try await TestBroker.waitUntil("the broker blocks the publishing connection", timeout: .seconds(30)) {
                publisher.isBlocked
            }
            let closing = ContinuousClock.now
            await publisher.close(timeout: .seconds(3))
            let waited = closing.duration(to: .now)
            #expect(waited >= .seconds(3), "close returned after \(waited), before the broker could have answered")
            #expect(waited < .seconds(6), "close(timeout: 3 s) returned only after \(waited)")
            // A second close (the worker's process closes what its service closed) does not
            // wait for the same thread again.
            let again = ContinuousClock.now
            await publisher.close(timeout: .seconds(3))
            #expect(again.duration(to: .now) < .seconds(1))
            // Confirm wait 5 s, then close-ok of the channel and of the connection 2 s each.
            try await TestBroker.waitUntil("the connection's thread ended its close", timeout: .seconds(30)) {
                !publisher.isConnected
            }
            let results = await publishing.value
            #expect(results.count == 1)
            #expect(throws: AMQPError.self, "a publish the broker never confirmed fails at the close") { try results.first?.get() }
        } catch {
            try? await TestBroker.scratchBroker("ctl", "set_vm_memory_high_watermark", "0.4")
            throw error
        }
        try await TestBroker.scratchBroker("ctl", "set_vm_memory_high_watermark", "0.4")
        let admin = try await TestBroker.connect(configuration)
        _ = try await admin.withChannel { try $0.deleteQueue(queue) }
        await admin.close()
    }
}

extension ScratchBrokerTests {
    /// DESIGN §9: `AMQP_URL` may name several nodes. When the node in use goes away, the
    /// connection moves to the next one by itself, and publishing with confirms goes on there.
    @Test func aConnectionMovesToTheNextNodeWhenItsNodeStops() async throws {
        let scratch = try AMQPConfiguration(url: TestBroker.env("WHSYNC_TEST_SCRATCH_AMQP_URL"))
        let main = try TestBroker.mainConfiguration()
        var both = scratch
        both.otherNodes = [.init(host: main.host, port: main.port)]
        both.connectionName = "failover-test"
        let queue = TestBroker.uniqueName("it-failover")
        let admin = try await TestBroker.connect()
        try await admin.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }

        let fastRetry = ReconnectPolicy(initialDelay: .milliseconds(200), maximumDelay: .seconds(1))
        let connection = try await TestBroker.connect(both, confirms: true, reconnect: fastRetry)
        let message = { (id: String) in
            OutboundMessage(
                exchange: "", routingKey: queue, body: Array(id.utf8),
                properties: AMQPProperties(deliveryMode: .persistent, messageId: id), mandatory: true)
        }
        // On the scratch node the queue does not exist: a mandatory publish comes back unroutable.
        let onScratch = await connection.publish([message("before")])
        #expect(onScratch.allSatisfy { (try? $0.get()) == nil }, "the first node listed was not the one in use")

        try await TestBroker.scratchBroker("stop")
        do {
            try await TestBroker.waitUntil("the connection to move to the main node", timeout: .seconds(60)) {
                let results = await connection.publish([message("after")])
                return results.allSatisfy { (try? $0.get()) != nil }
            }
            #expect(try await TestBroker.queueDepth(main, queue) >= 1)
        } catch {
            try await TestBroker.scratchBroker("start")
            throw error
        }
        try await TestBroker.scratchBroker("start")
        try await admin.withChannel { try $0.deleteQueue(queue) }
        await connection.close()
        await admin.close()
    }
}
