/// `shipment.event/1`: a shipment changed status. Key `warehouse/shipmentId`.
public struct ShipmentEvent: Sendable, Hashable {
    public var header: EventHeader
    public var shipmentId: String
    public var orderRef: String
    /// The canonical status.
    public var status: ShipmentStatus
    /// The status code as the WMS sent it.
    public var wmsStatus: String
    /// Non-empty when `status` is `shipped`; may be empty otherwise.
    public var lines: [ShipmentLine]
    public var carrier: String?
    public var trackingNumber: String?

    public init(
        header: EventHeader, shipmentId: String, orderRef: String, status: ShipmentStatus,
        wmsStatus: String? = nil, lines: [ShipmentLine] = [], carrier: String? = nil, trackingNumber: String? = nil
    ) {
        self.header = header
        self.shipmentId = shipmentId
        self.orderRef = orderRef
        self.status = status
        self.wmsStatus = wmsStatus ?? status.rawValue
        self.lines = lines
        self.carrier = carrier
        self.trackingNumber = trackingNumber
    }
}

/// One line of a shipment.
public struct ShipmentLine: Sendable, Hashable {
    public var sku: String
    /// Greater than zero.
    public var quantity: Quantity
    public var uom: String
    public var lot: String?

    public init(sku: String, quantity: Quantity, uom: String, lot: String? = nil) {
        self.sku = sku
        self.quantity = quantity
        self.uom = uom
        self.lot = lot
    }
}
