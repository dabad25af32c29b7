import Synchronization
import WarehouseSyncCore
import WarehouseSyncERP

/// How the pipeline's postings reach the ERP: one request each on the single routes (DESIGN §3),
/// or gathered into batch requests (§3a) when `ERP_BATCH_MAX` > 0.
///
/// The batcher adds no waiting: a posting goes out at once when fewer than
/// ``maxBatchesInFlight`` requests are on their way; otherwise it waits for the first of them to
/// be answered and leaves with everything that gathered meanwhile (at most `maxItems`, at most
/// one per sequencing key: a key's next posting goes in a later request). Under load the batches
/// fill; at a trickle each posting travels alone, as fast as on its single route.
final class PostingBatcher: Sendable {
    /// Batch requests on their way at once: one answered while the next fills keeps the ERP busy
    /// without splitting the load into many small requests.
    static let maxBatchesInFlight = 2

    private struct Waiting: Sendable {
        let document: PostingDocument
        let key: String
        let continuation: CheckedContinuation<ERPResponseClass, Never>
    }

    private struct State: Sendable {
        var waiting: [Waiting] = []
        var inFlight = 0

        /// The next batch: the oldest waiting postings, one per key, at most `maxItems`.
        mutating func takeBatch(maxItems: Int) -> [Waiting] {
            var batch: [Waiting] = []
            var keys: Set<String> = []
            var left: [Waiting] = []
            for posting in waiting {
                if batch.count < maxItems, keys.insert(posting.key).inserted {
                    batch.append(posting)
                } else {
                    left.append(posting)
                }
            }
            waiting = left
            return batch
        }
    }

    private let erp: any ERPClient
    private let maxItems: Int
    private let state = Mutex(State())

    /// `maxItems`: `ERP_BATCH_MAX`, 1…``PostingBatch/maxItems``.
    init(erp: any ERPClient, maxItems: Int) {
        self.erp = erp
        self.maxItems = min(max(1, maxItems), PostingBatch.maxItems)
    }

    /// Posts `document` (of sequencing key `key`) in the next batch and returns its own outcome.
    func post(_ document: PostingDocument, key: String) async -> ERPResponseClass {
        await withCheckedContinuation { continuation in
            let batch = state.withLock { state -> [Waiting]? in
                state.waiting.append(Waiting(document: document, key: key, continuation: continuation))
                guard state.inFlight < Self.maxBatchesInFlight else { return nil }
                state.inFlight += 1
                return state.takeBatch(maxItems: maxItems)
            }
            if let batch {
                Task { await send(batch) }
            }
        }
    }

    /// Sends `batch`, then each batch that gathered meanwhile, until none is waiting.
    private func send(_ first: [Waiting]) async {
        var batch = first
        while true {
            let outcomes = await erp.post(batch: PostingBatch(batch.map(\.document)))
            for (posting, outcome) in zip(batch, outcomes) { posting.continuation.resume(returning: outcome) }
            // An adapter that answered short: the missing items are transient, never lost.
            for posting in batch.dropFirst(outcomes.count) {
                posting.continuation.resume(returning: .transient(reason: .connectionFailed, retryAfter: nil))
            }
            let next = state.withLock { state -> [Waiting]? in
                guard !state.waiting.isEmpty else {
                    state.inFlight -= 1
                    return nil
                }
                return state.takeBatch(maxItems: maxItems)
            }
            guard let next else { return }
            batch = next
        }
    }
}
