import Testing
import WarehouseSyncCore

@Suite("StatusMapping")
struct StatusMappingTests {
    @Test(
        "default inventory codes",
        arguments: [
            ("QC", InventoryStatus.qualityHold),
            ("HOLD", .qualityHold),
            ("QA", .qualityHold),
            ("QUALITY_HOLD", .qualityHold),
            ("AVAIL", .available),
            ("ALLOC", .allocated),
            ("DMG", .damaged),
            ("QUAR", .quarantined),
            ("TRANSIT", .inTransit),
            ("IN_TRANSIT", .inTransit),
        ]
    )
    func defaultInventory(code: String, status: InventoryStatus) {
        #expect(StatusMapping.default.status(for: code) == status)
    }

    @Test("default shipment and receipt codes")
    func defaultOtherStreams() {
        let mapping = StatusMapping.default
        #expect(mapping.status(for: "SHIPPED", as: ShipmentStatus.self) == .shipped)
        #expect(mapping.status(for: "CANCELLED", as: ShipmentStatus.self) == .cancelled)
        #expect(mapping.status(for: "PUTAWAY_COMPLETE", as: ReceiptStatus.self) == .putawayComplete)
        // Codes belong to their stream.
        #expect(mapping.status(for: "QC", as: ShipmentStatus.self) == nil)
    }

    @Test("canonical names are always accepted, even by an empty mapping")
    func canonicalNames() {
        for mapping in [StatusMapping(), StatusMapping.default] {
            for status in InventoryStatus.allCases {
                #expect(mapping.status(for: status.rawValue) == status)
            }
            for status in ShipmentStatus.allCases {
                #expect(mapping.status(for: status.rawValue) == status)
            }
            for status in ReceiptStatus.allCases {
                #expect(mapping.status(for: status.rawValue) == status)
            }
        }
        #expect(StatusMapping().status(for: "QC", as: InventoryStatus.self) == nil)
    }

    @Test("unknown codes are invalid; codes match case-sensitively", arguments: ["qc", "Available", "XYZ", "", "quality_hold"])
    func unknownCodes(code: String) {
        #expect(StatusMapping.default.status(for: code, as: InventoryStatus.self) == nil)
    }

    @Test("configuration text extends the defaults")
    func parsingAndMerging() throws {
        let config = try StatusMapping(parsing: "inventory.QC=quality-hold,shipment.SHP=shipped")
        #expect(config.status(for: "SHP", as: ShipmentStatus.self) == .shipped)
        #expect(config.status(for: "HOLD", as: InventoryStatus.self) == nil)
        #expect(
            config.entries == [
                .init(code: "QC", status: InventoryStatus.qualityHold),
                .init(code: "SHP", status: ShipmentStatus.shipped),
            ]
        )
        #expect(config.description == "inventory.QC=quality-hold,shipment.SHP=shipped")

        let merged = StatusMapping.default.merging(config)
        #expect(merged.status(for: "SHP", as: ShipmentStatus.self) == .shipped)
        #expect(merged.status(for: "HOLD", as: InventoryStatus.self) == .qualityHold)

        let override = StatusMapping.default.merging(try StatusMapping(parsing: "inventory.HOLD=quarantined"))
        #expect(override.status(for: "HOLD", as: InventoryStatus.self) == .quarantined)
        #expect(try StatusMapping(parsing: StatusMapping.default.description) == StatusMapping.default)
    }

    @Test("whitespace, newlines, repeated and empty entries are tolerated")
    func lenientLayout() throws {
        let mapping = try StatusMapping(parsing: " inventory.QC = quality-hold ,\n\nreceipt.RCV=received,,inventory.QC=quality-hold,\n")
        #expect(mapping.entries.count == 2)
        #expect(mapping.status(for: "RCV", as: ReceiptStatus.self) == .received)
        #expect(try StatusMapping(parsing: "") == StatusMapping())
    }

    @Test(
        "bad entries are rejected and named",
        arguments: [
            ("inventory", "inventory", StatusMappingError.Code.malformedEntry),
            ("inventory.QC", "inventory.QC", .malformedEntry),
            ("QC=quality-hold", "QC=quality-hold", .malformedEntry),
            ("inventory.=available", "inventory.=available", .malformedEntry),
            ("inventory.QC=", "inventory.QC=", .malformedEntry),
            ("inventory.Q C=available", "inventory.Q C=available", .malformedEntry),
            ("shipment.SHP=shipped,foo.QC=available", "foo.QC=available", .unknownStream),
            ("inventory.QC=shipped", "inventory.QC=shipped", .unknownStatus),
            ("inventory.QC=Quality-Hold", "inventory.QC=Quality-Hold", .unknownStatus),
            ("inventory.available=damaged", "inventory.available=damaged", .remapsCanonicalStatus),
            ("inventory.QC=damaged,inventory.QC=available", "inventory.QC=available", .conflictingEntry),
        ]
    )
    func rejectsBadEntries(text: String, entry: String, code: StatusMappingError.Code) {
        #expect(throws: StatusMappingError(code: code, entry: entry)) {
            try StatusMapping(parsing: text)
        }
    }

    @Test("error descriptions name the entry and what is expected")
    func errorDescriptions() {
        #expect(
            StatusMappingError(code: .unknownStatus, entry: "inventory.QC=shipped").description
                == "status mapping entry 'inventory.QC=shipped': unknown canonical status: the status must be one of available, allocated, quarantined, in-transit, damaged, quality-hold"
        )
        #expect(
            StatusMappingError(code: .unknownStream, entry: "foo.QC=x").description
                == "status mapping entry 'foo.QC=x': unknown stream: the stream must be one of inventory, shipment, receipt"
        )
        #expect(
            StatusMappingError(code: .malformedEntry, entry: "QC").description
                == "status mapping entry 'QC': malformed entry: expected <stream>.<code>=<canonical status>, e.g. inventory.QC=quality-hold"
        )
    }
}
