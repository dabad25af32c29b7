import Foundation
import Testing
import WarehouseSyncCore

@Suite("EventDecoder")
struct EventDecoderTests {
    let decoder = EventDecoder()

    // MARK: Valid events

    @Test("every sample line decodes, with its keys", arguments: EventSamples.all.map { $0 })
    func samplesDecode(sample: (line: String, routingKey: String, sequencingKey: String, stream: EventStream)) throws {
        let event = try decoder.decode(Array(sample.line.utf8), routingKey: sample.routingKey)
        #expect(event.stream == sample.stream)
        #expect(event.routingKey == sample.routingKey)
        #expect(event.sequencingKey == sample.sequencingKey)
        #expect(event.schema == sample.stream.schema)
        #expect(try decoder.decode(Data(sample.line.utf8)) == event)
    }

    @Test("an inventory delta decodes to the expected value")
    func inventoryValue() throws {
        let lines = EventSamples.lines(of: EventSamples.inventory)
        let first = try decoder.decode(Array(lines[0].utf8), routingKey: "inventory.WH1")
        let expected = InventoryDelta(
            header: EventHeader(
                stream: .inventory, eventId: "evt-inv-0001", occurredAt: try Timestamp.parse("2024-05-01T08:30:00.123Z"),
                warehouse: "WH1", sequence: 1, correlationId: "corr-1", source: "acme-wms"
            ),
            sku: "SKU-1", quantity: try Quantity.parse("12.5"), uom: "EA", status: .available, reason: .receipt,
            location: "A-01-01", lot: "LOT-7"
        )
        #expect(first == .inventory(expected))
        #expect(first.header.occurredAt.secondsSince1970 == 1_714_552_200)

        let second = try decoder.decode(Array(lines[1].utf8))
        guard case .inventory(let delta) = second else {
            Issue.record("expected an inventory delta")
            return
        }
        #expect(delta.quantity == -3)
        #expect(delta.status == .qualityHold)
        #expect(delta.wmsStatus == "QC")
        #expect(delta.reason == .adjustment)
        #expect(delta.location == nil && delta.lot == nil && delta.header.correlationId == nil)

        guard case .inventory(let third) = try decoder.decode(Array(lines[2].utf8)) else {
            Issue.record("expected an inventory delta")
            return
        }
        #expect(third.quantity.microUnits == -1)
        #expect(third.reason == .return)
        #expect(third.status == .inTransit)
    }

    @Test("a shipment event decodes to the expected value")
    func shipmentValue() throws {
        let lines = EventSamples.lines(of: EventSamples.shipment)
        let event = try decoder.decode(Array(lines[1].utf8), routingKey: "shipment.WH1")
        let expected = ShipmentEvent(
            header: EventHeader(
                stream: .shipment, eventId: "evt-shp-0002", occurredAt: try Timestamp.parse("2024-05-02T16:45:10.5Z"),
                warehouse: "WH1", sequence: 2, correlationId: "corr-9"
            ),
            shipmentId: "SHP-100", orderRef: "SO-5000", status: .shipped,
            lines: [
                ShipmentLine(sku: "SKU-1", quantity: 2, uom: "EA"),
                ShipmentLine(sku: "SKU-2", quantity: try Quantity.parse("1.25"), uom: "KG", lot: "L-9"),
            ],
            carrier: "DHL", trackingNumber: "JD0001"
        )
        #expect(event == .shipment(expected))

        guard case .shipment(let packed) = try decoder.decode(Array(lines[0].utf8)) else {
            Issue.record("expected a shipment event")
            return
        }
        #expect(packed.status == .packed && packed.lines.isEmpty && packed.carrier == nil)

        guard case .shipment(let delivered) = try decoder.decode(Array(lines[2].utf8)) else {
            Issue.record("expected a shipment event")
            return
        }
        #expect(delivered.status == .delivered && delivered.wmsStatus == "DELIVERED")
    }

