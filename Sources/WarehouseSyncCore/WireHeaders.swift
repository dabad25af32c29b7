import Foundation

/// Every message header WarehouseSync names on the wire, in one place (DESIGN §2, §4, §5, §6).
public enum WireHeader {
    /// The sequencing key, set by publishers (DESIGN §2); the consistent-hash exchange of
    /// partitioned streams routes on it.
    public static let partitionKey = "partition-key"

    /// The prefix of WarehouseSync's own headers. A WMS may not send them (the gateway refuses
    /// them); the workers trust them no further than the store vouches for them.
    public static let ownPrefix = "whsync-"
    /// The posting attempt a delivery is (1 when absent); counted by us, never in `x-` headers,
    /// which RabbitMQ 4 owns (DESIGN §4).
    public static let attempt = "whsync-attempt"
    /// A replay of a dead letter: the letter's id (DESIGN §6).
    public static let replayOf = "whsync-replay-of"
    /// On a retry copy: the stream it comes home to.
    public static let stream = "whsync-stream"
    /// On a retry copy: the tier it waits in.
    public static let retryTier = "whsync-retry-tier"
    /// When the event was last published to the events exchange (RFC 3339, milliseconds), set by
    /// our publishers (`whsync publish`, wms-gateway, the publisher library, a replay): the start
    /// of the workers' publish-to-posted latency (docs/operations-endpoints.md). Carried through
    /// retries and holds unchanged; a replay sets it anew.
    public static let publishedAt = "whsync-published-at"

    /// What a dead letter says about itself (DESIGN §5; ``DeadLetterHeaders``).
    public static let reason = "whsync-reason"
    public static let error = "whsync-error"
    public static let originalExchange = "whsync-original-exchange"
    public static let originalRoutingKey = "whsync-original-routing-key"
    public static let worker = "whsync-worker"
    public static let failedAt = "whsync-failed-at"

    /// The broker's record of a message's dead-letterings (a letter past the delivery limit).
    public static let death = "x-death"
    /// The prefix of the broker's headers: never republished (RabbitMQ 4 refuses client-set ones).
    public static let brokerPrefix = "x-"
}

/// What a dead letter says about itself: the `whsync-*` headers of DESIGN §5.
public struct DeadLetterHeaders: Sendable, Hashable {
    /// `whsync-error` is short and bounded: never a stack trace, never a payload.
    public static let maxErrorLength = 512

    /// Every header a worker puts on a dead letter, the attempt included.
    public static let names: Set<String> = [
        WireHeader.reason, WireHeader.error, WireHeader.originalExchange, WireHeader.originalRoutingKey, WireHeader.worker,
        WireHeader.failedAt, WireHeader.attempt,
    ]

    public var reason: DeadLetterReason
    public var error: String
    public var worker: String
    public var failedAt: Date
    public var attempt: Int

    public init(reason: DeadLetterReason, error: String, worker: String, failedAt: Date, attempt: Int) {
        self.reason = reason
        self.error = error
        self.worker = worker
        self.failedAt = failedAt
        self.attempt = attempt
    }

    public func headers(originalExchange: String, routingKey: String) -> [String: String] {
        let bounded = error.count > Self.maxErrorLength ? String(error.prefix(Self.maxErrorLength - 1)) + "…" : error
        return [
            WireHeader.reason: reason.rawValue,
            WireHeader.error: bounded,
            WireHeader.originalExchange: originalExchange,
            WireHeader.originalRoutingKey: routingKey,
            WireHeader.worker: worker,
            WireHeader.failedAt: Timestamp(failedAt).text,
            WireHeader.attempt: String(attempt),
        ]
    }
}
