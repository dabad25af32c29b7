import AMQPClient
import Foundation
import Synchronization
import Testing

@Suite struct AMQPClientIntegrationTests {
    @Test func tenThousandPersistentMessagesOnAQuorumQueueNoneLostNoneDuplicated() async throws {
        let queue = TestBroker.uniqueName("it-quorum")
        let admin = try await TestBroker.connect()
        try await admin.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }

        let publisher = try await TestBroker.connect(confirms: true)
        let count = 10_000
        let messages = (0..<count).map { i in
            OutboundMessage(
                exchange: "", routingKey: queue, body: Array("message \(i)".utf8),
                properties: AMQPProperties(deliveryMode: .persistent, messageId: "m-\(i)"), mandatory: true)
        }
        // Pipelined in batches, several in flight: one confirm round-trip per batch, not per message.
        let failures = await withTaskGroup(of: Int.self) { group in
            for start in stride(from: 0, to: count, by: 1000) {
                let batch = Array(messages[start..<min(start + 1000, count)])
                group.addTask { await publisher.publish(batch).filter { (try? $0.get()) == nil }.count }
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
        await publisher.close()
        #expect(try await admin.withChannel { try $0.checkQueue(queue) }.messageCount == UInt32(count))

        let consumerConnection = try await TestBroker.connect()
        let consumer = try await consumerConnection.consume(queue: queue, prefetch: 500)
        let received = await receive(consumer, count: count)
        await consumer.cancel()
        await consumerConnection.close()

        let ids = received.compactMap(\.properties.messageId)
        #expect(ids.count == count)
        #expect(Set(ids) == Set((0..<count).map { "m-\($0)" }))
        #expect(received.allSatisfy { $0.properties.deliveryMode == .persistent })
        // Every ack reached the broker before the connection closed.
        #expect(try await admin.withChannel { try $0.checkQueue(queue) }.messageCount == 0)
        try await admin.withChannel { try $0.deleteQueue(queue) }
        await admin.close()
    }

    @Test func propertiesAndHeadersArriveAsSent() async throws {
        let queue = TestBroker.uniqueName("it-props")
        let connection = try await TestBroker.connect(confirms: true)
        try await connection.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }
        let properties = AMQPProperties(
            contentType: "application/json", headers: ["partition-key": "WH1/SKU-1", "whsync-attempt": 2],
            deliveryMode: .persistent, correlationId: "corr-1", messageId: "evt-1", type: "inventory.delta/1")
        try await connection.publish(OutboundMessage(exchange: "", routingKey: queue, body: Array(#"{"a":1}"#.utf8), properties: properties, mandatory: true))
        let consumer = try await connection.consume(queue: queue, prefetch: 10)
        let delivery = try #require(await receive(consumer, count: 1).first)
        #expect(delivery.properties == properties)
        #expect(delivery.body == Array(#"{"a":1}"#.utf8))
        #expect(delivery.routingKey == queue)
        #expect(!delivery.redelivered)
        await consumer.cancel()
        try await connection.withChannel { try $0.deleteQueue(queue) }
        await connection.close()
    }

    @Test func nackWithRequeueRedeliversAndRejectWithoutRequeueDrops() async throws {
        let queue = TestBroker.uniqueName("it-nack")
        let connection = try await TestBroker.connect(confirms: true)
        try await connection.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }
        try await connection.publish(OutboundMessage(exchange: "", routingKey: queue, body: [1]))
        try await connection.publish(OutboundMessage(exchange: "", routingKey: queue, body: [2]))
        let consumer = try await connection.consume(queue: queue, prefetch: 10)
        var iterator = consumer.deliveries.makeAsyncIterator()
        let first = try #require(await iterator.next())
        first.nack(requeue: true)
        let second = try #require(await iterator.next())
        second.reject(requeue: false)
        let again = try #require(await iterator.next())
        #expect(again.body == first.body)
        #expect(again.redelivered)
        again.ack()
        await consumer.cancel()
        #expect(try await connection.withChannel { try $0.checkQueue(queue) }.messageCount == 0)
        try await connection.withChannel { try $0.deleteQueue(queue) }
        await connection.close()
    }

    /// Acks out of order are deferred (UnsettledDeliveries): the prefetch window shows when the
    /// broker has them, since it sends the next message only for an ack it received.
    @Test func acksOutOfOrderReachTheBrokerWithTheFrontOrOnceTheyHaveWaitedAndBeforeAClose() async throws {
        let queue = TestBroker.uniqueName("it-deferred")
        let connection = try await TestBroker.connect(confirms: true)
        try await connection.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }
        for i in 1...12 { try await connection.publish(OutboundMessage(exchange: "", routingKey: queue, body: [UInt8(i)])) }
        let consumer = try await connection.consume(queue: queue, prefetch: 6)
        let received = Received()
        let collector = Task { for await delivery in consumer.deliveries { received.list.withLock { $0.append(delivery) } } }
        func waitForDeliveries(_ count: Int, _ why: String) async throws -> [AMQPDelivery] {
            try await TestBroker.waitUntil("\(count) deliveries: \(why)", timeout: .seconds(10)) { received.list.withLock { $0.count >= count } }
            return received.list.withLock { $0 }
        }
        var window = try await waitForDeliveries(6, "the first window")
        let firstBodies: [[UInt8]] = window.map(\.body)
        #expect(firstBodies == [[1], [2], [3], [4], [5], [6]])
        // 2 acked while 1 is out: deferred, then sent alone once it has waited; the broker then
        // has a free slot and sends the seventh.
        window[1].ack()
        window = try await waitForDeliveries(7, "a deferred ack sent after its wait frees a slot")
        // 4 and 5 wait for the front; 1 and 3 acked: one multiple ack covers 1…5, four slots free.
        window[3].ack()
        window[4].ack()
        window[0].ack()
        window[2].ack()
        window = try await waitForDeliveries(11, "the front's multiple ack covers the deferred acks")
        // 8 and 9 acked out of order (7 is out), then the consumer cancelled and the connection
        // closed: the deferred acks go before the cancel, so only 6, 7, 10 and 11 come back (and
        // 12, which the freed slots may have brought meanwhile).
        window[7].ack()
        window[8].ack()
        await consumer.cancel()
        collector.cancel()
        await connection.close()

        let again = try await TestBroker.connect()
        let redelivered = await receive(try await again.consume(queue: queue, prefetch: 20), count: 5, timeout: .seconds(10))
        let bodies: [UInt8] = redelivered.map { $0.body.first ?? 0 }.sorted()
        #expect(bodies == [6, 7, 10, 11, 12])
        let wereOut = redelivered.filter { [6, 7, 10, 11].contains($0.body.first ?? 0) }
        #expect(wereOut.count == 4 && wereOut.allSatisfy(\.redelivered))
        try await again.withChannel { try $0.deleteQueue(queue) }
        await again.close()
    }

    private final class Received: Sendable {
        let list = Mutex<[AMQPDelivery]>([])
    }

    @Test func wrongCredentialsGiveAccessRefused() async throws {
        var configuration = try TestBroker.mainConfiguration()
        configuration.password = "not-the-password"
        let error = await #expect(throws: AMQPError.self) { try await TestBroker.connect(configuration) }
        #expect(error?.code == .accessRefused)
        #expect(error?.message.contains("ACCESS_REFUSED") == true)
        #expect(error?.message.contains("not-the-password") == false)
    }

    @Test func unknownVirtualHostIsNotAllowed() async throws {
        var configuration = try TestBroker.mainConfiguration()
        configuration.virtualHost = "no-such-vhost"
        let error = await #expect(throws: AMQPError.self) { try await TestBroker.connect(configuration) }
        #expect(error?.code == .notAllowed)
        #expect(error?.message.contains("no-such-vhost") == true)
    }

    @Test func closedPortIsRefusedWithHostAndPort() async throws {
        let port = try freeLoopbackPort()
        let configuration = AMQPConfiguration(host: "127.0.0.1", port: port)
        let error = await #expect(throws: AMQPError.self) { try await TestBroker.connect(configuration) }
        #expect(error?.code == .connectionRefused)
        #expect(error?.message.contains("127.0.0.1:\(port)") == true)
        #expect(error?.message.contains("refused") == true)
    }

    @Test func missingQueueIsNotFoundAndTheChannelRecovers() async throws {
        let connection = try await TestBroker.connect()
        let missing = TestBroker.uniqueName("it-missing")
        let error = await #expect(throws: AMQPError.self) {
            try await connection.withChannel { try $0.checkQueue(missing) }
        }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("NOT_FOUND - no queue '\(missing)'") == true)
        // The broker closed the channel; the next operation reopens it.
        let queue = TestBroker.uniqueName("it-after")
        try await connection.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }
        try await connection.withChannel { try $0.deleteQueue(queue) }
        await connection.close()
    }

    @Test func redeclaringWithOtherArgumentsIsPreconditionFailedWithTheBrokersText() async throws {
        let connection = try await TestBroker.connect()
        let queue = TestBroker.uniqueName("it-args")
        try await connection.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum", "x-delivery-limit": 5]) }
        let error = await #expect(throws: AMQPError.self) {
            try await connection.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum", "x-delivery-limit": 9]) }
        }
        #expect(error?.code == .preconditionFailed)
        #expect(error?.message.contains("inequivalent arg 'x-delivery-limit'") == true)
        try await connection.withChannel { try $0.deleteQueue(queue) }
        await connection.close()
    }

    @Test func unroutableMandatoryMessageFailsAndOthersInTheBatchSucceed() async throws {
        let connection = try await TestBroker.connect(confirms: true)
        let exchange = TestBroker.uniqueName("it-topic")
        let queue = TestBroker.uniqueName("it-bound")
        try await connection.withChannel { channel in
            try channel.declareExchange(exchange, type: "topic", durable: false, autoDelete: true)
            try channel.declareQueue(queue, arguments: ["x-queue-type": "quorum"])
            try channel.bindQueue(queue, exchange: exchange, routingKey: "inventory.*")
        }
        let results = await connection.publish([
            OutboundMessage(exchange: exchange, routingKey: "inventory.WH1", body: [1], mandatory: true),
            OutboundMessage(exchange: exchange, routingKey: "nowhere.WH1", body: [2], mandatory: true),
            OutboundMessage(exchange: exchange, routingKey: "inventory.WH2", body: [3], mandatory: true),
        ])
        #expect((try? results[0].get()) != nil)
        #expect((try? results[2].get()) != nil)
        guard case .failure(let error) = results[1] else {
            Issue.record("the unroutable message was confirmed")
            return
        }
        #expect(error.code == .unroutable)
        #expect(error.message.contains("nowhere.WH1"))
        try await connection.withChannel { try $0.deleteQueue(queue) }
        await connection.close()
    }

    @Test func publishingToAMissingExchangeFailsWithNotFound() async throws {
        let connection = try await TestBroker.connect(confirms: true)
        let error = await #expect(throws: AMQPError.self) {
            try await connection.publish(OutboundMessage(exchange: TestBroker.uniqueName("it-no-exchange"), routingKey: "x", body: [1]))
        }
        #expect(error?.code == .notFound)
        // The channel comes back for the next publish.
        let queue = TestBroker.uniqueName("it-next")
        try await connection.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }
        try await connection.publish(OutboundMessage(exchange: "", routingKey: queue, body: [1], mandatory: true))
        try await connection.withChannel { try $0.deleteQueue(queue) }
        await connection.close()
    }

    @Test func anIdleConnectionStaysUpOnHeartbeats() async throws {
        var configuration = try TestBroker.mainConfiguration()
        // 2 s, not 1: an idle broker sends a heartbeat every interval and we give up after two,
        // so 1 s left one second of slack, which the suite's start (every suite at once on two
        // cores) once took from the broker.
        configuration.heartbeatSeconds = 2
        let connection = try await TestBroker.connect(configuration)  // no reconnect: a drop is final
        try await Task.sleep(for: .seconds(7))
        #expect(connection.isConnected, "dropped while idle: heartbeats were not sent or not seen")
        let queue = TestBroker.uniqueName("it-idle")
        try await connection.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }
        try await connection.withChannel { try $0.deleteQueue(queue) }
        await connection.close()
    }

    @Test func operationsAfterCloseFailWithClosed() async throws {
        let connection = try await TestBroker.connect(confirms: true)
        await connection.close()
        let error = await #expect(throws: AMQPError.self) {
            try await connection.publish(OutboundMessage(exchange: "", routingKey: "x", body: []))
        }
        #expect(error?.code == .closed)
        #expect(!connection.isConnected)
    }
}

func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0 else { throw TestBroker.ProcessFailure(description: "bind failed") }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