    @Test("a receipt event decodes to the expected value")
    func receiptValue() throws {
        let lines = EventSamples.lines(of: EventSamples.receipt)
        let event = try decoder.decode(Array(lines[1].utf8), routingKey: "receipt.WH1")
        let expected = ReceiptEvent(
            header: EventHeader(
                stream: .receipt, eventId: "evt-rcp-0002", occurredAt: try Timestamp.parse("2024-05-03T11:00:00Z"),
                warehouse: "WH1", sequence: 2
            ),
            receiptId: "RCP-1", purchaseOrderRef: "PO-77", supplier: "Acme Supplies", status: .putawayComplete,
            lines: [
                ReceiptLine(sku: "SKU-1", quantityExpected: 10, quantityReceived: 10, uom: "EA", lot: "LOT-1"),
                ReceiptLine(sku: "SKU-3", quantityExpected: 0, quantityReceived: 15, uom: "EA"),
            ]
        )
        #expect(event == .receipt(expected))
        #expect(expected.lines.map(\.isDiscrepancy) == [false, true])

        guard case .receipt(let mapped) = try decoder.decode(Array(lines[2].utf8)) else {
            Issue.record("expected a receipt event")
            return
        }
        #expect(mapped.status == .received && mapped.wmsStatus == "RECEIVED")
        #expect(mapped.header.source == "acme-wms")
    }

    @Test("quantities as JSON numbers and as decimal strings decode alike", arguments: ["12.5", "\"12.50\"", "1.25e1", "\"125e-1\""])
    func quantityForms(literal: String) throws {
        let event = try decoder.decode(body(.inventory, ["quantity": .some(try JSONValue(parsing: literal))]))
        guard case .inventory(let delta) = event else {
            Issue.record("expected an inventory delta")
            return
        }
        #expect(delta.quantity.description == "12.5")
    }

    @Test("unknown fields and null optional fields are ignored")
    func forwardCompatible() throws {
        let event = try decoder.decode(
            body(.inventory, ["futureField": ["a": [1, 2]], "lot": .some(.null), "correlationId": .some(.null)])
        )
        guard case .inventory(let delta) = event else {
            Issue.record("expected an inventory delta")
            return
        }
        #expect(delta.lot == nil && delta.header.correlationId == nil)
    }

    @Test("an operator's status mapping is used")
    func customMapping() throws {
        let mapping = StatusMapping.default.merging(try StatusMapping(parsing: "shipment.SHP=shipped"))
        let custom = EventDecoder(statusMapping: mapping)
        let text = body(.shipment, ["status": "SHP"])
        guard case .shipment(let event) = try custom.decode(text) else {
            Issue.record("expected a shipment event")
            return
        }
        #expect(event.status == .shipped && event.wmsStatus == "SHP")
        #expect(throws: EventValidationError.self) { try decoder.decode(text) }
    }

    @Test("a body of exactly 256 KiB is accepted")
    func maximumSize() throws {
        var bytes = body(.inventory, [:])
        bytes += Array(repeating: UInt8(ascii: " "), count: EventDecoder.maxBodyBytes - bytes.count)
        #expect(bytes.count == 262_144)
        _ = try decoder.decode(bytes)
    }

    // MARK: Invalid events

    struct InvalidCase: Sendable, CustomTestStringConvertible {
        let stream: EventStream
        let changes: [String: JSONValue?]
        let field: String
        let rule: String
        var testDescription: String { "\(stream) \(field): \(rule)" }

        init(_ stream: EventStream, _ changes: [String: JSONValue?], _ field: String, _ rule: String) {
            self.stream = stream
            self.changes = changes
            self.field = field
            self.rule = rule
        }
    }

    static let inventoryStatuses = "must be one of available, allocated, quarantined, in-transit, damaged, quality-hold (or a mapped WMS code)"

