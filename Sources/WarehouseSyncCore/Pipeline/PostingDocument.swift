/// The ERP endpoints of the generic adapter (DESIGN §3), relative to `ERP_BASE_URL`.
public enum ERPEndpoint: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    case inventoryMovements = "/inventory-movements"
    /// Shipment events with status `shipped`: the stock leaves.
    case goodsIssues = "/goods-issues"
    /// Shipment events with any other status: no stock moves.
    case shipmentStatus = "/shipment-status"
    case goodsReceipts = "/goods-receipts"

    /// The path, e.g. `/goods-issues`.
    public var path: String { rawValue }

    public var description: String { rawValue }
}

/// What to POST to the ERP for one event: the endpoint, the headers' values and the canonical
/// JSON body. The adapter adds `Content-Type: application/json`, `Idempotency-Key`,
/// `X-Correlation-ID` (when there is one) and the bearer token.
///
/// The body is the event in the ERP's vocabulary, the same whatever the WMS wrote: canonical
/// statuses (never the WMS's own codes), quantities as exact decimal JSON numbers in their
/// canonical form (`12.5`, never through `Double`), `occurredAt` as the WMS wrote it, and no
/// member for an absent optional field. Every body carries `eventId`, `sequence`, `warehouse`,
/// the key's own id field, `occurredAt` and, when the event had one, `correlationId`.
public struct PostingDocument: Sendable, Equatable {
    public let endpoint: ERPEndpoint
    /// The `Idempotency-Key` header: the `eventId`, so a repeated post is answered 409.
    public let idempotencyKey: String
    /// The `X-Correlation-ID` header, when the event has a correlation id.
    public let correlationId: String?
    public let body: JSONValue

    /// The document for `event`.
    public init(event: WarehouseEvent) {
        let header = event.header
        idempotencyKey = header.eventId
        correlationId = header.correlationId
        var fields: [(String, JSONValue)] = [
            ("eventId", .string(header.eventId)),
            ("sequence", .number(header.sequence)),
            ("warehouse", .string(header.warehouse)),
            ("occurredAt", .string(header.occurredAt.text)),
        ]
        fields += optionalMember("correlationId", header.correlationId)
        switch event {
        case .inventory(let delta):
            endpoint = .inventoryMovements
            fields += [
                ("sku", .string(delta.sku)), ("quantity", delta.quantity.jsonValue), ("uom", .string(delta.uom)),
                ("status", .string(delta.status.rawValue)), ("reason", .string(delta.reason.rawValue)),
            ]
            fields += optionalMember("location", delta.location) + optionalMember("lot", delta.lot)
        case .shipment(let shipment):
            endpoint = shipment.status == .shipped ? .goodsIssues : .shipmentStatus
            fields += [
                ("shipmentId", .string(shipment.shipmentId)), ("orderRef", .string(shipment.orderRef)),
                ("status", .string(shipment.status.rawValue)),
            ]
            fields += optionalMember("carrier", shipment.carrier)
            fields += optionalMember("trackingNumber", shipment.trackingNumber)
            fields.append(("lines", .array(shipment.lines.map { line in
                .object(JSONObject(uniqueKeysWithValues: [
                    ("sku", .string(line.sku)), ("quantity", line.quantity.jsonValue), ("uom", .string(line.uom)),
                ] + optionalMember("lot", line.lot)))
            })))
        case .receipt(let receipt):
            endpoint = .goodsReceipts
            fields += [
                ("receiptId", .string(receipt.receiptId)), ("purchaseOrderRef", .string(receipt.purchaseOrderRef)),
                ("supplier", .string(receipt.supplier)), ("status", .string(receipt.status.rawValue)),
                ("hasDiscrepancy", .bool(receipt.lines.contains(where: \.isDiscrepancy))),
            ]
            fields.append(("lines", .array(receipt.lines.map { line in
                // Both quantities are ≥ 0 and in range, so their difference is in range too.
                .object(JSONObject(uniqueKeysWithValues: [
                    ("sku", .string(line.sku)), ("quantityExpected", line.quantityExpected.jsonValue),
                    ("quantityReceived", line.quantityReceived.jsonValue), ("uom", .string(line.uom)),
                ] + optionalMember("lot", line.lot) + [
                    ("discrepancy", .bool(line.isDiscrepancy)),
                    ("discrepancyQuantity", (line.quantityReceived - line.quantityExpected).jsonValue),
                ]))
            })))
        }
        body = .object(JSONObject(uniqueKeysWithValues: fields))
    }
}

/// The member `key: value` when `value` is present, none when it is absent: optional event fields
/// are left out rather than written as `null`.
func optionalMember(_ key: String, _ value: String?) -> [(String, JSONValue)] {
    value.map { [(key, .string($0))] } ?? []
}
