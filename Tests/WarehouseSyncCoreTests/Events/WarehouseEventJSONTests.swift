import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncTesting

/// `WarehouseEvent.jsonBody`: what a typed event is published as must decode to the same event.
@Suite("WarehouseEvent's wire body")
struct WarehouseEventJSONTests {
    let decoder = EventDecoder()

    @Test("a decoded event written back decodes to an equal event", arguments: EventSamples.all.map(\.line))
    func roundTrip(line: String) throws {
        let event = try decoder.decode(Array(line.utf8))
        #expect(try decoder.decode(event.jsonBody) == event)
    }

    @Test func everyValidSchemaExampleSurvivesTheRoundTripToo() throws {
        let directory = TestRepository.root.appendingPathComponent("schemas/examples/valid")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".json") }
        #expect(names.count >= 12)
        for name in names {
            let event = try decoder.decode(Array(try Data(contentsOf: directory.appendingPathComponent(name))))
            #expect(try decoder.decode(event.jsonBody) == event, "\(name)")
        }
    }

    @Test func aTypedEventBuiltInSwiftIsWrittenAsTheContractSays() throws {
        let header = EventHeader(
            stream: .inventory, eventId: "adapter-1", occurredAt: try Timestamp.parse("2026-11-23T08:15:00.250+01:00"),
            warehouse: "WH-7", sequence: 42, correlationId: "po-9")
        let event = WarehouseEvent.inventory(
            InventoryDelta(header: header, sku: "SKU-1", quantity: try #require(Quantity(parsing: "-1.500")), uom: "EA",
                           status: .qualityHold, reason: .adjustment, lot: "L1"))
        let text = String(decoding: event.jsonBody, as: UTF8.self)
        #expect(text == #"{"schema":"inventory.delta/1","eventId":"adapter-1","occurredAt":"2026-11-23T08:15:00.250+01:00","warehouse":"WH-7","sequence":42,"correlationId":"po-9","sku":"SKU-1","quantity":-1.5,"uom":"EA","status":"quality-hold","reason":"adjustment","lot":"L1"}"#)
        #expect(try decoder.decode(event.jsonBody, routingKey: "inventory.WH-7") == event)
    }

    @Test func aWMSStatusCodeIsWrittenAsTheWMSSentIt() throws {
        let body = #"{"schema":"shipment.event/1","eventId":"s-1","occurredAt":"2026-11-23T08:00:00Z","warehouse":"WH1","sequence":1,"shipmentId":"SH1","orderRef":"O1","status":"SHIPPED","lines":[{"sku":"A","quantity":"2","uom":"EA"}]}"#
        let event = try decoder.decode(Array(body.utf8))
        #expect(String(decoding: event.jsonBody, as: UTF8.self).contains(#""status":"SHIPPED""#))
    }
}