    static let invalidCases: [InvalidCase] = [
        // Common fields.
        .init(.inventory, ["schema": .some(nil)], "schema", "is required"),
        .init(.inventory, ["schema": "inventory.delta/2"], "schema", "must be one of inventory.delta/1, shipment.event/1, receipt.event/1"),
        .init(.inventory, ["schema": 1], "schema", "must be a string"),
        .init(.inventory, ["eventId": .some(nil)], "eventId", "is required"),
        .init(.inventory, ["eventId": ""], "eventId", "must not be empty"),
        .init(.inventory, ["eventId": .string(String(repeating: "e", count: 129))], "eventId", "must be at most 128 bytes of UTF-8 (was 129)"),
        .init(.inventory, ["eventId": 42], "eventId", "must be a string"),
        .init(.inventory, ["occurredAt": "2024-02-30T00:00:00Z"], "occurredAt", "must be an RFC 3339 timestamp (day must be 01-29 for 2024-02)"),
        .init(.inventory, ["occurredAt": "yesterday"], "occurredAt", "must be an RFC 3339 timestamp (expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM))"),
        .init(.inventory, ["warehouse": "WH 1"], "warehouse", "must match [A-Za-z0-9_-]{1,64}"),
        .init(.inventory, ["warehouse": "WH1.A"], "warehouse", "must match [A-Za-z0-9_-]{1,64}"),
        .init(.inventory, ["warehouse": .string(String(repeating: "W", count: 65))], "warehouse", "must be at most 64 bytes of UTF-8 (was 65)"),
        .init(.inventory, ["warehouse": ""], "warehouse", "must not be empty"),
        .init(.inventory, ["sequence": .some(nil)], "sequence", "is required"),
        .init(.inventory, ["sequence": 0], "sequence", "must be an integer ≥ 1"),
        .init(.inventory, ["sequence": -1], "sequence", "must be an integer ≥ 1"),
        .init(.inventory, ["sequence": .number("1.0")], "sequence", "must be an integer ≥ 1"),
        .init(.inventory, ["sequence": .number("1e3")], "sequence", "must be an integer ≥ 1"),
        .init(.inventory, ["sequence": "5"], "sequence", "must be an integer ≥ 1"),
        .init(.inventory, ["sequence": .number("9223372036854775808")], "sequence", "must be an integer from 1 to 9007199254740991"),
        .init(.inventory, ["correlationId": 7], "correlationId", "must be a string"),
        // Identifiers that travel as headers: visible ASCII only (CR/LF would split a header).
        .init(.inventory, ["eventId": "evt-1\r\nX-Injected: 1"], "eventId", "must be visible ASCII characters only (! to ~: no spaces, control or non-ASCII characters)"),
        .init(.inventory, ["eventId": "evt\t1"], "eventId", "must be visible ASCII characters only (! to ~: no spaces, control or non-ASCII characters)"),
        .init(.inventory, ["eventId": "evt 1"], "eventId", "must be visible ASCII characters only (! to ~: no spaces, control or non-ASCII characters)"),
        .init(.inventory, ["eventId": "evt-\u{7F}"], "eventId", "must be visible ASCII characters only (! to ~: no spaces, control or non-ASCII characters)"),
        .init(.inventory, ["eventId": "évt-1"], "eventId", "must be visible ASCII characters only (! to ~: no spaces, control or non-ASCII characters)"),
        .init(.inventory, ["correlationId": "corr\n1"], "correlationId", "must be visible ASCII characters only (! to ~: no spaces, control or non-ASCII characters)"),
        .init(.inventory, ["correlationId": .string(String(repeating: "c", count: 129))], "correlationId", "must be at most 128 bytes of UTF-8 (was 129)"),
        .init(.inventory, ["sequence": .number("9007199254740992")], "sequence", "must be an integer from 1 to 9007199254740991"),
        .init(.inventory, ["source": "WMS\u{0}"], "source", "must not contain control characters"),
        .init(.inventory, ["source": ""], "source", "must not be empty"),
        // inventory.delta/1
        .init(.inventory, ["sku": .some(nil)], "sku", "is required"),
        .init(.inventory, ["sku": .string(String(repeating: "S", count: 257))], "sku", "must be at most 256 bytes of UTF-8 (was 257)"),
        .init(.inventory, ["sku": .string(String(repeating: "é", count: 129))], "sku", "must be at most 256 bytes of UTF-8 (was 258)"),
        .init(.inventory, ["sku": "SKU-\u{85}1"], "sku", "must not contain control characters"),
        // "É" as E + combining acute: canonically the same id as the composed one, other bytes.
        .init(.inventory, ["sku": "CAF\u{45}\u{301}"], "sku", "must be in Unicode NFC (composed) form"),
        .init(.shipment, ["shipmentId": "SHP-\u{41}\u{30A}"], "shipmentId", "must be in Unicode NFC (composed) form"),
        .init(.receipt, ["receiptId": "RCP-\u{6F}\u{308}"], "receiptId", "must be in Unicode NFC (composed) form"),
        .init(.inventory, ["quantity": .some(nil)], "quantity", "is required"),
        .init(.inventory, ["quantity": 0], "quantity", "must not be zero"),
        .init(.inventory, ["quantity": "-0.000"], "quantity", "must not be zero"),
        .init(.inventory, ["quantity": .number("0.0000001")], "quantity", "must have at most 6 fraction digits"),
        .init(.inventory, ["quantity": "1.2345678"], "quantity", "must have at most 6 fraction digits"),
        .init(.inventory, ["quantity": .number("1e20")], "quantity", "must be within ±9223372036854.775807"),
        .init(.inventory, ["quantity": "NaN"], "quantity", "must be a decimal number (a JSON number or a decimal string)"),
        .init(.inventory, ["quantity": true], "quantity", "must be a decimal number (a JSON number or a decimal string)"),
        .init(.inventory, ["uom": .some(nil)], "uom", "is required"),
        .init(.inventory, ["status": "XX"], "status", inventoryStatuses),
        .init(.inventory, ["status": "qc"], "status", inventoryStatuses),
        .init(.inventory, ["status": .some(nil)], "status", "is required"),
        .init(.inventory, ["reason": "theft"], "reason", "must be one of receipt, pick, putaway, adjustment, cycle-count, transfer, return"),
        .init(.inventory, ["location": ["a"]], "location", "must be a string"),
        .init(.inventory, ["lot": ""], "lot", "must not be empty"),
        // shipment.event/1
        .init(.shipment, ["shipmentId": .some(nil)], "shipmentId", "is required"),
        .init(.shipment, ["orderRef": ""], "orderRef", "must not be empty"),
        .init(.shipment, ["status": "BOGUS"], "status", "must be one of packed, shipped, delivered, cancelled (or a mapped WMS code)"),
        .init(.shipment, ["lines": .some(nil)], "lines", "is required when status is shipped"),
        .init(.shipment, ["lines": []], "lines", "must not be empty when status is shipped"),
        .init(.shipment, ["lines": "SKU-1"], "lines", "must be an array"),
        .init(.shipment, ["lines": [5]], "lines[0]", "must be an object"),
        .init(.shipment, ["lines": [["sku": "A", "quantity": 1, "uom": "EA"], ["sku": "B", "quantity": 0, "uom": "EA"]]], "lines[1].quantity", "must be greater than zero"),
        .init(.shipment, ["lines": [["sku": "A", "quantity": -1, "uom": "EA"]]], "lines[0].quantity", "must be greater than zero"),
        .init(.shipment, ["lines": [["quantity": 1, "uom": "EA"]]], "lines[0].sku", "is required"),
        .init(.shipment, ["lines": [["sku": "A", "quantity": 1, "uom": "EA", "lot": 3]]], "lines[0].lot", "must be a string"),
        .init(.shipment, ["carrier": 1], "carrier", "must be a string"),
        .init(.shipment, ["trackingNumber": ""], "trackingNumber", "must not be empty"),
        // receipt.event/1
        .init(.receipt, ["receiptId": .some(nil)], "receiptId", "is required"),
        .init(.receipt, ["purchaseOrderRef": .some(nil)], "purchaseOrderRef", "is required"),
        .init(.receipt, ["supplier": ""], "supplier", "must not be empty"),
        .init(.receipt, ["status": "packed"], "status", "must be one of received, putaway-complete (or a mapped WMS code)"),
        .init(.receipt, ["lines": .some(nil)], "lines", "is required"),
        .init(.receipt, ["lines": []], "lines", "must not be empty"),
        .init(.receipt, ["lines": [["sku": "A", "quantityExpected": 1, "quantityReceived": -1, "uom": "EA"]]], "lines[0].quantityReceived", "must not be negative"),
        .init(.receipt, ["lines": [["sku": "A", "quantityExpected": -2, "quantityReceived": 1, "uom": "EA"]]], "lines[0].quantityExpected", "must not be negative"),
        .init(.receipt, ["lines": [["sku": "A", "quantityExpected": "1.0000001", "quantityReceived": 1, "uom": "EA"]]], "lines[0].quantityExpected", "must have at most 6 fraction digits"),
        .init(.receipt, ["lines": [["sku": "A", "quantityExpected": 1, "uom": "EA"]]], "lines[0].quantityReceived", "is required"),
        .init(.receipt, ["lines": [["sku": "A", "quantityExpected": 1, "quantityReceived": 1]]], "lines[0].uom", "is required"),
    ]

