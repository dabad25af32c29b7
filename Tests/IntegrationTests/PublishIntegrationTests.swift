import AMQPClient
import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncOps
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncWorker

@Suite struct PublishIntegrationTests {
    static func inventory(_ id: String, warehouse: String = "WH1", sku: String = "SKU-1", sequence: Int, quantity: String = "5") -> String {
        #"{"schema":"inventory.delta/1","eventId":"\#(id)","occurredAt":"2026-11-22T08:00:00Z","warehouse":"\#(warehouse)","sequence":\#(sequence),"correlationId":"c-\#(id)","sku":"\#(sku)","quantity":\#(quantity),"uom":"EA","status":"available","reason":"receipt"}"#
    }

    static func shipment(_ id: String, sequence: Int) -> String {
        #"{"schema":"shipment.event/1","eventId":"\#(id)","occurredAt":"2026-11-22T09:30:00+01:00","warehouse":"WH2","sequence":\#(sequence),"shipmentId":"SH-9","orderRef":"SO-1","status":"shipped","lines":[{"sku":"SKU-2","quantity":"2.5","uom":"KG"}]}"#
    }

    @Test func publishesExactlyTheGoodLinesAndReportsTheBadOnesByLineNumber() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        let whsync = try TestBroker.executablePath("whsync")
        let topologyFile = TestBroker.repoRoot().appendingPathComponent("topology/topology.json").path
        let apply = try await TestBroker.run(whsync, ["topology", "apply", "--amqp-url", vhost.url, "--file", topologyFile])
        #expect(apply.status == 0, "\(apply.stderr)")

        let lines = [
            Self.inventory("inv-1", sequence: 1),                                   // 1 good
            #"{"schema":"inventory.delta/1","eventId":"inv-bad""#,                   // 2 malformed JSON
            Self.inventory("inv-2", sequence: 2, quantity: "0"),                     // 3 zero quantity
            "",                                                                      // 4 blank: skipped
            Self.shipment("shp-1", sequence: 1),                                     // 5 good
            Self.inventory("inv-3", warehouse: "WH 1", sequence: 3),                 // 6 bad warehouse
            Self.inventory("inv-4", sku: "SKU-7", sequence: 1, quantity: "-1.25"),   // 7 good
            Self.inventory("inv-5", sequence: 0),                                    // 8 sequence 0
        ]
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("events-\(UUID().uuidString).jsonl")
        try Data(lines.joined(separator: "\n").utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }

        let result = try await TestBroker.run(whsync, ["publish", file.path, "--amqp-url", vhost.url])
        #expect(result.status == 1, "rejected lines make the exit status non-zero")
        #expect(result.stderr.contains("published 3, rejected 4 (invalid), failed 0"), "\(result.stderr)")
        for line in [2, 3, 6, 8] {
            #expect(result.stderr.contains("line \(line): not a valid event"), "line \(line) not reported: \(result.stderr)")
        }
        #expect(result.stderr.contains("line 3: not a valid event: quantity:"))
        #expect(result.stderr.contains("line 6: not a valid event: warehouse:"))
        #expect(result.stderr.contains("line 8: not a valid event: sequence:"))
        #expect(result.stdout.isEmpty)

        let connection = try await TestBroker.connect(vhost.configuration)
        #expect(try await connection.withChannel { try $0.checkQueue("erp.inventory") }.messageCount == 2)
        #expect(try await connection.withChannel { try $0.checkQueue("erp.shipment") }.messageCount == 1)
        #expect(try await connection.withChannel { try $0.checkQueue("erp.receipt") }.messageCount == 0)

        let consumer = try await connection.consume(queue: "erp.inventory", prefetch: 10)
        let deliveries = await receive(consumer, count: 2, timeout: .seconds(20))
        await consumer.cancel()
        #expect(deliveries.map(\.properties.messageId) == ["inv-1", "inv-4"])
        let first = try #require(deliveries.first)
        #expect(first.routingKey == "inventory.WH1")
        #expect(first.exchange == "wms.events")
        #expect(first.body == Array(lines[0].utf8), "the body goes out byte for byte")
        #expect(first.properties.contentType == "application/json")
        #expect(first.properties.deliveryMode == .persistent)
        #expect(first.properties.type == "inventory.delta/1")
        #expect(first.properties.correlationId == "c-inv-1")
        #expect(first.properties.headers["partition-key"] == .string("WH1/SKU-1"))
        #expect(deliveries.last?.properties.headers["partition-key"] == .string("WH1/SKU-7"))
        await connection.close()
    }

    @Test func stdinWorksAndAllGoodExitsZero() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        let connection = try await TestBroker.connect(vhost.configuration)
        try await TopologyDeployer(plan: try TopologyIntegrationTests.repoTopology().plan).apply(on: connection)
        let input = (1...1000).map { Self.inventory("bulk-\($0)", sku: "SKU-\($0 % 37)", sequence: $0) }.joined(separator: "\n") + "\n"
        let result = try await TestBroker.run(try TestBroker.executablePath("whsync"), ["publish", "-", "--amqp-url", vhost.url], stdin: Data(input.utf8))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("published 1000, rejected 0 (invalid), failed 0"))
        #expect(try await connection.withChannel { try $0.checkQueue("erp.inventory") }.messageCount == 1000)
        await connection.close()
    }

    @Test func withoutTheTopologyEveryEventIsReportedUnroutable() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        let connection = try await TestBroker.connect(vhost.configuration)
        try await connection.withChannel { try $0.declareExchange("wms.events", type: "topic") }
        await connection.close()
        let input = Self.inventory("lonely-1", sequence: 1) + "\n"
        let result = try await TestBroker.run(try TestBroker.executablePath("whsync"), ["publish", "-", "--amqp-url", vhost.url], stdin: Data(input.utf8))
        #expect(result.status == 1)
        #expect(result.stderr.contains("line 1 (eventId lonely-1): not published: no queue is bound"), "\(result.stderr)")
        #expect(result.stderr.contains("published 0, rejected 0 (invalid), failed 1"))
    }
}
