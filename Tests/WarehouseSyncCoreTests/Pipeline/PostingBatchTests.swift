import Foundation
import Testing
import WarehouseSyncCore

/// The batch route's envelope and the reading of its answer (DESIGN §3a).
@Suite("PostingBatch")
struct PostingBatchTests {
    let now = PipelineFixtures.time(0)
    let batch = PostingBatch((1...4).map { PostingDocument(event: PipelineFixtures.inventory(eventId: "e\($0)", sku: "SKU-\($0)")) })

    private func answer(_ results: String) -> [UInt8] { Array(#"{"results":[\#(results)]}"#.utf8) }

    @Test("the envelope carries each item's kind, idempotency key, correlation id and its single route's body")
    func envelope() throws {
        let items = try #require(batch.body["items"]?.arrayValue)
        #expect(items.count == 4)
        #expect(items[0]["kind"] == .string("inventory-movement"))
        #expect(items[0]["idempotencyKey"] == .string("e1"))
        #expect(items[0]["correlationId"] == .string("corr-e1"))
        #expect(items[0]["document"] == batch.documents[0].body)
        #expect(ERPEndpoint.allCases.map(\.batchKind) == ["inventory-movement", "goods-issue", "shipment-status", "goods-receipt"])
    }

    @Test("each result is classified as its status on the single route, in any order")
    func mixedResults() {
        let outcomes = batch.classify(
            status: 200, retryAfter: nil,
            body: answer(#"""
                {"index":2,"idempotencyKey":"e3","status":422,"error":"unknown-sku","message":"sku: unknown SKU 'SKU-3'"},
                {"index":0,"idempotencyKey":"e1","status":201,"documentId":"IM-1"},
                {"index":3,"idempotencyKey":"e4","status":503,"retryAfter":7},
                {"index":1,"idempotencyKey":"e2","status":409,"error":"duplicate","documentId":"IM-0"}
                """#),
            now: now)
        #expect(outcomes == [
            .posted(documentId: "IM-1"), .alreadyPosted, .rejected(status: 422, message: "sku: unknown SKU 'SKU-3'"),
            .transient(reason: .status(503), retryAfter: .seconds(7)),
        ])
    }

    @Test("an item without exactly one valid result is a misanswer, the others stand")
    func missingOrDuplicatedResults() {
        let outcomes = batch.classify(
            status: 200, retryAfter: nil,
            body: answer(#"""
                {"index":0,"idempotencyKey":"e1","status":201,"documentId":"IM-1"},
                {"index":1,"idempotencyKey":"e2","status":201,"documentId":"IM-2"},
                {"index":1,"idempotencyKey":"e2","status":201,"documentId":"IM-2b"},
                {"index":2,"idempotencyKey":"not-e3","status":201,"documentId":"IM-3"},
                {"index":9,"idempotencyKey":"e4","status":201,"documentId":"IM-9"},
                {"index":3,"idempotencyKey":"e4","status":201}
                """#),
            now: now)
        let missing = ERPResponseClass.transient(reason: .misanswered(status: 200, .noBatchResult), retryAfter: nil)
        #expect(outcomes[0] == .posted(documentId: "IM-1"))
        #expect(outcomes[1] == missing)  // two results for one item
        #expect(outcomes[2] == missing)  // a result naming another key
        // A 2xx result without a documentId is not the ERP speaking, as on the single route.
        #expect(outcomes[3] == .transient(reason: .misanswered(status: 201, .noDocumentId), retryAfter: nil))
        #expect(outcomes.allSatisfy { $0 != .alreadyPosted })
    }

    @Test("an envelope that is not a batch answer makes every item transient, never posted or rejected")
    func envelopeFailures() {
        let html = Array("<html>Gateway</html>".utf8)
        let down = batch.classify(status: 503, retryAfter: "12", body: Array(#"{"error":"down"}"#.utf8), now: now)
        #expect(down == Array(repeating: .transient(reason: .status(503), retryAfter: .seconds(12)), count: 4))
        let wrongURL = batch.classify(status: 404, retryAfter: nil, body: html, now: now)
        #expect(wrongURL == Array(repeating: .transient(reason: .misanswered(status: 404, .notFound), retryAfter: nil), count: 4))
        let proxyPage = batch.classify(status: 200, retryAfter: nil, body: html, now: now)
        #expect(proxyPage == Array(repeating: .transient(reason: .misanswered(status: 200, .noBatchResult), retryAfter: nil), count: 4))
        // A 400 for the whole envelope (it judged the request malformed) rejects no item.
        let refused = batch.classify(status: 400, retryAfter: nil, body: Array(#"{"error":"invalid-document"}"#.utf8), now: now)
        #expect(refused == Array(repeating: .transient(reason: .misanswered(status: 400, .noBatchResult), retryAfter: nil), count: 4))
        #expect(refused.allSatisfy { if case .transient(let reason, _) = $0 { reason.isSystemic } else { false } })
    }
}
