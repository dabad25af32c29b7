import WarehouseSyncCore

/// One posting request, checked: the canonical posting document (DESIGN §2 and §3) of one of the
/// four endpoints.
///
/// Members the ERP does not use (`occurredAt`'s value, `source`, `location`, `carrier`, the
/// adapter's own `hasDiscrepancy`, `discrepancy` and `discrepancyQuantity`) are kept in ``body``
/// but otherwise ignored, so a newer adapter can add members without breaking the ERP.
struct Posting: Sendable {
    let type: DocumentType
    let eventId: String
    let sequence: Int64
    let warehouse: String
    /// The key's own id: the SKU of an inventory movement, the shipment or receipt id.
    let subject: String
    let status: String
    /// The reason of an inventory movement.
    let reason: String?
    let correlationId: String?
    let lines: [PostingLine]
    /// The document as posted.
    let body: JSONValue

    /// The sequencing key (DESIGN §2): `warehouse/sku`, `warehouse/shipmentId` or `warehouse/receiptId`.
    var key: String { "\(warehouse)/\(subject)" }

    var hasDiscrepancy: Bool { lines.contains { $0.discrepancy.map { !$0.isZero } ?? false } }
}

struct PostingLine: Sendable, Equatable {
    let sku: String
    let uom: String
    let lot: String?
    /// Inventory movements (signed) and shipments (> 0).
    let quantity: Quantity?
    /// Receipts.
    let quantityExpected: Quantity?
    let quantityReceived: Quantity?

    /// `quantityReceived - quantityExpected` for a receipt line, `nil` otherwise. Both are ≥ 0
    /// and in range, so the difference is in range too.
    var discrepancy: Quantity? {
        guard let quantityExpected, let quantityReceived else { return nil }
        return quantityReceived - quantityExpected
    }
}

extension Posting {
    /// The longest `eventId` DESIGN §2 allows.
    static let maxEventIdLength = 128

    /// Parses and checks `bytes` as a document of `type`: 400 for what is not well-formed, 422
    /// for values outside the canonical vocabulary. Master data is checked by ``check(against:)``.
    init(type: DocumentType, bytes: some Collection<UInt8>) throws(ERPRejection) {
        let body: JSONValue
        do {
            body = try JSONValue(parsing: bytes)
        } catch {
            throw .malformed("the body is not valid JSON: \(error)")
        }
        try self.init(type: type, body: body)
    }

    /// ``init(type:bytes:)`` of a body already parsed (an item of a batch request).
    init(type: DocumentType, body: JSONValue) throws(ERPRejection) {
        guard let object = body.objectValue else {
            throw .malformed("the body must be a JSON object, found \(body.typeName)")
        }
        let fields = FieldReader(object: object, path: "")

        let eventId = try fields.string("eventId")
        guard eventId.count <= Self.maxEventIdLength else {
            throw .malformed("must be at most \(Self.maxEventIdLength) characters", field: "eventId")
        }
        let sequence = try fields.sequence("sequence")
        let warehouse = try fields.string("warehouse")
        if let occurredAt = try fields.optionalString("occurredAt"), Timestamp(parsing: occurredAt) == nil {
            throw .malformed("'\(occurredAt)' is not an RFC 3339 timestamp", field: "occurredAt")
        }
        let correlationId = try fields.optionalString("correlationId")

        let subject: String
        let status: String
        var reason: String?
        let lines: [PostingLine]
        switch type {
        case .inventoryMovement:
            subject = try fields.string("sku")
            let quantity = try fields.quantity("quantity")
            guard !quantity.isZero else {
                throw .unprocessable("invalid-quantity", "must not be zero", field: "quantity")
            }
            status = try fields.vocabulary("status", InventoryStatus.self)
            reason = try fields.vocabulary("reason", InventoryReason.self)
            lines = [PostingLine(
                sku: subject, uom: try fields.string("uom"), lot: try fields.optionalString("lot"),
                quantity: quantity, quantityExpected: nil, quantityReceived: nil
            )]
        case .goodsIssue, .shipmentStatus:
            subject = try fields.string("shipmentId")
            _ = try fields.string("orderRef")
            let shipmentStatus = try fields.vocabulary("status", ShipmentStatus.self)
            if type == .goodsIssue, shipmentStatus != ShipmentStatus.shipped.rawValue {
                throw .unprocessable(
                    "wrong-endpoint", "'\(shipmentStatus)' is posted to /shipment-status; goods issues are for 'shipped'",
                    field: "status")
            }
            if type == .shipmentStatus, shipmentStatus == ShipmentStatus.shipped.rawValue {
                throw .unprocessable("wrong-endpoint", "'shipped' is posted to /goods-issues", field: "status")
            }
            status = shipmentStatus
            let lineValues = type == .goodsIssue ? try fields.array("lines") : try fields.optionalArray("lines") ?? []
            if type == .goodsIssue, lineValues.isEmpty {
                throw .unprocessable("invalid-lines", "a goods issue needs at least one line", field: "lines")
            }
            lines = try lineValues.enumerated().map { (index, value) throws(ERPRejection) in
                let line = try FieldReader(element: value, path: "lines[\(index)]")
                let quantity = try line.quantity("quantity")
                guard quantity > .zero else {
                    throw .unprocessable("invalid-quantity", "must be greater than zero", field: line.path("quantity"))
                }
                return PostingLine(
                    sku: try line.string("sku"), uom: try line.string("uom"), lot: try line.optionalString("lot"),
                    quantity: quantity, quantityExpected: nil, quantityReceived: nil
                )
            }
        case .goodsReceipt:
            subject = try fields.string("receiptId")
            _ = try fields.string("purchaseOrderRef")
            _ = try fields.string("supplier")
            status = try fields.vocabulary("status", ReceiptStatus.self)
            let lineValues = try fields.array("lines")
            guard !lineValues.isEmpty else {
                throw .unprocessable("invalid-lines", "a goods receipt needs at least one line", field: "lines")
            }
            lines = try lineValues.enumerated().map { (index, value) throws(ERPRejection) in
                let line = try FieldReader(element: value, path: "lines[\(index)]")
                let expected = try line.quantity("quantityExpected")
                let received = try line.quantity("quantityReceived")
                for (name, quantity) in [("quantityExpected", expected), ("quantityReceived", received)] where quantity < .zero {
                    throw .unprocessable("invalid-quantity", "must not be negative", field: line.path(name))
                }
                return PostingLine(
                    sku: try line.string("sku"), uom: try line.string("uom"), lot: try line.optionalString("lot"),
                    quantity: nil, quantityExpected: expected, quantityReceived: received
                )
            }
        }
        self.init(
            type: type, eventId: eventId, sequence: sequence, warehouse: warehouse, subject: subject,
            status: status, reason: reason, correlationId: correlationId, lines: lines, body: body
        )
    }

