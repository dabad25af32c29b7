extension WarehouseEvent {
    /// The event as its wire body (DESIGN §2): the contract's fields in the contract's order,
    /// quantities as exact JSON numbers, `occurredAt` as it was given, the status code as the WMS
    /// sent it, absent optional fields left out. ``EventDecoder`` reads it back as an equal event
    /// (with the same status mapping), which is what lets an adapter build typed events and publish
    /// them without writing JSON itself.
    public var jsonValue: JSONValue {
        let header = header
        var members: [(String, JSONValue)] = [
            ("schema", .string(header.schema)),
            ("eventId", .string(header.eventId)),
            ("occurredAt", .string(header.occurredAt.text)),
            ("warehouse", .string(header.warehouse)),
            ("sequence", .number(String(header.sequence))),
        ]
        members += Self.optional("correlationId", header.correlationId) + Self.optional("source", header.source)
        switch self {
        case .inventory(let delta):
            members += [
                ("sku", .string(delta.sku)), ("quantity", delta.quantity.jsonValue), ("uom", .string(delta.uom)),
                ("status", .string(delta.wmsStatus)), ("reason", .string(delta.reason.rawValue)),
            ]
            members += Self.optional("location", delta.location) + Self.optional("lot", delta.lot)
        case .shipment(let shipment):
            members += [
                ("shipmentId", .string(shipment.shipmentId)), ("orderRef", .string(shipment.orderRef)),
                ("status", .string(shipment.wmsStatus)),
            ]
            if !shipment.lines.isEmpty {
                members.append(("lines", .array(shipment.lines.map { line in
                    .object(JSONObject(uniqueKeysWithValues: [
                        ("sku", .string(line.sku)), ("quantity", line.quantity.jsonValue), ("uom", .string(line.uom)),
                    ] + Self.optional("lot", line.lot)))
                })))
            }
            members += Self.optional("carrier", shipment.carrier) + Self.optional("trackingNumber", shipment.trackingNumber)
        case .receipt(let receipt):
            members += [
                ("receiptId", .string(receipt.receiptId)), ("purchaseOrderRef", .string(receipt.purchaseOrderRef)),
                ("supplier", .string(receipt.supplier)), ("status", .string(receipt.wmsStatus)),
                ("lines", .array(receipt.lines.map { line in
                    .object(JSONObject(uniqueKeysWithValues: [
                        ("sku", .string(line.sku)), ("quantityExpected", line.quantityExpected.jsonValue),
                        ("quantityReceived", line.quantityReceived.jsonValue), ("uom", .string(line.uom)),
                    ] + Self.optional("lot", line.lot)))
                })),
            ]
        }
        return .object(JSONObject(uniqueKeysWithValues: members))
    }

    /// ``jsonValue`` as compact UTF-8: the body to publish.
    public var jsonBody: [UInt8] { jsonValue.serializedBytes() }

    private static func optional(_ name: String, _ value: String?) -> [(String, JSONValue)] {
        value.map { [(name, .string($0))] } ?? []
    }
}
