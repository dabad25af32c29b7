import Foundation
import WarehouseSyncCore

/// Events, times and a deterministic random source for the pipeline tests.
enum PipelineFixtures {
    static let epoch = Date(timeIntervalSince1970: 1_714_550_400)  // 2024-05-01T08:00:00Z

    /// `epoch` plus `seconds`.
    static func time(_ seconds: Double) -> Date {
        epoch.addingTimeInterval(seconds)
    }

    /// An inventory delta body for key `warehouse/sku`, as a WMS would write it. `variant`
    /// changes only the form: 1 reverses the key order, writes the quantity as a string with
    /// trailing zeros, adds whitespace, a new correlation id and another UTC offset for the same
    /// instant; 0 is compact.
    static func inventoryBody(
        eventId: String, warehouse: String = "WH1", sku: String = "SKU-1", sequence: Int64,
        quantity: Quantity, variant: Int = 0
    ) -> String {
        if variant == 0 {
            return #"{"schema":"inventory.delta/1","eventId":"\#(eventId)","occurredAt":"2024-05-01T08:30:00Z","warehouse":"\#(warehouse)","sequence":\#(sequence),"correlationId":"corr-\#(eventId)","sku":"\#(sku)","quantity":\#(quantity),"uom":"EA","status":"available","reason":"adjustment"}"#
        }
        let trailingZeros = quantity.description.contains(".") ? "000" : ".000"
        return #"{ "reason": "adjustment", "status": "available", "uom": "EA", "quantity": "\#(quantity)\#(trailingZeros)", "sku": "\#(sku)", "correlationId": "resent-\#(eventId)", "sequence": \#(sequence), "warehouse": "\#(warehouse)", "occurredAt": "2024-05-01T10:30:00+02:00", "eventId": "\#(eventId)", "schema": "inventory.delta/1" }"#
    }

    static func decode(_ body: String) -> WarehouseEvent {
        do {
            return try EventDecoder().decode(Array(body.utf8))
        } catch {
            preconditionFailure("fixture body does not decode: \(error)")
        }
    }

    static func inventory(
        eventId: String = "evt-1", warehouse: String = "WH1", sku: String = "SKU-1", sequence: Int64 = 1,
        quantity: Quantity = 5, variant: Int = 0
    ) -> WarehouseEvent {
        decode(inventoryBody(eventId: eventId, warehouse: warehouse, sku: sku, sequence: sequence, quantity: quantity, variant: variant))
    }

    /// The facts the gate needs about an event with these fields.
    static func incoming(
        _ eventId: String, sequence: Int64, quantity: Quantity = 5, isReplay: Bool = false
    ) -> IncomingEvent {
        IncomingEvent(inventory(eventId: eventId, sequence: sequence, quantity: quantity), isReplay: isReplay)
    }

    /// A topology with these retry tiers (JSON array text).
    static func topology(tiers: String = #"["5s", "30s", "5m"]"#) -> Topology {
        let json = """
            {
              "eventsExchange": "wms.events",
              "streams": { "inventory": {}, "shipment": {}, "receipt": {} },
              "retry": { "exchange": "whsync.retry", "requeueExchange": "whsync.requeue", "tiers": \(tiers) },
              "deadLetter": { "exchange": "whsync.dead", "queue": "whsync.dead-letters" }
            }
            """
        do {
            return try Topology(jsonData: Data(json.utf8))
        } catch {
            preconditionFailure("fixture topology is invalid: \(error)")
        }
    }
}

/// SplitMix64: a tiny deterministic generator, so that one property-test seed reproduces a whole
/// simulated run.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `probability`.
    mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &self) < probability
    }
}

/// An instant the tests control, for ``CircuitBreaker``.
struct TestInstant: InstantProtocol, Hashable {
    var offset: Duration

    static func seconds(_ value: Int64) -> TestInstant {
        TestInstant(offset: .seconds(value))
    }

    func advanced(by duration: Duration) -> TestInstant {
        TestInstant(offset: offset + duration)
    }

    func duration(to other: TestInstant) -> Duration {
        other.offset - offset
    }

    static func < (lhs: TestInstant, rhs: TestInstant) -> Bool {
        lhs.offset < rhs.offset
    }
}
