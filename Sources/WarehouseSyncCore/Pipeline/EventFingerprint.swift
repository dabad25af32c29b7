/// The SHA-256 of an event's canonical content, as 64 lowercase hex digits: what tells "the same
/// `eventId` with the same payload" (a duplicate, acked) from "the same `eventId` with another
/// payload" (a conflict, dead-lettered).
///
/// The hash covers the *decoded* event, written canonically, not the bytes that arrived, so that
/// a WMS that re-sends an event with its keys in another order, other whitespace, `1.50` for
/// `1.5`, a quantity as a string, another UTC offset for the same instant or its own status code
/// for the canonical one still sends the same event. Canonically means: object keys sorted, no
/// whitespace, quantities as ``Quantity/description``, `occurredAt` as the instant in UTC
/// seconds and nanoseconds, statuses canonical, absent optional fields left out, line order kept.
///
/// Left out on purpose: `correlationId` and `source`. They trace where an event came from and
/// change nothing the ERP books; a WMS may well put a new correlation id on a re-send, which must
/// stay a duplicate. The WMS's own status code is left out too (the canonical status is in).
///
/// Stored fingerprints are compared with new ones, so the canonical form is a persisted format:
/// changing it makes every re-sent old event look like a conflict.
public struct EventFingerprint: Sendable, Hashable, CustomStringConvertible {
    /// 64 lowercase hex digits.
    public let hex: String

    /// The fingerprint of `event`.
    public init(of event: WarehouseEvent) {
        hex = ContentDigest.sha256Hex(Self.canonicalContent(of: event).serializedBytes())
    }

    /// A fingerprint read back from the store; `nil` unless `hex` is 64 lowercase hex digits.
    public init?(hex: String) {
        let isLowercaseHex = { (byte: UInt8) in
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
        }
        guard hex.utf8.count == 64, hex.utf8.allSatisfy(isLowercaseHex) else { return nil }
        self.hex = hex
    }

    public var description: String { hex }

    /// The canonical content that is hashed, keys in sorted order (see the type's documentation).
    static func canonicalContent(of event: WarehouseEvent) -> JSONValue {
        let header = event.header
        var fields: [(String, JSONValue)] = [
            ("schema", .string(header.schema)),
            ("eventId", .string(header.eventId)),
            ("occurredAt", .string("\(header.occurredAt.secondsSince1970).\(nanoseconds(header.occurredAt))")),
            ("warehouse", .string(header.warehouse)),
            ("sequence", .number(header.sequence)),
        ]
        switch event {
        case .inventory(let delta):
            fields += [
                ("sku", .string(delta.sku)), ("quantity", delta.quantity.jsonValue), ("uom", .string(delta.uom)),
                ("status", .string(delta.status.rawValue)), ("reason", .string(delta.reason.rawValue)),
            ]
            fields += optionalMember("location", delta.location) + optionalMember("lot", delta.lot)
        case .shipment(let shipment):
            fields += [
                ("shipmentId", .string(shipment.shipmentId)), ("orderRef", .string(shipment.orderRef)),
                ("status", .string(shipment.status.rawValue)),
                ("lines", .array(shipment.lines.map { line in
                    sortedObject(
                        [("sku", .string(line.sku)), ("quantity", line.quantity.jsonValue), ("uom", .string(line.uom))]
                            + optionalMember("lot", line.lot)
                    )
                })),
            ]
            fields += optionalMember("carrier", shipment.carrier)
            fields += optionalMember("trackingNumber", shipment.trackingNumber)
        case .receipt(let receipt):
            fields += [
                ("receiptId", .string(receipt.receiptId)), ("purchaseOrderRef", .string(receipt.purchaseOrderRef)),
                ("supplier", .string(receipt.supplier)), ("status", .string(receipt.status.rawValue)),
                ("lines", .array(receipt.lines.map { line in
                    sortedObject(
                        [
                            ("sku", .string(line.sku)), ("quantityExpected", line.quantityExpected.jsonValue),
                            ("quantityReceived", line.quantityReceived.jsonValue), ("uom", .string(line.uom)),
                        ] + optionalMember("lot", line.lot)
                    )
                })),
            ]
        }
        return sortedObject(fields)
    }

    /// Members sorted by the UTF-8 bytes of their keys, the order JSON canonicalization (RFC 8785)
    /// would give for these ASCII keys.
    private static func sortedObject(_ members: [(String, JSONValue)]) -> JSONValue {
        .object(JSONObject(uniqueKeysWithValues: members.sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }))
    }

    /// Nine digits, so that `.5` and `.50` seconds are one instant.
    private static func nanoseconds(_ timestamp: Timestamp) -> String {
        let digits = String(timestamp.nanosecond)
        return String(repeating: "0", count: 9 - digits.count) + digits
    }
}
