/// Why a message went to the dead-letter queue: the closed set of `whsync-reason` header values
/// (DESIGN §5, §6) that `whsync dlq list --reason` filters on and the replay policy keys on.
///
/// The raw value is the wire string (`erp-rejected`); it is persisted and scripted against, so it
/// never changes.
public enum DeadLetterReason: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// Malformed JSON, a schema violation or a routing key that does not match the body.
    case invalid
    /// The `eventId` was seen before with another payload (or its sequence is held for another
    /// event).
    case conflict
    /// The ERP rejected the posting (400, 404, 422); its message is kept.
    case erpRejected = "erp-rejected"
    /// Transient ERP failures on every one of the `RETRY_MAX_ATTEMPTS` posting attempts.
    case retriesExhausted = "retries-exhausted"
    /// The key waited longer than `GAP_TIMEOUT` for a missing sequence.
    case gapTimeout = "gap-timeout"
    /// Dead-lettered by the broker itself after `x-delivery-limit` deliveries (a worker crashed
    /// on the message again and again); such a letter has no `whsync-*` headers.
    case deliveryLimit = "delivery-limit"
    /// Not a failure: a correction `whsync reconcile --correct` stored to publish it as a vouched
    /// replay (docs/reconciliation.md). Never replayed automatically.
    case reconciliation

    public var description: String { rawValue }
}
