/// Decodes and validates event bodies against the wire contract (DESIGN §2), collecting every
/// violation rather than stopping at the first.
///
/// Unknown fields are ignored (forward compatibility); a `null` optional field counts as absent.
/// Required strings must be non-empty and no string may hold a control character (but a tab in
/// free text). Lengths are
/// counted in UTF-8 bytes (what a store index and a header hold): ids, SKUs, units and other
/// strings at most 256, `eventId` and `correlationId` at most 128 and `occurredAt` at most 64.
/// `eventId` and `correlationId` travel as HTTP and AMQP headers, so they are visible ASCII
/// (`!` to `~`) only. The ids a key or a dedup record is made of (`sku`, `shipmentId`,
/// `receiptId`) must be in Unicode NFC, so that one id cannot arrive as two byte strings. A
/// `sequence` is at most 2^53 − 1, the largest integer every JSON reader keeps exactly.
/// Quantities are JSON numbers or decimal strings, exact, with at most 6 fraction digits. Status
/// codes go through the ``StatusMapping``.
public struct EventDecoder: Sendable {
    /// The largest body accepted: 256 KiB.
    public static let maxBodyBytes = 262_144
    /// The longest `eventId` and `correlationId`, in bytes (visible ASCII: one byte a character).
    public static let maxEventIdLength = 128
    /// The longest other string field, in UTF-8 bytes.
    public static let maxStringLength = 256
    /// The longest `occurredAt`, in bytes.
    public static let maxTimestampLength = 64
    /// The largest `sequence`: 2^53 − 1.
    public static let maxSequence: Int64 = 9_007_199_254_740_991

    public let statusMapping: StatusMapping

    public init(statusMapping: StatusMapping = .default) {
        self.statusMapping = statusMapping
    }

    /// Decodes one event body. When `routingKey` is given it must equal `<stream>.<warehouse>`
    /// of the body.
    public func decode(_ body: some Collection<UInt8>, routingKey: String? = nil) throws(EventValidationError)
        -> WarehouseEvent
    {
        let size = body.count
        guard size <= Self.maxBodyBytes else {
            throw EventValidationError(violations: [
                .init(field: "body", rule: "must be at most \(Self.maxBodyBytes) bytes (was \(size))")
            ])
        }
        let value: JSONValue
        do throws(JSONParseError) {
            value = try JSONValue(parsing: body)
        } catch {
            throw EventValidationError(violations: [.init(field: "body", rule: "must be valid JSON: \(error)")])
        }
        guard case .object(let object) = value else {
            throw EventValidationError(violations: [.init(field: "body", rule: "must be a JSON object")])
        }
        return try decode(object, routingKey: routingKey)
    }

    /// Decodes an already parsed body.
    public func decode(_ object: JSONObject, routingKey: String? = nil) throws(EventValidationError) -> WarehouseEvent {
        var reader = FieldReader(mapping: statusMapping)
        let header = reader.header(object)
        var event: WarehouseEvent?
        if let stream = header.stream {
            switch stream {
            case .inventory: event = reader.inventory(object, header: header.value).map(WarehouseEvent.inventory)
            case .shipment: event = reader.shipment(object, header: header.value).map(WarehouseEvent.shipment)
            case .receipt: event = reader.receipt(object, header: header.value).map(WarehouseEvent.receipt)
            }
        }
        if let routingKey {
            reader.checkRoutingKey(routingKey, stream: header.stream, warehouse: header.warehouse)
        }
        guard reader.violations.isEmpty, let event else {
            if reader.violations.isEmpty {
                // Unreachable: every nil above records a violation.
                reader.fail("body", "could not be decoded")
            }
            throw EventValidationError(violations: reader.violations)
        }
        return event
    }
}

/// Reads fields and records violations. Every accessor that returns `nil` for a present or
/// required field has recorded why.
private struct FieldReader {
    let mapping: StatusMapping
    var violations: [EventValidationError.Violation] = []

    init(mapping: StatusMapping) {
        self.mapping = mapping
    }

    mutating func fail(_ field: String, _ rule: String) {
        violations.append(.init(field: field, rule: rule))
    }

    // MARK: Header

