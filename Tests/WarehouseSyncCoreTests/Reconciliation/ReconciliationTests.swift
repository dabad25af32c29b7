import Foundation
import Testing
import WarehouseSyncCore

@Suite("WMSSnapshot")
struct WMSSnapshotTests {
    @Test("balance lines (kind left out), shipment and receipt lines; blank lines skipped")
    func parses() throws {
        let text = """
            {"warehouse":"WH1","sku":"A","quantity":"2.5","uom":"EA","sequence":7}

            {"kind":"balance","warehouse":"WH2","sku":"B","status":"damaged","quantity":1}
            {"kind":"shipment","warehouse":"WH1","shipmentId":"SHP-1","status":"shipped"}
            {"kind":"receipt","warehouse":"WH3","receiptId":"RCV-1"}
            """
        let snapshot = try WMSSnapshot.parse(Array(text.utf8))
        #expect(snapshot.balances == [
            .init(balance: StockBalance(warehouse: "WH1", sku: "A", status: "available", quantity: Quantity(parsing: "2.5")!), uom: "EA", sequence: 7),
            .init(balance: StockBalance(warehouse: "WH2", sku: "B", status: "damaged", quantity: 1)),
        ])
        #expect(snapshot.documents == [
            DocumentStatus(kind: .shipment, warehouse: "WH1", id: "SHP-1", status: "shipped"),
            DocumentStatus(kind: .receipt, warehouse: "WH3", id: "RCV-1", status: "received"),
        ])
        #expect(snapshot.warehouses == ["WH1", "WH2", "WH3"])
        #expect(snapshot.documentKinds == [.shipment, .receipt])
    }

    @Test(
        "a line that cannot be read names its line and what is wrong",
        arguments: [
            (#"{"warehouse":"WH1","sku":"A","quantity":"1.2345678"}"#, "quantity must be a decimal"),
            (#"{"warehouse":"WH1","sku":"A","status":"QC","quantity":"1"}"#, "status 'QC' is not one of available,"),
            (#"{"kind":"shipment","warehouse":"WH1","shipmentId":"S","status":"gone"}"#, "status 'gone' is not one of packed,"),
            (#"{"kind":"shipment","warehouse":"WH1","status":"packed"}"#, "shipmentId must be a non-empty string"),
            (#"{"kind":"order","warehouse":"WH1"}"#, "kind 'order' is not one of balance, shipment, receipt"),
            (#"{"warehouse":"WH1","sku":"A","quantity":1,"sequence":0}"#, "sequence must be an integer ≥ 1"),
            ("[1]", "not a JSON object"),
        ])
    func refuses(line: String, problem: String) {
        do {
            _ = try WMSSnapshot.parse(Array(("\n" + line).utf8))
            Issue.record("\(line) was accepted")
        } catch {
            #expect(error.line == 2)
            #expect(error.problem.hasPrefix(problem), "\(error)")
        }
    }
}

@Suite("DocumentReconciliation")
struct DocumentReconciliationTests {
    func document(_ kind: DocumentStatus.Kind, _ warehouse: String, _ id: String, _ status: String) -> DocumentStatus {
        DocumentStatus(kind: kind, warehouse: warehouse, id: id, status: status)
    }

    @Test("statuses that differ and documents one side lacks are reported; counts per warehouse and kind")
    func differences() throws {
        let wms = [
            document(.shipment, "WH1", "S1", "shipped"), document(.shipment, "WH1", "S2", "packed"),
            document(.receipt, "WH1", "R1", "received"), document(.receipt, "WH1", "R2", "received"),
        ]
        let erp = [
            document(.shipment, "WH1", "S1", "shipped"), document(.shipment, "WH1", "S2", "shipped"),
            document(.shipment, "WH1", "S3", "cancelled"), document(.receipt, "WH1", "R1", "received"),
        ]
        let outcome = try DocumentReconciliation.compare(kinds: [.shipment, .receipt], expected: wms, actual: erp)
        #expect(outcome.compared == 5)
        #expect(outcome.differences.map { "\($0.key.kind) \($0.key.id) \($0.wms ?? "-") \($0.erp ?? "-")" } == [
            "receipt R2 received -", "shipment S2 packed shipped", "shipment S3 - cancelled",
        ])
        #expect(outcome.counts.map { "\($0.kind) \($0.warehouse) \($0.wms) \($0.erp)" } == ["receipt WH1 2 1", "shipment WH1 2 3"])
    }

    @Test("only the kinds the snapshot speaks of are compared; an ERP's own words may agree")
    func kindsAndAgreement() throws {
        let erp = [document(.receipt, "WH1", "R1", "received"), document(.shipment, "WH1", "S1", "shipped")]
        let outcome = try DocumentReconciliation.compare(
            kinds: [.shipment], expected: [document(.shipment, "WH1", "S1", "delivered")], actual: erp
        ) { kind, wms, erp in kind == .shipment && wms == "delivered" ? erp == "shipped" : wms == erp }
        #expect(outcome.differences.isEmpty)
        #expect(outcome.compared == 1)
    }

    @Test("the WMS listing a document twice is an error")
    func listedTwice() {
        #expect(throws: BalanceReconciliation.InputError(description: "shipment WH1 S1 is listed twice")) {
            try DocumentReconciliation.compare(
                kinds: [.shipment], expected: [document(.shipment, "WH1", "S1", "packed"), document(.shipment, "WH1", "S1", "shipped")],
                actual: [])
        }
    }

    @Test("the latest status of a journal is the highest sequence's, the later posting among equal ones")
    func latest() {
        let latest = DocumentReconciliation.latest([
            (document(.shipment, "WH1", "S1", "shipped"), 2), (document(.shipment, "WH1", "S1", "packed"), 1),
            (document(.shipment, "WH1", "S2", "packed"), 1), (document(.shipment, "WH1", "S2", "cancelled"), 1),
        ])
        #expect(latest.map(\.status) == ["shipped", "cancelled"])
    }
}

@Suite("BalanceCorrection")
struct BalanceCorrectionTests {
    let difference = BalanceReconciliation.Difference(
        key: StockBalance.Key(warehouse: "WH1", sku: "A", status: "available"), expected: 10, actual: 12)
    let settled = KeyState(nextExpected: 8)

    @Test("a settled key gets a correction of WMS minus ERP at its position, with a deterministic eventId")
    func publishes() {
        let decision = BalanceCorrection.decide(difference, uom: "EA", wmsSequence: 7, key: settled, previous: [])
        let eventId = BalanceCorrection.eventId(for: difference, position: 7, generation: 0)
        #expect(decision == .publish(eventId: eventId, sequence: 7, quantity: -2))
        #expect(eventId.hasPrefix("reconcile-") && eventId.count == 42)
        #expect(BalanceCorrection.decide(difference, uom: "EA", wmsSequence: nil, key: settled, previous: []) == decision)
        // Another point in the key's history, or a drift back after a posted correction: another id.
        #expect(BalanceCorrection.eventId(for: difference, position: 8, generation: 0) != eventId)
        let posted = BalanceCorrection.Previous(eventId: eventId, letterId: 1, quantity: -2, state: .posted)
        #expect(
            BalanceCorrection.decide(difference, uom: "EA", wmsSequence: 7, key: settled, previous: [posted])
                == .publish(eventId: BalanceCorrection.eventId(for: difference, position: 7, generation: 1), sequence: 7, quantity: -2))
    }

    @Test("the event: an adjustment of source whsync-reconcile, valid on the wire")
    func event() throws {
        let event = try #require(BalanceCorrection.event(
            for: difference.key, quantity: -2, uom: "EA", eventId: "reconcile-x", sequence: 7,
            occurredAt: Timestamp(Date(timeIntervalSince1970: 0)), correlationId: "reconcile-x"))
        let decoded = try EventDecoder().decode(event.jsonValue.serializedBytes())
        #expect(decoded == event)
        guard case .inventory(let delta) = decoded else { Issue.record("not an inventory delta"); return }
        #expect(delta.reason == .adjustment && delta.quantity == -2 && delta.header.source == "whsync-reconcile")
        #expect(decoded.sequencingKey == "WH1/A" && decoded.sequence == 7)
    }

    @Test(
        "a key whose events are in flight, never posted, or behind the snapshot is left alone",
        arguments: [
            (KeyState?.none, Int64?.none, "no event of this warehouse/sku was posted yet"),
            (KeyState(nextExpected: 1), nil, "no event of this warehouse/sku was posted yet"),
            (KeyState(nextExpected: 8, held: [10: .init(eventId: "e10", heldAt: Date())]), nil, "the key has events in flight (sequence 10 held)"),
            (KeyState(nextExpected: 8, claim: .init(eventId: "e8", sequence: 8)), nil, "the key has events in flight (e8 being posted)"),
            (KeyState(nextExpected: 8, parked: .init(since: Date(), reason: .gapTimeout)), nil, "the key has events in flight (parked)"),
            (KeyState(nextExpected: 8), 9, "the workers applied sequence 7 of this key, the snapshot counts up to 9"),
        ])
    func refusesBusyKeys(key: KeyState?, wmsSequence: Int64?, reason: String) {
        guard case .refuse(let refusal) = BalanceCorrection.decide(difference, uom: "EA", wmsSequence: wmsSequence, key: key, previous: []) else {
            Issue.record("not refused")
            return
        }
        #expect(refusal.description.hasPrefix(reason), "\(refusal)")
    }

    @Test("an earlier correction in flight or dead-lettered blocks; an unpublished one of the same quantity is resumed")
    func earlierCorrections() {
        func decide(_ state: BalanceCorrection.Previous.State, quantity: Quantity = -2) -> BalanceCorrection.Decision {
            BalanceCorrection.decide(
                difference, uom: "EA", wmsSequence: nil, key: settled,
                previous: [.init(eventId: "reconcile-a", letterId: 4, quantity: quantity, state: state)])
        }
        #expect(decide(.inFlight) == .refuse(.previousInFlight(eventId: "reconcile-a")))
        #expect(decide(.deadLettered) == .refuse(.previousDeadLettered(eventId: "reconcile-a", letterId: 4)))
        #expect(decide(.unpublished) == .resume(letterId: 4, eventId: "reconcile-a"))
        #expect(decide(.unpublished, quantity: -3) == .refuse(.previousUnpublishedDiffers(eventId: "reconcile-a", letterId: 4)))
        // No unit: nothing to publish with.
        #expect(BalanceCorrection.decide(difference, uom: nil, wmsSequence: nil, key: settled, previous: []) == .refuse(.noUnit))
        let odd = BalanceReconciliation.Difference(key: .init(warehouse: "WH1", sku: "A", status: "lost"), expected: 0, actual: 1)
        #expect(BalanceCorrection.decide(odd, uom: "EA", wmsSequence: nil, key: settled, previous: []) == .refuse(.notCanonical("lost")))
    }
}