    @Test("each invalid field is reported with its exact field and rule", arguments: invalidCases)
    func rejectsInvalid(testCase: InvalidCase) {
        let bytes = body(testCase.stream, testCase.changes)
        #expect(throws: EventValidationError(violations: [.init(field: testCase.field, rule: testCase.rule)])) {
            try decoder.decode(bytes)
        }
    }

    @Test("every violation is reported together, in field order")
    func collectsAllViolations() {
        let bytes = body(
            .shipment,
            [
                "eventId": "", "sequence": 0, "warehouse": "W H", "status": "SHIPPED",
                "lines": [["sku": "A", "quantity": "x", "uom": ""], 7, ["sku": "B", "quantity": 1, "uom": "EA"]],
            ]
        )
        #expect(
            throws: EventValidationError(violations: [
                .init(field: "eventId", rule: "must not be empty"),
                .init(field: "warehouse", rule: "must match [A-Za-z0-9_-]{1,64}"),
                .init(field: "sequence", rule: "must be an integer ≥ 1"),
                .init(field: "lines[0].quantity", rule: "must be a decimal number (a JSON number or a decimal string)"),
                .init(field: "lines[0].uom", rule: "must not be empty"),
                .init(field: "lines[1]", rule: "must be an object"),
            ])
        ) {
            try decoder.decode(bytes, routingKey: "shipment.WH1")
        }
    }

    @Test("an invalid schema still reports the other common fields")
    func invalidSchemaAndMore() {
        let bytes = body(.receipt, ["schema": "receipt.event/9", "occurredAt": .some(nil)])
        #expect(
            throws: EventValidationError(violations: [
                .init(field: "schema", rule: "must be one of inventory.delta/1, shipment.event/1, receipt.event/1"),
                .init(field: "occurredAt", rule: "is required"),
            ])
        ) {
            try decoder.decode(bytes, routingKey: "receipt.WH1")
        }
    }

    @Test(
        "the routing key must match the body's stream and warehouse",
        arguments: [
            ("inventory.WH2", "must equal 'inventory.WH1', from the body's schema and warehouse"),
            ("shipment.WH1", "must equal 'inventory.WH1', from the body's schema and warehouse"),
            ("inventory.wh1", "must equal 'inventory.WH1', from the body's schema and warehouse"),
            ("inventory", "must be <stream>.<warehouse> with stream inventory, shipment or receipt and warehouse matching [A-Za-z0-9_-]{1,64}"),
            ("stock.WH1", "must be <stream>.<warehouse> with stream inventory, shipment or receipt and warehouse matching [A-Za-z0-9_-]{1,64}"),
            ("inventory.WH1.extra", "must be <stream>.<warehouse> with stream inventory, shipment or receipt and warehouse matching [A-Za-z0-9_-]{1,64}"),
            ("", "must be <stream>.<warehouse> with stream inventory, shipment or receipt and warehouse matching [A-Za-z0-9_-]{1,64}"),
        ]
    )
    func routingKeyMismatch(routingKey: String, rule: String) throws {
        let bytes = body(.inventory, [:])
        _ = try decoder.decode(bytes, routingKey: "inventory.WH1")
        #expect(throws: EventValidationError(violations: [.init(field: "routingKey", rule: rule)])) {
            try decoder.decode(bytes, routingKey: routingKey)
        }
    }

    @Test(
        "bodies that are not one JSON object of at most 256 KiB",
        arguments: [
            (Array("not json".utf8), "must be valid JSON: expected a JSON value ('null'?) at byte 0"),
            (Array("{oops}".utf8), "must be valid JSON: expected a string key at byte 1"),
            (Array("[1,2]".utf8), "must be a JSON object"),
            (Array("\"text\"".utf8), "must be a JSON object"),
            (Array("".utf8), "must be valid JSON: expected a JSON value, found end of input at byte 0"),
            (Array(#"{"sku":"A","sku":"B"}"#.utf8), "must be valid JSON: duplicate key 'sku' at byte 11"),
            (Array(#"{"a":1}{"b":2}"#.utf8), "must be valid JSON: expected end of input after the JSON value at byte 7"),
            ([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D], "must be valid JSON: expected well-formed UTF-8 at byte 2"),
        ] as [([UInt8], String)]
    )
    func invalidBody(bytes: [UInt8], rule: String) {
        #expect(throws: EventValidationError(violations: [.init(field: "body", rule: rule)])) {
            try decoder.decode(bytes)
        }
    }

    @Test("an oversize body is rejected before parsing")
    func oversizeBody() {
        var bytes = body(.inventory, [:])
        bytes += Array(repeating: UInt8(ascii: " "), count: EventDecoder.maxBodyBytes + 1 - bytes.count)
        #expect(
            throws: EventValidationError(violations: [
                .init(field: "body", rule: "must be at most 262144 bytes (was 262145)")
            ])
        ) {
            try decoder.decode(bytes)
        }
    }

    // MARK: Error description

    @Test("the description joins violations as field: rule")
    func descriptionJoins() {
        let error = EventValidationError(violations: [
            .init(field: "sequence", rule: "must be an integer ≥ 1"),
            .init(field: "lines[2].quantity", rule: "must not be zero"),
        ])
        #expect(error.description == "sequence: must be an integer ≥ 1; lines[2].quantity: must not be zero")
    }

    @Test("a long description is cut at a violation boundary, saying how many more", arguments: [20, 100, 5000])
    func descriptionTruncated(count: Int) throws {
        let violations = (0..<count).map { EventValidationError.Violation(field: "lines[\($0)].quantity", rule: "must be greater than zero") }
        let description = EventValidationError(violations: violations).description
        #expect(description.utf8.count <= EventValidationError.maxDescriptionLength)
        let match = try #require(description.firstMatch(of: /; … \((\d+) more\)$/))
        let shown = description.split(separator: "; ").count - 1
        #expect(Int(match.output.1) == count - shown)
        #expect(description.hasPrefix("lines[0].quantity: must be greater than zero; lines[1].quantity"))
    }

    @Test("the truncated description of real decoder output stays bounded")
    func decoderDescriptionBounded() {
        let lines = JSONValue.array(Array(repeating: ["sku": "", "quantity": 0, "uom": ""], count: 200))
        do {
            _ = try decoder.decode(body(.shipment, ["lines": .some(lines)]))
            Issue.record("expected a validation error")
        } catch {
            #expect(error.violations.count == 600)
            #expect(error.description.utf8.count <= 512)
            #expect(error.description.hasSuffix(" more)"))
        }
    }

    @Test("a single over-long violation is cut too")
    func singleLongViolation() {
        let error = EventValidationError(violations: [.init(field: "body", rule: String(repeating: "é", count: 600))])
        #expect(error.description.utf8.count <= 512)
        #expect(error.description.hasSuffix("é…"))
        let two = EventValidationError(violations: [
            .init(field: "body", rule: String(repeating: "x", count: 600)), .init(field: "a", rule: "b"),
        ])
        #expect(two.description.utf8.count <= 512)
        #expect(two.description.hasSuffix("x… (1 more)"))
    }

    // MARK: Helpers

    /// The base sample of `stream` with `changes` applied (`.some(nil)` removes a field), as bytes.
    func body(_ stream: EventStream, _ changes: [String: JSONValue?]) -> [UInt8] {
        var object = EventSamples.base(stream)
        for (key, value) in changes.sorted(by: { $0.key < $1.key }) {
            object[key] = value
        }
        return JSONValue.object(object).serializedBytes()
    }
}