    struct HeaderResult {
        var stream: EventStream?
        var warehouse: String?
        /// Set when every header field is valid.
        var value: EventHeader?
    }

    mutating func header(_ object: JSONObject) -> HeaderResult {
        var stream: EventStream?
        if let schema = string(object, "schema") {
            stream = EventStream(schema: schema)
            if stream == nil {
                fail("schema", "must be one of " + EventStream.allCases.map(\.schema).joined(separator: ", "))
            }
        }
        let eventId = string(object, "eventId", maxLength: EventDecoder.maxEventIdLength, kind: .headerSafe)
        var occurredAt: Timestamp?
        if let text = string(object, "occurredAt", maxLength: EventDecoder.maxTimestampLength) {
            do throws(TimestampParseError) {
                occurredAt = try Timestamp.parse(text)
            } catch {
                fail("occurredAt", "must be an RFC 3339 timestamp (\(error.detail))")
            }
        }
        var warehouse = string(object, "warehouse", maxLength: 64)
        if let value = warehouse, !RoutingKey.isValidWarehouse(value) {
            fail("warehouse", "must match [A-Za-z0-9_-]{1,64}")
            warehouse = nil
        }
        let sequence = sequence(object)
        let correlationId = string(object, "correlationId", required: false, maxLength: EventDecoder.maxEventIdLength, kind: .headerSafe)
        let source = string(object, "source", required: false)

        var result = HeaderResult(stream: stream, warehouse: warehouse)
        if let stream, let eventId, let occurredAt, let warehouse, let sequence {
            result.value = EventHeader(
                stream: stream, eventId: eventId, occurredAt: occurredAt, warehouse: warehouse,
                sequence: sequence, correlationId: correlationId, source: source
            )
        }
        return result
    }

