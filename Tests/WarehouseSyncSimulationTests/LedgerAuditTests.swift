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

    @Test("a replayed letter posted below its key's position is counted apart, not as a violation")
    func replayedOutOfOrder() {
        // WH1/A: #7 dead-lettered retries-exhausted, the key moved on to #8 and #9, then the replay of #7
        // posted; WH1/B: #3 after #4 with no replay behind it is a real violation
        let documents = [
            Self.doc(1, "a6", "WH1/A", 6), Self.doc(2, "a8", "WH1/A", 8), Self.doc(3, "a9", "WH1/A", 9),
            Self.doc(4, "b4", "WH1/B", 4), Self.doc(5, "a7", "WH1/A", 7), Self.doc(6, "b3", "WH1/B", 3),
            Self.doc(7, "a10", "WH1/A", 10),
        ]
        let expected: Set<String> = ["a6", "a7", "a8", "a9", "a10", "b3", "b4"]
        let replayed = LedgerAudit(documents: documents, expectedEventIds: expected, replayedEventIds: ["a7"])
        #expect(replayed.replayedOutOfOrder == ["inventory-movement|WH1/A#7 after #9"])
        #expect(replayed.orderViolations == ["inventory-movement|WH1/B#3 after #4"])
        #expect(!replayed.isClean)
        // the replay did not move the key's position: #10 after #9 is in order
        let bothReplayed = LedgerAudit(documents: documents, expectedEventIds: expected, replayedEventIds: ["a7", "b3"])
        #expect(bothReplayed.orderViolations.isEmpty)
        #expect(bothReplayed.replayedOutOfOrder.count == 2)
        #expect(bothReplayed.isClean)
        // without the replays named, both count as violations (what the audit said before)
        let unnamed = LedgerAudit(documents: documents, expectedEventIds: expected)
        #expect(unnamed.orderViolations.count == 2)
        #expect(unnamed.replayedOutOfOrder.isEmpty)
        // a replayed eventId posted in order is nothing special
        let inOrder = LedgerAudit(
            documents: [Self.doc(1, "c1", "WH1/C", 1), Self.doc(2, "c2", "WH1/C", 2)], expectedEventIds: nil,
            replayedEventIds: ["c2"])
        #expect(inOrder.isClean && inOrder.replayedOutOfOrder.isEmpty)
    }

    @Test("the accumulator fed in position order gives the audit of the whole array, and notices rows out of position")
    func accumulator() {
        let documents = [
            Self.doc(1, "a", "WH1/A", 2), Self.doc(2, "b", "WH1/A", 1), Self.doc(3, "c", "WH1/B", 1),
            Self.doc(4, "c", "WH1/C", 1), Self.doc(5, "x", "WH1/D", 1),
        ]
        var accumulator = LedgerAudit.Accumulator()
        documents.forEach { accumulator.add($0) }
        #expect(accumulator.unsorted == 0)
        #expect(accumulator.count == 5)
        #expect(
            accumulator.audit(expectedEventIds: ["a", "b", "c", "lost-one"], replayedEventIds: ["b"])
                == LedgerAudit(documents: documents.reversed(), expectedEventIds: ["a", "b", "c", "lost-one"], replayedEventIds: ["b"]))
        var reversed = LedgerAudit.Accumulator()
        documents.reversed().forEach { reversed.add($0) }
        #expect(reversed.unsorted == 4)
    }

    @Test("rows read from GET /documents JSON")
    func rows() throws {
        let json = #"{"position": 7, "eventId": "e", "type": "goods-receipt", "key": "WH2/RCV-1", "sequence": 3}"#
        let row = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(Document(row: row) == Self.doc(7, "e", "WH2/RCV-1", 3, type: "goods-receipt"))
        #expect(Document(row: ["eventId": "e"]) == nil)
    }
}
