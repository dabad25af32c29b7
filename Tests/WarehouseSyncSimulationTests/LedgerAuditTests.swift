import Foundation
import Testing
import WarehouseSyncSimulation

/// The ledger audit the integration tests and `scripts/proof` (`wms-simulator check`) share.
@Suite("Ledger audit")
struct LedgerAuditTests {
    typealias Document = LedgerAudit.Document

    static func doc(_ position: Int, _ eventId: String, _ key: String, _ sequence: Int64, type: String = "inventory-movement") -> Document {
        Document(position: position, eventId: eventId, type: type, key: key, sequence: sequence)
    }

    @Test("a ledger with every expected eventId once, each key in order, is clean")
    func clean() {
        let audit = LedgerAudit(
            documents: [Self.doc(2, "b", "WH1/A", 2), Self.doc(1, "a", "WH1/A", 1), Self.doc(3, "c", "WH1/B", 1)],
            expectedEventIds: ["a", "b", "c"])
        #expect(audit.isClean)
        #expect(audit.booked == 3)
        #expect(audit.expected == 3)
    }

    @Test("lost, twice, unexpected and out of order are each named")
    func findings() {
        let audit = LedgerAudit(
            documents: [
                Self.doc(1, "a", "WH1/A", 2), Self.doc(2, "b", "WH1/A", 1),  // order: 1 after 2
                Self.doc(3, "c", "WH1/B", 1), Self.doc(4, "c", "WH1/C", 1),  // c twice
                Self.doc(5, "x", "WH1/D", 1),  // not expected
            ],
            expectedEventIds: ["a", "b", "c", "lost-one"])
        #expect(audit.lost == ["lost-one"])
        #expect(audit.postedTwice == ["c"])
        #expect(audit.unexpected == ["x"])
        #expect(audit.orderViolations == ["inventory-movement|WH1/A#1 after #2"])
        #expect(!audit.isClean)
    }

    @Test("goods issues and shipment statuses of one key are ordered within their type; no expectation checks no loss")
    func typesAndNoExpectation() {
        let audit = LedgerAudit(
            documents: [
                Self.doc(1, "s2", "WH1/SHP-1", 2, type: "shipment-status"),
                Self.doc(2, "g1", "WH1/SHP-1", 1, type: "goods-issue"),
            ],
            expectedEventIds: nil)
        #expect(audit.isClean)
        #expect(audit.expected == nil)
    }

    @Test("rows read from GET /documents JSON")
    func rows() throws {
        let json = #"{"position": 7, "eventId": "e", "type": "goods-receipt", "key": "WH2/RCV-1", "sequence": 3}"#
        let row = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(Document(row: row) == Self.doc(7, "e", "WH2/RCV-1", 3, type: "goods-receipt"))
        #expect(Document(row: ["eventId": "e"]) == nil)
    }
}