    mutating func sequence(_ object: JSONObject) -> Int64? {
        let rule = "must be an integer ≥ 1"
        switch object["sequence"] {
        case nil, .null:
            fail("sequence", "is required")
        case .number(let literal):
            guard literal.utf8.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }) else {
                fail("sequence", rule)
                return nil
            }
            guard let value = Int64(literal), value <= EventDecoder.maxSequence else {
                fail("sequence", "must be an integer from 1 to \(EventDecoder.maxSequence)")
                return nil
            }
            guard value >= 1 else {
                fail("sequence", rule)
                return nil
            }
            return value
        default:
            fail("sequence", rule)
        }
        return nil
    }

    mutating func checkRoutingKey(_ routingKey: String, stream: EventStream?, warehouse: String?) {
        guard let parsed = RoutingKey(parsing: routingKey) else {
            fail(
                "routingKey",
                "must be <stream>.<warehouse> with stream inventory, shipment or receipt and warehouse matching [A-Za-z0-9_-]{1,64}"
            )
            return
        }
        guard let stream, let warehouse else { return }  // the body's own violations say enough
        if parsed.stream != stream || parsed.warehouse != warehouse {
            fail("routingKey", "must equal '\(stream.routingKey(warehouse: warehouse))', from the body's schema and warehouse")
        }
    }

    // MARK: Streams

    mutating func inventory(_ object: JSONObject, header: EventHeader?) -> InventoryDelta? {
        let sku = string(object, "sku", kind: .identifier)
        var quantity = quantity(object, "quantity")
        if let value = quantity, value.isZero {
            fail("quantity", "must not be zero")
            quantity = nil
        }
        let uom = string(object, "uom")
        let status: (InventoryStatus, String)? = status(object)
        var reason: InventoryReason?
        if let text = string(object, "reason") {
            reason = InventoryReason(rawValue: text)
            if reason == nil {
                fail("reason", "must be one of " + InventoryReason.allCases.map(\.rawValue).joined(separator: ", "))
            }
        }
        let location = string(object, "location", required: false)
        let lot = string(object, "lot", required: false)
        guard let header, let sku, let quantity, let uom, let status, let reason else { return nil }
        return InventoryDelta(
            header: header, sku: sku, quantity: quantity, uom: uom, status: status.0, wmsStatus: status.1,
            reason: reason, location: location, lot: lot
        )
    }

    mutating func shipment(_ object: JSONObject, header: EventHeader?) -> ShipmentEvent? {
        let shipmentId = string(object, "shipmentId", kind: .identifier)
        let orderRef = string(object, "orderRef")
        let status: (ShipmentStatus, String)? = status(object)
        let lines: Lines<ShipmentLine> = self.lines(object) { $0.shipmentLine($1, prefix: $2) }
        if status?.0 == .shipped {
            switch lines {
            case .absent: fail("lines", "is required when status is shipped")
            case .valid(let lines) where lines.isEmpty: fail("lines", "must not be empty when status is shipped")
            default: break
            }
        }
        let carrier = string(object, "carrier", required: false)
        let trackingNumber = string(object, "trackingNumber", required: false)
        let validLines: [ShipmentLine]
        switch lines {
        case .absent: validLines = []
        case .valid(let lines): validLines = lines
        case .invalid: return nil
        }
        guard let header, let shipmentId, let orderRef, let status else { return nil }
        return ShipmentEvent(
            header: header, shipmentId: shipmentId, orderRef: orderRef, status: status.0, wmsStatus: status.1,
            lines: validLines, carrier: carrier, trackingNumber: trackingNumber
        )
    }

    mutating func receipt(_ object: JSONObject, header: EventHeader?) -> ReceiptEvent? {
        let receiptId = string(object, "receiptId", kind: .identifier)
        let purchaseOrderRef = string(object, "purchaseOrderRef")
        let supplier = string(object, "supplier")
        let status: (ReceiptStatus, String)? = status(object)
        let lines: Lines<ReceiptLine> = self.lines(object) { $0.receiptLine($1, prefix: $2) }
        var validLines: [ReceiptLine]?
        switch lines {
        case .absent: fail("lines", "is required")
        case .valid(let lines) where lines.isEmpty: fail("lines", "must not be empty")
        case .valid(let lines): validLines = lines
        case .invalid: break
        }
        guard let header, let receiptId, let purchaseOrderRef, let supplier, let status, let validLines else {
            return nil
        }
        return ReceiptEvent(
            header: header, receiptId: receiptId, purchaseOrderRef: purchaseOrderRef, supplier: supplier,
            status: status.0, wmsStatus: status.1, lines: validLines
        )
    }

    mutating func shipmentLine(_ line: JSONObject, prefix: String) -> ShipmentLine? {
        let sku = string(line, "sku", prefix: prefix)
        var quantity = quantity(line, "quantity", prefix: prefix)
        if let value = quantity, value.signum <= 0 {
            fail(prefix + "quantity", "must be greater than zero")
            quantity = nil
        }
        let uom = string(line, "uom", prefix: prefix)
        let lot = string(line, "lot", prefix: prefix, required: false)
        guard let sku, let quantity, let uom else { return nil }
        return ShipmentLine(sku: sku, quantity: quantity, uom: uom, lot: lot)
    }

    mutating func receiptLine(_ line: JSONObject, prefix: String) -> ReceiptLine? {
        let sku = string(line, "sku", prefix: prefix)
        let expected = nonNegativeQuantity(line, "quantityExpected", prefix: prefix)
        let received = nonNegativeQuantity(line, "quantityReceived", prefix: prefix)
        let uom = string(line, "uom", prefix: prefix)
        let lot = string(line, "lot", prefix: prefix, required: false)
        guard let sku, let expected, let received, let uom else { return nil }
        return ReceiptLine(sku: sku, quantityExpected: expected, quantityReceived: received, uom: uom, lot: lot)
    }

    // MARK: Field kinds

    /// What a string field may hold beyond its length.
    enum StringKind {
        /// Any text without control characters.
        case text
        /// Text without control characters, in Unicode NFC: part of a sequencing key.
        case identifier
        /// Visible ASCII, `!` to `~`: sent as an HTTP and AMQP header.
        case headerSafe
    }

    /// A string field. Absent or `null`: a violation when `required`, else `nil` quietly.
    mutating func string(
        _ object: JSONObject, _ key: String, prefix: String = "", required: Bool = true,
        maxLength: Int = EventDecoder.maxStringLength, kind: StringKind = .text
    ) -> String? {
        switch object[key] {
        case nil, .null:
            if required { fail(prefix + key, "is required") }
        case .string(let text):
            if text.isEmpty {
                fail(prefix + key, "must not be empty")
            } else if text.utf8.count > maxLength {
                fail(prefix + key, "must be at most \(maxLength) bytes of UTF-8 (was \(text.utf8.count))")
            } else if let rule = Self.violatedRule(of: text, kind) {
                fail(prefix + key, rule)
            } else {
                return text
            }
        default:
            fail(prefix + key, "must be a string")
        }
        return nil
    }

    /// The rule `text` breaks as a string of `kind`, if any.
    private static func violatedRule(of text: String, _ kind: StringKind) -> String? {
        switch kind {
        case .headerSafe:
            guard text.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                return "must be visible ASCII characters only (! to ~: no spaces, control or non-ASCII characters)"
            }
            return nil
        case .text, .identifier:
            // ASCII without control characters is NFC already: the common case costs one pass.
            if text.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) { return nil }
            // A tab is text (a free-text field copied from a spreadsheet); not in an identifier.
            let isControl = { (scalar: Unicode.Scalar) in
                scalar.properties.generalCategory == .control && (kind == .identifier || scalar != "\t")
            }
            if text.unicodeScalars.contains(where: isControl) {
                return "must not contain control characters"
            }
            if kind == .identifier, !text.precomposedStringWithCanonicalMapping.utf8.elementsEqual(text.utf8) {
                return "must be in Unicode NFC (composed) form"
            }
            return nil
        }
    }

    /// A required decimal: a JSON number or a decimal string.
    mutating func quantity(_ object: JSONObject, _ key: String, prefix: String = "") -> Quantity? {
        let text: String
        switch object[key] {
        case nil, .null:
            fail(prefix + key, "is required")
            return nil
        case .number(let literal):
            text = literal
        case .string(let string):
            text = string
        default:
            fail(prefix + key, "must be a decimal number (a JSON number or a decimal string)")
            return nil
        }
        do throws(QuantityParseError) {
            return try Quantity.parse(text)
        } catch {
            switch error.code {
            case .tooManyFractionDigits: fail(prefix + key, "must have at most 6 fraction digits")
            case .outOfRange: fail(prefix + key, "must be within ±9223372036854.775807")
            default: fail(prefix + key, "must be a decimal number (a JSON number or a decimal string)")
            }
            return nil
        }
    }

    mutating func nonNegativeQuantity(_ object: JSONObject, _ key: String, prefix: String) -> Quantity? {
        guard let value = quantity(object, key, prefix: prefix) else { return nil }
        guard value.signum >= 0 else {
            fail(prefix + key, "must not be negative")
            return nil
        }
        return value
    }

    /// The `status` field mapped to the canonical status, with the code as sent.
    mutating func status<Status: CanonicalStatus>(_ object: JSONObject) -> (Status, String)? {
        guard let code = string(object, "status") else { return nil }
        guard let status = mapping.status(for: code, as: Status.self) else {
            fail("status", "must be one of \(Status.canonicalNameList) (or a mapped WMS code)")
            return nil
        }
        return (status, code)
    }

    enum Lines<Line> {
        case absent
        case invalid
        case valid([Line])
    }

    /// The optional `lines` array, each element read by `readLine` with its path prefix
    /// (`lines[2].`).
    mutating func lines<Line>(
        _ object: JSONObject, readLine: (inout FieldReader, JSONObject, String) -> Line?
    ) -> Lines<Line> {
        switch object["lines"] {
        case nil, .null:
            return .absent
        case .array(let elements):
            var lines: [Line] = []
            lines.reserveCapacity(elements.count)
            var valid = true
            for (index, element) in elements.enumerated() {
                guard case .object(let line) = element else {
                    fail("lines[\(index)]", "must be an object")
                    valid = false
                    continue
                }
                if let parsed = readLine(&self, line, "lines[\(index)].") {
                    lines.append(parsed)
                } else {
                    valid = false
                }
            }
            return valid ? .valid(lines) : .invalid
        default:
            fail("lines", "must be an array")
            return .invalid
        }
    }
}
