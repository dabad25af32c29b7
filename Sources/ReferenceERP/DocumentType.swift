/// The four kinds of posting the ERP takes (DESIGN §3), one endpoint each.
public enum DocumentType: String, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    case inventoryMovement = "inventory-movement"
    /// A shipment with status `shipped`: its lines leave available stock.
    case goodsIssue = "goods-issue"
    /// A shipment with any other status: recorded, no stock moves.
    case shipmentStatus = "shipment-status"
    /// A receipt: `quantityReceived` enters available stock, discrepancies are recorded.
    case goodsReceipt = "goods-receipt"

    /// The endpoint, e.g. `/goods-issues`.
    public var path: String {
        switch self {
        case .inventoryMovement: "/inventory-movements"
        case .goodsIssue: "/goods-issues"
        case .shipmentStatus: "/shipment-status"
        case .goodsReceipt: "/goods-receipts"
        }
    }

    /// The prefix of this type's document ids: `GI-00000042`.
    var documentPrefix: String {
        switch self {
        case .inventoryMovement: "IM"
        case .goodsIssue: "GI"
        case .shipmentStatus: "SS"
        case .goodsReceipt: "GR"
        }
    }

    /// The type named `name`: the type (`goods-issue`) or its endpoint without the slash
    /// (`goods-issues`).
    public init?(name: String) {
        if let type = DocumentType(rawValue: name) {
            self = type
        } else if let type = DocumentType.allCases.first(where: { $0.path.dropFirst() == name }) {
            self = type
        } else {
            return nil
        }
    }

    public var description: String { rawValue }
}
