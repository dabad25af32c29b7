import Foundation
import Testing
import WarehouseSyncCore

@testable import ReferenceERP

/// The adapter's side of DESIGN §3 (`PostingDocument`, in the core) against the ERP's side: every
/// document the workers build from valid events is accepted as it is.
@Suite("Reference ERP: the core's posting documents")
struct ERPContractTests {
    static let events = [
        #"{"schema":"inventory.delta/1","eventId":"inv-1","occurredAt":"2024-05-01T10:30:00+02:00","warehouse":"WH1","sequence":1,"correlationId":"c-1","source":"wms","sku":"SKU-0001","quantity":"5.000001","uom":"EA","status":"QC","reason":"adjustment","lot":"L-7","location":"A-01"}"#,
        #"{"schema":"shipment.event/1","eventId":"shp-1","occurredAt":"2024-05-02T16:45:10.5Z","warehouse":"WH1","sequence":1,"shipmentId":"SHP-100","orderRef":"SO-5000","status":"packed","lines":[{"sku":"SKU-0001","quantity":2,"uom":"EA"}]}"#,
        #"{"schema":"shipment.event/1","eventId":"shp-2","occurredAt":"2024-05-02T16:45:10.5Z","warehouse":"WH1","sequence":2,"shipmentId":"SHP-100","orderRef":"SO-5000","status":"shipped","lines":[{"sku":"SKU-0001","quantity":2,"uom":"EA"},{"sku":"SKU-0005","quantity":"1.250","uom":"KG","lot":"L-9"}],"carrier":"DHL","trackingNumber":"JD0001"}"#,
        #"{"schema":"receipt.event/1","eventId":"rcv-1","occurredAt":"2024-05-03T08:00:00Z","warehouse":"WH2","sequence":1,"receiptId":"RCV-1","purchaseOrderRef":"PO-1","supplier":"ACME","status":"received","lines":[{"sku":"SKU-0001","quantityExpected":10,"quantityReceived":9.5,"uom":"EA"}]}"#,
    ]

    @Test("documents built by PostingDocument are posted, and their repeats answered 409")
    func coreDocuments() async throws {
        let decoder = EventDecoder()
        let documents = try Self.events.map { PostingDocument(event: try decoder.decode(Array($0.utf8))) }
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                for document in documents {
                    let type = try #require(DocumentType.allCases.first { $0.path == document.endpoint.path })
                    let response = try await erp.post(
                        type, document.body, key: document.idempotencyKey, correlationId: document.correlationId)
                    #expect(response.status == 201, "\(document.endpoint): \(response.text)")
                    let again = try await erp.post(type, document.body, key: document.idempotencyKey)
                    #expect(again.status == 409)
                    #expect(again.json["payloadMatches"] == .bool(true))
                }
                #expect(try await erp.balance("WH1", "SKU-0001", status: "quality-hold") == "5.000001")
                #expect(try await erp.balance("WH1", "SKU-0001") == "-2")
                #expect(try await erp.balance("WH1", "SKU-0005") == "-1.25")
                #expect(try await erp.balance("WH2", "SKU-0001") == "9.5")
                let receipts = try await erp.documents("type=goods-receipt")
                #expect(receipts.first?["hasDiscrepancy"] == .bool(true))
                #expect(receipts.first?["lines"]?.arrayValue?.first?["discrepancyQuantity"]?.numberLiteral == "-0.5")
            }
        }
    }
}
