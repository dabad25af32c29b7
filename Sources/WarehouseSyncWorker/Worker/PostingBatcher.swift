import Tracing
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncTracing

/// How the pipeline's postings reach the ERP: one request each on the single routes (DESIGN §3),
/// or gathered into batch requests (§3a) when `ERP_BATCH_MAX` > 0: a ``RoundGatherer`` with at
/// most one posting per sequencing key in a request.
///
/// A batch request carries many events' traces (docs/tracing.md): it is sent in the first item's
/// context, so its `traceparent` is that item's (its `post` span's, or its incoming one when no
/// tracer records), and, when a tracer records, its `post batch` span links every item's span.
final class PostingBatcher: Sendable {
    /// Batch requests on their way at once: one answered while the next fills keeps the ERP busy
    /// without splitting the load into many small requests.
    static let maxBatchesInFlight = 2

    /// A posting and the trace context of the event it is for.
    private struct Posting: Sendable {
        let document: PostingDocument
        let context: ServiceContext?
    }

    private let rounds: RoundGatherer<Posting, ERPResponseClass>

    /// `maxItems`: `ERP_BATCH_MAX`, 1…``PostingBatch/maxItems``.
    init(erp: any ERPClient, maxItems: Int) {
        rounds = RoundGatherer(
            maxInFlight: Self.maxBatchesInFlight, maxItems: min(maxItems, PostingBatch.maxItems),
            handle: { postings in
                let contexts = postings.compactMap(\.context)
                return await TraceSpans.run(
                    "post batch", context: contexts.first ?? .topLevel, kind: .client, links: Array(contexts.dropFirst())
                ) {
                    await erp.post(batch: PostingBatch(postings.map(\.document)))
                }
            },
            // An adapter that answered short: the missing items are transient, never lost.
            unanswered: { _ in .transient(reason: .connectionFailed, retryAfter: nil) })
    }

    /// Posts `document` (of sequencing key `key`) in the next batch and returns its own outcome.
    func post(_ document: PostingDocument, key: String) async -> ERPResponseClass {
        await rounds.submit(Posting(document: document, context: ServiceContext.current), tokens: [key])
    }
}
