import WarehouseSyncCore
import WarehouseSyncERP

/// How the pipeline's postings reach the ERP: one request each on the single routes (DESIGN §3),
/// or gathered into batch requests (§3a) when `ERP_BATCH_MAX` > 0: a ``RoundGatherer`` with at
/// most one posting per sequencing key in a request.
final class PostingBatcher: Sendable {
    /// Batch requests on their way at once: one answered while the next fills keeps the ERP busy
    /// without splitting the load into many small requests.
    static let maxBatchesInFlight = 2

    private let rounds: RoundGatherer<PostingDocument, ERPResponseClass>

    /// `maxItems`: `ERP_BATCH_MAX`, 1…``PostingBatch/maxItems``.
    init(erp: any ERPClient, maxItems: Int) {
        rounds = RoundGatherer(
            maxInFlight: Self.maxBatchesInFlight, maxItems: min(maxItems, PostingBatch.maxItems),
            handle: { documents in await erp.post(batch: PostingBatch(documents)) },
            // An adapter that answered short: the missing items are transient, never lost.
            unanswered: { _ in .transient(reason: .connectionFailed, retryAfter: nil) })
    }

    /// Posts `document` (of sequencing key `key`) in the next batch and returns its own outcome.
    func post(_ document: PostingDocument, key: String) async -> ERPResponseClass {
        await rounds.submit(document, tokens: [key])
    }
}
