/// `inventory.delta/1`: stock of a SKU in a status changed by a signed quantity. Key
/// `warehouse/sku`.
public struct InventoryDelta: Sendable, Hashable {
    public var header: EventHeader
    public var sku: String
    /// Non-zero: positive into the status, negative out of it.
    public var quantity: Quantity
    public var uom: String
    /// The canonical status.
    public var status: InventoryStatus
    /// The status code as the WMS sent it (equal to `status.rawValue` when it sent the canonical
    /// name).
    public var wmsStatus: String
    public var reason: InventoryReason
    public var location: String?
    public var lot: String?

    public init(
        header: EventHeader, sku: String, quantity: Quantity, uom: String, status: InventoryStatus,
        wmsStatus: String? = nil, reason: InventoryReason, location: String? = nil, lot: String? = nil
    ) {
        self.header = header
        self.sku = sku
        self.quantity = quantity
        self.uom = uom
        self.status = status
        self.wmsStatus = wmsStatus ?? status.rawValue
        self.reason = reason
        self.location = location
        self.lot = lot
    }
}
