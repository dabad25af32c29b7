import Synchronization
import Testing
import WarehouseSyncCore
import WarehouseSyncERP
@testable import WarehouseSyncWorker

/// ``PostingBatcher``'s own rules against an ERP port that records what it was sent: the batch
/// route's wire is tested against the real reference ERP in ERPBatchRouteTests.
@Suite("PostingBatcher")
struct PostingBatcherTests {
    /// Answers every item posted; records each batch's idempotency keys.
    final class RecordingERP: ERPClient {
        let batches = Mutex<[[String]]>([])
        let answerShort: Bool

        init(answerShort: Bool = false) { self.answerShort = answerShort }

        func post(_ document: PostingDocument) async -> ERPResponseClass { .posted(documentId: document.idempotencyKey) }
        func health() async -> Bool { true }
        func post(batch: PostingBatch) async -> [ERPResponseClass] {
            batches.withLock { $0.append(batch.documents.map(\.idempotencyKey)) }
            let outcomes = batch.documents.map { ERPResponseClass.posted(documentId: $0.idempotencyKey) }
            return answerShort ? Array(outcomes.dropLast()) : outcomes
        }
    }

    private func document(_ eventId: String, sku: String, sequence: Int64) throws -> PostingDocument {
        let body = #"{"schema":"inventory.delta/1","eventId":"\#(eventId)","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":\#(sequence),"sku":"\#(sku)","quantity":1,"uom":"EA","status":"available","reason":"adjustment"}"#
        return PostingDocument(event: try EventDecoder().decode(Array(body.utf8)))
    }

    @Test("every posting gets its own item's outcome; no request carries two items of one key")
    func onePerKey() async throws {
        let erp = RecordingERP()
        let batcher = PostingBatcher(erp: erp, maxItems: 10)
        // 60 postings over 6 keys at once (the pipeline never has two of one key in flight; the
        // batcher must not rely on that).
        let postings = try (0..<60).map { n in (try document("e\(n)", sku: "SKU-\(n % 6)", sequence: Int64(n / 6 + 1)), "WH1/SKU-\(n % 6)") }
        let outcomes = await withTaskGroup(of: (String, ERPResponseClass).self) { group in
            for (document, key) in postings {
                group.addTask { (document.idempotencyKey, await batcher.post(document, key: key)) }
            }
            return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        #expect(outcomes.count == 60)
        #expect(outcomes.allSatisfy { $0.value == .posted(documentId: $0.key) })
        let batches = erp.batches.withLock { $0 }
        #expect(batches.flatMap { $0 }.sorted() == postings.map(\.0.idempotencyKey).sorted())
        for batch in batches {
            #expect(batch.count <= 10)
            let keys = batch.map { id in postings.first { $0.0.idempotencyKey == id }!.1 }
            #expect(Set(keys).count == keys.count, "two items of one key in \(batch)")
        }
    }

    @Test("an adapter that answers short: the items without an outcome are transient, never lost")
    func answeredShort() async throws {
        let batcher = PostingBatcher(erp: RecordingERP(answerShort: true), maxItems: 10)
        let outcome = await batcher.post(try document("s1", sku: "SKU-1", sequence: 1), key: "WH1/SKU-1")
        #expect(outcome == .transient(reason: .connectionFailed, retryAfter: nil))
    }
}
