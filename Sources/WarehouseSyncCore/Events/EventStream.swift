/// The three event streams of the wire contract (DESIGN §2): the first part of every routing key
/// and, through its schema, the `type` property of every message.
public enum EventStream: String, CaseIterable, Sendable, CustomStringConvertible {
    case inventory
    case shipment
    case receipt

    /// The body's `schema` value: `inventory.delta/1`, `shipment.event/1`, `receipt.event/1`.
    public var schema: String {
        switch self {
        case .inventory: "inventory.delta/1"
        case .shipment: "shipment.event/1"
        case .receipt: "receipt.event/1"
        }
    }

    /// The stream whose ``schema`` is `schema`, if any.
    public init?(schema: String) {
        guard let stream = Self.allCases.first(where: { $0.schema == schema }) else { return nil }
        self = stream
    }

    /// The routing key of this stream's events from `warehouse`: `inventory.WH1`.
    public func routingKey(warehouse: String) -> String {
        rawValue + "." + warehouse
    }

    public var description: String { rawValue }
}

/// A routing key of `wms.events`: `<stream>.<warehouse>`, warehouse matching
/// `[A-Za-z0-9_-]{1,64}`.
public struct RoutingKey: Sendable, Hashable, CustomStringConvertible {
    /// The topic exchange the wire contract publishes events to (DESIGN §2).
    public static let contractExchange = "wms.events"

    public let stream: EventStream
    public let warehouse: String

    /// A key from its parts; `nil` when `warehouse` does not match `[A-Za-z0-9_-]{1,64}`.
    public init?(stream: EventStream, warehouse: String) {
        guard Self.isValidWarehouse(warehouse) else { return nil }
        self.stream = stream
        self.warehouse = warehouse
    }

    /// Parses `inventory.WH1`; `nil` for an unknown stream or an invalid warehouse.
    public init?(parsing text: String) {
        guard let dot = text.firstIndex(of: "."),
            let stream = EventStream(rawValue: String(text[..<dot]))
        else { return nil }
        self.init(stream: stream, warehouse: String(text[text.index(after: dot)...]))
    }

    /// Whether `warehouse` matches `[A-Za-z0-9_-]{1,64}`.
    public static func isValidWarehouse(_ warehouse: String) -> Bool {
        let utf8 = warehouse.utf8
        guard (1...64).contains(utf8.count) else { return false }
        return utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
    }

    /// `inventory.WH1`.
    public var description: String { stream.routingKey(warehouse: warehouse) }
}
