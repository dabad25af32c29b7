import WarehouseSyncCore

extension SimulatedDay {
    /// The WMS's snapshot at the end of the day, for `whsync reconcile` (docs/reconciliation.md,
    /// "The snapshot"): JSON lines of every balance of the expected ledger (with its `uom`, and for
    /// each SKU the last sequence the ERP must have posted as `sequence`), the last status of each
    /// shipment, and each receipt's. Built from the events the ERP must post (a parked key's held
    /// events are not counted), so a day the workers posted in full agrees with it exactly.
    public func snapshot() -> [UInt8] {
        let posted = Set(manifest.expected.postedEventIds)
        var lastSequence: [String: Int64] = [:]
        var documents: [String: (kind: String, idField: String, warehouse: String, id: String, status: String, sequence: Int64)] = [:]
        for event in events where posted.contains(event.eventId) {
            switch event.effect {
            case .inventory:
                lastSequence[event.sequencingKey] = max(lastSequence[event.sequencingKey] ?? 0, event.sequence)
            case .shipment(let status, _):
                record(&documents, event, kind: "shipment", idField: "shipmentId", status: status.rawValue)
            case .receipt(let status, _):
                record(&documents, event, kind: "receipt", idField: "receiptId", status: status.rawValue)
            }
        }
        var lines: [JSONValue] = manifest.expected.ledger.balances.map { balance in
            var members: [(String, JSONValue)] = [
                ("warehouse", .string(balance.warehouse)), ("sku", .string(balance.sku)), ("status", .string(balance.status)),
                ("quantity", .string(balance.quantity)), ("uom", .string(balance.uom)),
            ]
            if let sequence = lastSequence[balance.warehouse + "/" + balance.sku] {
                members.append(("sequence", .number(String(sequence))))
            }
            return .object(JSONObject(uniqueKeysWithValues: members))
        }
        lines += documents.values.sorted { ($0.kind, $0.warehouse, $0.id) < ($1.kind, $1.warehouse, $1.id) }.map { document in
            .object(JSONObject(uniqueKeysWithValues: [
                ("kind", .string(document.kind)), ("warehouse", .string(document.warehouse)),
                (document.idField, .string(document.id)), ("status", .string(document.status)),
            ]))
        }
        var bytes: [UInt8] = []
        for line in lines {
            bytes += line.serializedBytes()
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }

    private func record(
        _ documents: inout [String: (kind: String, idField: String, warehouse: String, id: String, status: String, sequence: Int64)],
        _ event: SimulatedEvent, kind: String, idField: String, status: String
    ) {
        let key = kind + " " + event.sequencingKey
        if let known = documents[key], known.sequence > event.sequence { return }
        documents[key] = (kind, idField, event.warehouse, event.keyId, status, event.sequence)
    }
}
