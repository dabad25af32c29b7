import Foundation

/// What a simulated day contains and what a correct pipeline must make of it: written next to
/// the events file (`wms-simulator day --manifest`) and read back by tests and benchmarks.
///
/// Quantities are exact decimal strings in canonical form (`"12.5"`, `"-3"`). Every list is in a
/// fixed order, so the encoding (``encoded()``) is byte-identical for the same options.
public struct SimulationManifest: Sendable, Codable, Equatable {
    /// The manifest layout; bumped when a field changes meaning.
    public var version: Int
    public var options: SimulationOptions
    public var catalogue: Catalogue
    public var counts: Counts
    public var expected: Expected

    public init(version: Int = 1, options: SimulationOptions, catalogue: Catalogue, counts: Counts, expected: Expected) {
        self.version = version
        self.options = options
        self.catalogue = catalogue
        self.counts = counts
        self.expected = expected
    }

    // MARK: Counts

    public struct Counts: Sendable, Codable, Equatable {
        /// Events of the undisturbed day (= `options.events`).
        public var generated: Int
        /// Events held back for the gaps: in no file, only in ``ParkedKey/withheldLine``.
        public var withheld: Int
        /// Verbatim re-emissions.
        public var duplicates: Int
        /// Deliberately invalid messages, of every kind.
        public var invalid: Int
        /// Invalid messages by kind (every kind listed, zeros included).
        public var invalidByKind: [String: Int]
        /// Events moved by out-of-order swaps (two per swap).
        public var displaced: Int
        /// Messages of the whole disturbed stream: events, duplicates and invalid ones.
        public var messages: Int
        /// Lines of the events file: the messages except routing mismatches, which a line cannot
        /// express (`whsync publish` derives the routing key from the body).
        public var lines: Int
        /// Lines of the events file that are valid events (duplicates included): what
        /// `whsync publish` publishes.
        public var publishable: Int
        public var byStream: [String: StreamCounts]
    }

    public struct StreamCounts: Sendable, Codable, Equatable {
        public var generated: Int
        public var withheld: Int
        public var duplicates: Int
        /// Invalid messages routed to this stream (by their routing key's stream, or the body's
        /// when the routing key has none).
        public var invalid: Int
        /// Valid lines of the events file, duplicates included: the work queue's depth after
        /// `whsync publish` of the events file, before any worker runs.
        public var publishable: Int
        /// Events expected to post.
        public var posted: Int
    }

    // MARK: Expected outcome

    public struct Expected: Sendable, Codable, Equatable {
        /// Every eventId the ERP must have posted exactly once, sorted.
        public var postedEventIds: [String]
        /// Documents the ERP must hold, by endpoint: `inventory-movements`, `goods-issues`,
        /// `shipment-status`, `goods-receipts`.
        public var documents: [String: Int]
        /// Deliveries a worker must recognise as duplicates (each duplicate arrives after its
        /// original and everything before it in its key, so the original has posted by then).
        public var duplicates: Int
        /// The eventIds re-emitted, each once, sorted.
        public var duplicateEventIds: [String]
        /// The messages that must be dead-lettered with reason `invalid`, in stream order.
        public var invalid: [InvalidMessage]
        /// Keys that must park on a gap that never fills, sorted by stream and key.
        public var parkedKeys: [ParkedKey]
        /// The ERP's books after every posting.
        public var ledger: Ledger
    }

    /// A deliberately invalid message.
    public struct InvalidMessage: Sendable, Codable, Equatable {
        /// `invalid-0001`…, in stream order.
        public var id: String
        /// One of ``InvalidKind``'s raw values.
        public var kind: String
        /// The eventId the body carries; `nil` when the body is not JSON (malformed-json), as in
        /// the dead-letter listing.
        public var eventId: String?
        /// The stream of the routing key (which is the body's for every kind but routing-mismatch).
        public var stream: String
        /// The routing key to publish it with.
        public var routingKey: String
        /// The field the validation error names first (`body`, `quantity`, `lines[0].quantity`,
        /// `warehouse`, `status`, `routingKey`, or the missing field).
        public var field: String
        /// What `EventDecoder` says about it (with the routing key): the `whsync-error` a worker
        /// writes.
        public var error: String
        /// The body, exactly.
        public var line: String
        /// The 1-based line of the events file, or `nil` for a routing mismatch (not in the file).
        public var lineNumber: Int?
        /// The 0-based position in the whole message stream.
        public var position: Int
    }

    /// A key whose one event was withheld for good.
    public struct ParkedKey: Sendable, Codable, Equatable {
        public var stream: String
        /// The sequencing key, `warehouse/id`.
        public var key: String
        public var routingKey: String
        /// The sequence that never arrives.
        public var missingSequence: Int64
        public var withheldEventId: String
        /// The withheld event, for a test that fills the gap late.
        public var withheldLine: String
        /// The key's later events, sorted by sequence: held, never posted while the gap is open.
        public var heldEventIds: [String]
    }

    /// The ERP's books, by the reference ERP's posting rules: an inventory movement changes its
    /// own status by its signed quantity; a goods issue (shipment `shipped`) takes each line out
    /// of `available`; the first goods receipt of a receipt id puts each line's
    /// `quantityReceived` into `available`; shipment statuses move nothing.
    public struct Ledger: Sendable, Codable, Equatable {
        /// Per warehouse, SKU and canonical status, every row a posting moved (zeros included),
        /// sorted: what `GET /balances` must answer.
        public var balances: [Balance]
        /// The same from inventory deltas alone.
        public var inventoryMovements: [Balance]
        /// Posted goods issues per warehouse and SKU, sorted.
        public var shipped: [Total]
        /// Posted goods receipts (quantity received, first receipt of each id) per warehouse and SKU, sorted.
        public var received: [Total]
    }

    public struct Balance: Sendable, Codable, Equatable {
        public var warehouse: String
        public var sku: String
        public var status: String
        public var quantity: String
        public var uom: String
    }

    public struct Total: Sendable, Codable, Equatable {
        public var warehouse: String
        public var sku: String
        public var quantity: String
        public var uom: String
    }

    // MARK: Coding

    /// Pretty-printed JSON with sorted keys and a final newline.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(UInt8(ascii: "\n"))
        return data
    }

    public static func decode(_ data: Data) throws -> SimulationManifest {
        try JSONDecoder().decode(SimulationManifest.self, from: data)
    }
}

/// The kinds of deliberately invalid messages.
public enum InvalidKind: String, CaseIterable, Sendable, Codable {
    /// Not JSON at all (a truncated object, a trailing comma, single quotes, a bare key). Field `body`.
    case malformedJSON = "malformed-json"
    /// A required field left out. Field: that field.
    case missingField = "missing-field"
    /// An inventory quantity of 0 (`quantity`) or a shipped line of 0 (`lines[0].quantity`).
    case zeroQuantity = "zero-quantity"
    /// A warehouse outside `[A-Za-z0-9_-]{1,64}` (`WH1/DOCK`, `WH 2`). Field `warehouse`.
    case badWarehouse = "bad-warehouse"
    /// A status code neither canonical nor in the default mapping. Field `status`.
    case unknownStatus = "unknown-status"
    /// A valid body published under another warehouse's or stream's routing key. Field `routingKey`.
    /// A line cannot express it, so it is only in the manifest and ``SimulatedDay/messages``.
    case routingMismatch = "routing-mismatch"
}
