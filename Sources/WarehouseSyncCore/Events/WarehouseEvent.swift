/// A decoded, validated event of any stream.
public enum WarehouseEvent: Sendable, Hashable {
    case inventory(InventoryDelta)
    case shipment(ShipmentEvent)
    case receipt(ReceiptEvent)

    public var header: EventHeader {
        switch self {
        case .inventory(let event): event.header
        case .shipment(let event): event.header
        case .receipt(let event): event.header
        }
    }

    public var stream: EventStream { header.stream }

    /// The body's `schema`, the message's `type` property.
    public var schema: String { header.stream.schema }

    public var eventId: String { header.eventId }

    public var sequence: Int64 { header.sequence }

    /// The part of the sequencing key after the warehouse: the SKU, shipment id or receipt id.
    public var keyId: String {
        switch self {
        case .inventory(let event): event.sku
        case .shipment(let event): event.shipmentId
        case .receipt(let event): event.receiptId
        }
    }

    /// `warehouse/sku`, `warehouse/shipmentId` or `warehouse/receiptId`: the key events are
    /// ordered and numbered by, and the `partition-key` header.
    public var sequencingKey: String { header.warehouse + "/" + keyId }

    /// `<stream>.<warehouse>`, e.g. `inventory.WH1`.
    public var routingKey: String { header.routingKey }
}
