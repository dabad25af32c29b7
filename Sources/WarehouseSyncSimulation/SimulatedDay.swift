import Foundation
import WarehouseSyncCore

/// One event of the undisturbed day, in the order the WMS emitted it.
public struct SimulatedEvent: Sendable, Equatable {
    public let eventId: String
    public let stream: EventStream
    public let warehouse: String
    /// The SKU, shipment id or receipt id.
    public let keyId: String
    public let sequence: Int64
    /// `<stream>.<warehouse>`.
    public let routingKey: String
    /// The JSON body: compact, one line, exactly what is published.
    public let body: [UInt8]
    /// What a posting of this event does to the ERP's books.
    let effect: Effect

    /// `warehouse/keyId`.
    public var sequencingKey: String { warehouse + "/" + keyId }

    /// The body as text.
    public var line: String { String(decoding: body, as: UTF8.self) }

    enum Effect: Sendable, Equatable {
        /// Signed micro-units into `status`.
        case inventory(sku: Int, status: InventoryStatus, quantity: Int64)
        /// Lines (SKU index, micro-units) when `shipped`.
        case shipment(status: ShipmentStatus, lines: [Line])
        /// Lines (SKU index, received micro-units).
        case receipt(status: ReceiptStatus, lines: [Line])
    }

    struct Line: Sendable, Equatable {
        let sku: Int
        let quantity: Int64
    }
}

/// One message of the disturbed stream.
public struct SimulatedMessage: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// An event of the day, in its (possibly out-of-order) place.
        case event
        /// A verbatim re-emission of an earlier event.
        case duplicate
        /// A deliberately invalid message (see ``SimulationManifest/InvalidMessage``).
        case invalid
    }

    public let kind: Kind
    /// The routing key to publish with: the body's own except for a routing mismatch.
    public let routingKey: String
    public let body: [UInt8]
    /// `nil` for a body that is not JSON.
    public let eventId: String?
    /// For an invalid message, its kind.
    public let invalidKind: InvalidKind?

    /// Whether the events file holds it: everything but a routing mismatch, whose wrong routing
    /// key a line cannot carry.
    public var isLine: Bool { invalidKind != .routingMismatch }

    /// The body as text.
    public var line: String { String(decoding: body, as: UTF8.self) }
}

/// A simulated day: the undisturbed events, the disturbed message stream and the manifest of
/// what a correct pipeline makes of it.
public struct SimulatedDay: Sendable {
    public let options: SimulationOptions
    public let catalogue: Catalogue
    /// Every event of the day before any disturbance, withheld ones included, in emission order:
    /// per key, sequences 1, 2, 3… in order.
    public let events: [SimulatedEvent]
    /// The stream as published: events (some swapped), duplicates and invalid messages.
    public let messages: [SimulatedMessage]
    public let manifest: SimulationManifest

    /// Simulates the day `options` describe. The same options always give the same result.
    public init(options: SimulationOptions) throws(SimulationOptionsError) {
        try options.validate()
        let catalogue = Catalogue(warehouses: options.warehouses, skus: options.skus)
        var generator = DayGenerator(options: options, catalogue: catalogue)
        let events = generator.run()
        let disturbed = Disturber(options: options, catalogue: catalogue, events: events).run()
        self.options = options
        self.catalogue = catalogue
        self.events = events
        self.messages = disturbed.messages
        self.manifest = disturbed.manifest
    }

    /// The lines of the events file (every message but routing mismatches), in stream order.
    public var lines: [[UInt8]] { messages.filter(\.isLine).map(\.body) }

    /// Writes ``eventsFile()`` to `handle` in chunks of about 1 MiB, without holding the whole
    /// file in memory.
    public func writeEventsFile(to handle: FileHandle) throws {
        var chunk = Data()
        chunk.reserveCapacity(1 << 20 + 4096)
        for message in messages where message.isLine {
            chunk.append(contentsOf: message.body)
            chunk.append(UInt8(ascii: "\n"))
            if chunk.count >= 1 << 20 {
                try handle.write(contentsOf: chunk)
                chunk.removeAll(keepingCapacity: true)
            }
        }
        if !chunk.isEmpty { try handle.write(contentsOf: chunk) }
    }

    /// The events file: one message per line, each line ending in `\n`.
    public func eventsFile() -> Data {
        var data = Data()
        data.reserveCapacity(messages.count * 320)
        for message in messages where message.isLine {
            data.append(contentsOf: message.body)
            data.append(UInt8(ascii: "\n"))
        }
        return data
    }
}
