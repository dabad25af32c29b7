import AMQPClient
import Foundation
import Logging
import Testing
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncOps
import WarehouseSyncProcessKit
import WarehouseSyncPublisher
import WarehouseSyncSettings
import WarehouseSyncWorker

/// The WarehouseSyncPublisher library as a Swift WMS adapter uses it, against the real broker.
@Suite struct EventPublisherIntegrationTests {
    static let logger = Logger(label: "publisher-test")

    @Test func aTypedEventIsPublishedAsTheContractSaysAndProblemsComeBackCoded() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        let publisher = try await EventPublisher.connect(.init(amqp: vhost.configuration), logger: Self.logger)

        // No topology yet: the exchange is missing, and a publisher can tell before it starts.
        await #expect(throws: PublishError.self) { try await publisher.checkExchange() }

        let admin = try await TestBroker.connect(vhost.configuration)
        try await TopologyDeployer(plan: try TopologyIntegrationTests.repoTopology().plan).apply(on: admin)
        try await publisher.checkExchange()

        let header = EventHeader(
            stream: .receipt, eventId: "typed-1", occurredAt: try Timestamp.parse("2026-11-23T07:00:00Z"), warehouse: "WH9",
            sequence: 3, correlationId: "po-77")
        let receipt = ReceiptEvent(
            header: header, receiptId: "R-1", purchaseOrderRef: "PO-77", supplier: "ACME", status: .received,
            lines: [ReceiptLine(sku: "SKU-1", quantityExpected: 10, quantityReceived: try #require(Quantity(parsing: "9.5")), uom: "KG")])
        try await publisher.publish(.receipt(receipt))

        let consumer = try await admin.consume(queue: "erp.receipt", prefetch: 10)
        let delivery = try #require(await receive(consumer, count: 1, timeout: .seconds(20)).first)
        await consumer.cancel()
        #expect(delivery.routingKey == "receipt.WH9")
        #expect(delivery.properties.messageId == "typed-1")
        #expect(delivery.properties.headers["partition-key"] == .string("WH9/R-1"))
        #expect(try EventDecoder().decode(delivery.body, routingKey: delivery.routingKey) == .receipt(receipt))

        // Invalid: coded, with the field, nothing published.
        var invalid = receipt
        invalid.header.warehouse = "WH 9"
        let error = await #expect(throws: PublishError.self) { try await publisher.publish(.receipt(invalid)) }
        #expect(error?.code == .invalid)
        #expect(error?.violations.map(\.field) == ["warehouse"])
        #expect(error?.isRetryable == false)
        #expect(try await admin.withChannel { try $0.checkQueue("erp.receipt").messageCount } == 0, "the invalid event was published")

        // A routing key no queue is bound for: the broker returns it, the publisher says so.
        try await admin.withChannel { try $0.deleteQueue("erp.receipt") }
        let unroutable = await #expect(throws: PublishError.self) { try await publisher.publish(.receipt(receipt)) }
        #expect(unroutable?.code == .notConfirmed)

        await publisher.close()
        // After close, a publish fails at once instead of waiting for a connection.
        let closed = await #expect(throws: PublishError.self) { try await publisher.publish(.receipt(receipt)) }
        #expect(closed?.isRetryable == true)
        await admin.close()
    }
}