    /// 422 when the warehouse or a SKU is unknown, or a line's unit of measure is not the SKU's.
    func check(against masterData: MasterData) throws(ERPRejection) {
        guard masterData.warehouses[warehouse] != nil else {
            throw .unprocessable("unknown-warehouse", "unknown warehouse '\(warehouse)'", field: "warehouse")
        }
        for (index, line) in lines.enumerated() {
            let prefix = type == .inventoryMovement ? "" : "lines[\(index)]."
            guard let sku = masterData.skus[line.sku] else {
                throw .unprocessable("unknown-sku", "unknown SKU '\(line.sku)'", field: prefix + "sku")
            }
            guard sku.uom == line.uom else {
                throw .unprocessable(
                    "uom-mismatch", "unit of measure '\(line.uom)' does not match SKU '\(sku.sku)', which is kept in '\(sku.uom)'",
                    field: prefix + "uom")
            }
        }
    }
}

/// Reads the members of one JSON object, naming the member's path in every rejection.
struct FieldReader {
    let object: JSONObject
    let prefix: String

    init(object: JSONObject, path: String) {
        self.object = object
        self.prefix = path.isEmpty ? "" : path + "."
    }

    /// An array element that must be an object.
    init(element: JSONValue, path: String) throws(ERPRejection) {
        guard let object = element.objectValue else {
            throw .malformed("must be an object, found \(element.typeName)", field: path)
        }
        self.init(object: object, path: path)
    }

    func path(_ key: String) -> String { prefix + key }

    private func required(_ key: String) throws(ERPRejection) -> JSONValue {
        guard let value = object[key], !value.isNull else { throw .malformed("is required", field: path(key)) }
        return value
    }

    /// A required non-empty string.
    func string(_ key: String) throws(ERPRejection) -> String {
        let value = try required(key)
        guard let text = value.stringValue else { throw .malformed("must be a string, found \(value.typeName)", field: path(key)) }
        guard !text.isEmpty else { throw .malformed("must not be empty", field: path(key)) }
        return text
    }

    /// A string, or `nil` when the member is missing or `null`.
    func optionalString(_ key: String) throws(ERPRejection) -> String? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let text = value.stringValue else { throw .malformed("must be a string, found \(value.typeName)", field: path(key)) }
        return text
    }

    /// An exact decimal written as a JSON number, at most 6 fraction digits.
    func quantity(_ key: String) throws(ERPRejection) -> Quantity {
        let value = try required(key)
        guard let literal = value.numberLiteral else {
            throw .malformed("must be a JSON number, found \(value.typeName)", field: path(key))
        }
        do throws(QuantityParseError) {
            return try Quantity.parse(literal)
        } catch {
            throw .malformed("\(literal) \(error.code)", field: path(key))
        }
    }

    /// An integer ≥ 1 written as a JSON number without fraction or exponent.
    func sequence(_ key: String) throws(ERPRejection) -> Int64 {
        let value = try required(key)
        guard let literal = value.numberLiteral, let sequence = Int64(literal), sequence >= 1 else {
            throw .malformed("must be an integer ≥ 1, found \(value)", field: path(key))
        }
        return sequence
    }

    /// A required string from a fixed vocabulary; 422 for a string outside it.
    func vocabulary<Value: RawRepresentable & CaseIterable>(_ key: String, _: Value.Type) throws(ERPRejection) -> String
    where Value.RawValue == String {
        let text = try string(key)
        guard Value(rawValue: text) != nil else {
            let names = Value.allCases.map(\.rawValue).joined(separator: ", ")
            throw .unprocessable("invalid-\(key)", "'\(text)' is not one of \(names)", field: path(key))
        }
        return text
    }

    /// A required array.
    func array(_ key: String) throws(ERPRejection) -> [JSONValue] {
        let value = try required(key)
        guard let elements = value.arrayValue else { throw .malformed("must be an array, found \(value.typeName)", field: path(key)) }
        return elements
    }

    /// An array, or `nil` when the member is missing or `null`.
    func optionalArray(_ key: String) throws(ERPRejection) -> [JSONValue]? {
        guard let value = object[key], !value.isNull else { return nil }
        return try array(key)
    }
}
