/// When a transiently failed posting is tried again, and when it has had enough
/// (`RETRY_MAX_ATTEMPTS`, DESIGN §9): the delays come from the topology's retry tiers, the last
/// tier repeating (``Topology/retryTier(forAttempt:)``).
public struct RetryPolicy: Sendable, Equatable {
    /// Posting attempts before the message is dead-lettered as `retries-exhausted`; ≥ 1.
    public let maxAttempts: Int
    private let topology: Topology

    /// `nil` when `maxAttempts` is below 1 (the caller names `RETRY_MAX_ATTEMPTS` in its error).
    public init?(maxAttempts: Int, topology: Topology) {
        guard maxAttempts >= 1 else { return nil }
        self.maxAttempts = maxAttempts
        self.topology = topology
    }

    /// The attempt a delivery is on, from its ``WireHeader/attempt`` value: absent means 1. A value
    /// that is not a positive integer also counts as 1: we write the header ourselves, so such a
    /// value was not ours, and counting low errs on the safe side (a retry is idempotent, a dead
    /// letter needs a person).
    public static func attempt(fromHeader value: String?) -> Int {
        guard let value, let attempt = Int(value), attempt >= 1 else { return 1 }
        return attempt
    }

    /// What to do after posting attempt `attempt` failed transiently. `retryAfter` is the ERP's
    /// `Retry-After`: when it is longer than the attempt's tier, the first tier at least that
    /// long is used (or the last tier, the longest we have).
    public func decide(afterFailedAttempt attempt: Int, retryAfter: Duration?) -> RetryDecision {
        guard attempt < maxAttempts else { return .exhausted }
        var tier = topology.retryTier(forAttempt: attempt)
        if let retryAfter, retryAfter > tier.delay {
            let tiers = topology.retry.tiers
            tier = tiers.first { $0.delay >= retryAfter } ?? tiers[tiers.count - 1]
        }
        return .retry(tier: tier, nextAttempt: attempt + 1)
    }

    /// The sum of the delays between the first and the last attempt (without `Retry-After`
    /// stretching them): how long a key may wait for its event in turn before that event is
    /// dead-lettered. `GAP_TIMEOUT` should be longer, or such waits park the key.
    public var totalRetryDelay: Duration {
        let tiers = topology.retry.tiers
        let retries = maxAttempts - 1
        let listed = tiers.prefix(retries).reduce(Duration.zero) { $0 + $1.delay }
        return listed + tiers[tiers.count - 1].delay * max(0, retries - tiers.count)
    }
}

/// The outcome of ``RetryPolicy/decide(afterFailedAttempt:retryAfter:)``.
public enum RetryDecision: Sendable, Hashable {
    /// Publish to the retry exchange for `tier`, with ``WireHeader/attempt`` set to
    /// `nextAttempt`.
    case retry(tier: Topology.RetryTier, nextAttempt: Int)
    /// The last attempt failed: dead-letter as `retries-exhausted`.
    case exhausted
}
