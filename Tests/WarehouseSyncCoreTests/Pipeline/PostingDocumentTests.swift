import Testing
import WarehouseSyncCore

@Suite("PostingDocument")
struct PostingDocumentTests {
    @Test("an inventory delta becomes an inventory movement with exact, canonical quantities")
    func inventoryMovement() {
        let event = PipelineFixtures.decode(
            #"{"schema":"inventory.delta/1","eventId":"evt-9","occurredAt":"2024-05-01T10:30:00+02:00","warehouse":"WH1","sequence":12,"correlationId":"c-1","source":"wms","sku":"SKU-1","quantity":"-1.50","uom":"EA","status":"QC","reason":"adjustment","lot":"L-7"}"#
        )
        let document = PostingDocument(event: event)
        #expect(document.endpoint == .inventoryMovements)
        #expect(document.endpoint.path == "/inventory-movements")
        #expect(document.idempotencyKey == "evt-9")
        #expect(document.correlationId == "c-1")
        #expect(
            document.body.serialized()
                == #"{"eventId":"evt-9","sequence":12,"warehouse":"WH1","occurredAt":"2024-05-01T10:30:00+02:00","correlationId":"c-1","sku":"SKU-1","quantity":-1.5,"uom":"EA","status":"quality-hold","reason":"adjustment","lot":"L-7"}"#
        )
    }

    @Test("a shipped shipment is a goods issue with its lines; without a correlation id none is written")
    func goodsIssue() {
        let event = PipelineFixtures.decode(
            #"{"schema":"shipment.event/1","eventId":"s-2","occurredAt":"2024-05-02T16:45:10.5Z","warehouse":"WH1","sequence":2,"shipmentId":"SHP-100","orderRef":"SO-5000","status":"shipped","lines":[{"sku":"SKU-1","quantity":2,"uom":"EA"},{"sku":"SKU-2","quantity":"1.250","uom":"KG","lot":"L-9"}],"carrier":"DHL","trackingNumber":"JD0001"}"#
        )
        let document = PostingDocument(event: event)
        #expect(document.endpoint == .goodsIssues)
        #expect(document.correlationId == nil)
        #expect(
            document.body.serialized()
                == #"{"eventId":"s-2","sequence":2,"warehouse":"WH1","occurredAt":"2024-05-02T16:45:10.5Z","shipmentId":"SHP-100","orderRef":"SO-5000","status":"shipped","carrier":"DHL","trackingNumber":"JD0001","lines":[{"sku":"SKU-1","quantity":2,"uom":"EA"},{"sku":"SKU-2","quantity":1.25,"uom":"KG","lot":"L-9"}]}"#
        )
    }

    @Test("every other shipment status goes to shipment-status, in canonical form", arguments: [
        ("packed", "packed"), ("DELIVERED", "delivered"), ("cancelled", "cancelled"),
    ])
    func shipmentStatus(wmsStatus: String, canonical: String) {
        let event = PipelineFixtures.decode(
            #"{"schema":"shipment.event/1","eventId":"s-1","occurredAt":"2024-05-02T14:00:00Z","warehouse":"WH1","sequence":1,"shipmentId":"SHP-100","orderRef":"SO-5000","status":"\#(wmsStatus)"}"#
        )
        let document = PostingDocument(event: event)
        #expect(document.endpoint == .shipmentStatus)
        #expect(document.body["status"] == .string(canonical))
        #expect(document.body["lines"] == .array([]))
    }

    @Test("a receipt is a goods receipt that flags each discrepancy and its size")
    func goodsReceipt() {
        let event = PipelineFixtures.decode(
            #"{"schema":"receipt.event/1","eventId":"r-1","occurredAt":"2024-05-03T07:15:00Z","warehouse":"WH1","sequence":1,"correlationId":"c-r","receiptId":"RCP-1","purchaseOrderRef":"PO-77","supplier":"Acme","status":"received","lines":[{"sku":"A","quantityExpected":10,"quantityReceived":9.5,"uom":"EA"},{"sku":"B","quantityExpected":"2.0","quantityReceived":2,"uom":"EA","lot":"L1"}]}"#
        )
        let document = PostingDocument(event: event)
        #expect(document.endpoint == .goodsReceipts)
        #expect(
            document.body.serialized()
                == #"{"eventId":"r-1","sequence":1,"warehouse":"WH1","occurredAt":"2024-05-03T07:15:00Z","correlationId":"c-r","receiptId":"RCP-1","purchaseOrderRef":"PO-77","supplier":"Acme","status":"received","hasDiscrepancy":true,"lines":[{"sku":"A","quantityExpected":10,"quantityReceived":9.5,"uom":"EA","discrepancy":true,"discrepancyQuantity":-0.5},{"sku":"B","quantityExpected":2,"quantityReceived":2,"uom":"EA","lot":"L1","discrepancy":false,"discrepancyQuantity":0}]}"#
        )
    }

    @Test("a receipt without discrepancies says so")
    func receiptWithoutDiscrepancy() {
        let event = PipelineFixtures.decode(
            #"{"schema":"receipt.event/1","eventId":"r-2","occurredAt":"2024-05-03T07:15:00Z","warehouse":"WH1","sequence":2,"receiptId":"RCP-1","purchaseOrderRef":"PO-77","supplier":"Acme","status":"putaway-complete","lines":[{"sku":"A","quantityExpected":3,"quantityReceived":3,"uom":"EA"}]}"#
        )
        let body = PostingDocument(event: event).body
        #expect(body["hasDiscrepancy"] == .bool(false))
        #expect(body["status"] == .string("putaway-complete"))
    }

    @Test("the same event written differently gives the same document body")
    func formIndependent() {
        let quantity = Quantity(parsing: "2.5")!
        let compact = PostingDocument(event: PipelineFixtures.inventory(quantity: quantity, variant: 0))
        let resent = PostingDocument(event: PipelineFixtures.inventory(quantity: quantity, variant: 1))
        #expect(compact.body["quantity"] == resent.body["quantity"])
        #expect(compact.body["quantity"] == .number("2.5"))
    }
}
