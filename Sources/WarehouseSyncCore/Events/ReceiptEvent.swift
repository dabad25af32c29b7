/// `receipt.event/1`: goods received against a purchase order. Key `warehouse/receiptId`.
public struct ReceiptEvent: Sendable, Hashable {
    public var header: EventHeader
    public var receiptId: String
    public var purchaseOrderRef: String
    public var supplier: String
    /// The canonical status.
    public var status: ReceiptStatus
    /// The status code as the WMS sent it.
    public var wmsStatus: String
    /// Never empty.
    public var lines: [ReceiptLine]

    public init(
        header: EventHeader, receiptId: String, purchaseOrderRef: String, supplier: String,
        status: ReceiptStatus, wmsStatus: String? = nil, lines: [ReceiptLine]
    ) {
        self.header = header
        self.receiptId = receiptId
        self.purchaseOrderRef = purchaseOrderRef
        self.supplier = supplier
        self.status = status
        self.wmsStatus = wmsStatus ?? status.rawValue
        self.lines = lines
    }
}

/// One line of a receipt. A line whose received quantity differs from the expected one is a
/// discrepancy (``isDiscrepancy``), which the receipt worker flags.
public struct ReceiptLine: Sendable, Hashable {
    public var sku: String
    /// ≥ 0.
    public var quantityExpected: Quantity
    /// ≥ 0.
    public var quantityReceived: Quantity
    public var uom: String
    public var lot: String?

    public init(sku: String, quantityExpected: Quantity, quantityReceived: Quantity, uom: String, lot: String? = nil) {
        self.sku = sku
        self.quantityExpected = quantityExpected
        self.quantityReceived = quantityReceived
        self.uom = uom
        self.lot = lot
    }

    /// Received differs from expected.
    public var isDiscrepancy: Bool { quantityReceived != quantityExpected }
}
