import WarehouseSyncCore

/// The one way the pipeline talks to the ERP (DESIGN §3).
///
/// Neither call throws for a problem on the ERP's side: every answer, timeout and connection
/// error of ``post(_:)`` is an ``ERPResponseClass`` the core turns into a disposition, and
/// ``health()`` is the circuit breaker's probe.
public protocol ERPClient: Sendable {
    /// POSTs `document` to its endpoint and classifies the outcome.
    func post(_ document: PostingDocument) async -> ERPResponseClass
    /// `true` when `GET /health` answers 2xx in time.
    func health() async -> Bool
}
