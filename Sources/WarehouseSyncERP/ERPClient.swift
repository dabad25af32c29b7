import WarehouseSyncCore

/// The one way the pipeline talks to the ERP (DESIGN §3).
///
/// Neither call throws for a problem on the ERP's side: every answer, timeout and connection
/// error of ``post(_:)`` is an ``ERPResponseClass`` the core turns into a disposition, and
/// ``health()`` is the circuit breaker's probe.
public protocol ERPClient: Sendable {
    /// POSTs `document` to its endpoint and classifies the outcome.
    func post(_ document: PostingDocument) async -> ERPResponseClass
    /// Posts `batch` as one request of the batch route (DESIGN §3a) and classifies each item's
    /// outcome, in the batch's order. The pipeline calls it only when `ERP_BATCH_MAX` > 0, with
    /// at most one item per sequencing key.
    func post(batch: PostingBatch) async -> [ERPResponseClass]
    /// `true` when `GET /health` answers 2xx in time.
    func health() async -> Bool
}

extension ERPClient {
    /// For an adapter without a batch route: the items one after the other on their single routes.
    public func post(batch: PostingBatch) async -> [ERPResponseClass] {
        var outcomes: [ERPResponseClass] = []
        for document in batch.documents { outcomes.append(await post(document)) }
        return outcomes
    }
}
