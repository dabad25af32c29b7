import Foundation

/// The broker topology as declared in `topology/topology.json`, validated, with the concrete
/// ``plan`` of exchanges, queues and bindings derived from it.
///
/// A value of this type is always valid: it is made only by parsing a document (see
/// `Topology+Parsing.swift`). The runtime declares ``plan`` over AMQP and compares it with the
/// broker for `verify`; ``TopologyPlan/definitions(vhost:rabbitVersion:)`` exports it.
public struct Topology: Sendable, Equatable {
    /// The streams, in the order everything derived from them is listed.
    public static let streamNames: [String] = ["inventory", "shipment", "receipt"]
    /// `x-delivery-limit` when the file sets none. Explicit because RabbitMQ 3.x has no limit by
    /// default and 4.x defaults to 20: the same file must mean the same on both.
    public static let defaultDeliveryLimit = 20
    /// Partition counts allowed besides 0 (one unpartitioned queue).
    public static let partitionCountRange = 2...64
    /// How many retry tiers a file may list.
    public static let retryTierCountRange = 1...10
    /// The shortest retry delay: below it a retry is a hot loop, not a delay.
    public static let minimumRetryDelay: Duration = .milliseconds(100)
    /// Where the CLI looks for the file, relative to the repository root.
    public static let defaultRelativePath = "topology/topology.json"


    /// One event stream's consuming side.
    public struct Stream: Sendable, Equatable {
        /// `inventory`, `shipment` or `receipt`: the first word of the routing key.
        public let name: String
        /// The work queue, or with partitions the stem of the partition queues' names.
        public let queue: String
        /// 0 for one queue; N ≥ 2 for N partition queues behind a consistent-hash exchange.
        public let partitions: Int
        /// `x-delivery-limit` of the work queue(s).
        public let deliveryLimit: Int

        public var isPartitioned: Bool { partitions > 0 }

        /// The routing-key pattern that selects this stream's events (`inventory.*`).
        public var routingKeyPattern: String { "\(name).*" }

        /// The consistent-hash exchange in front of the partition queues, when partitioned.
        public var partitionExchange: String? { isPartitioned ? "\(queue).partitions" : nil }

        /// The queues a worker of this stream consumes: `[queue]`, or `queue.p0`…`queue.p(N-1)`.
        public var workQueues: [String] {
            isPartitioned ? (0..<partitions).map { "\(queue).p\($0)" } : [queue]
        }
    }

    /// One delayed-retry step: a TTL queue per stream that holds a message for ``delay``.
    public struct RetryTier: Sendable, Hashable {
        /// The canonical duration text (``DurationParser/format(_:)``): the value of the
        /// `whsync-retry-tier` header and the last part of the retry queues' names.
        public let name: String
        public let delay: Duration

        /// ``delay`` in milliseconds, as `x-message-ttl` takes it.
        public var milliseconds: Int64 { DurationParser.wholeMilliseconds(delay) }

        init(delay: Duration) {
            self.delay = delay
            self.name = DurationParser.format(delay)
        }
    }

    public struct Retry: Sendable, Equatable {
        /// The headers exchange workers publish retries to.
        public let exchange: String
        /// The topic exchange the TTL queues dead-letter into, bound to the work queues only.
        public let requeueExchange: String
        /// Strictly increasing; the last repeats for attempts beyond the list.
        public let tiers: [RetryTier]
    }

    public struct DeadLetter: Sendable, Equatable {
        public let exchange: String
        public let queue: String
    }

    /// The exchange the WMS publishes to (`wms.events`).
    public let eventsExchange: String
    /// The file's default `x-delivery-limit`; each ``Stream`` carries the one in force for it.
    public let deliveryLimit: Int
    /// One per name in ``streamNames``, in that order.
    public let streams: [Stream]
    public let retry: Retry
    public let deadLetter: DeadLetter
    /// The broker users of the roles and their permissions, sorted by name (empty when the file
    /// declares none). See ``BrokerUser``.
    public let users: [BrokerUser]
    /// What to declare.
    public let plan: TopologyPlan

    init(
        eventsExchange: String, deliveryLimit: Int, streams: [Stream], retry: Retry, deadLetter: DeadLetter,
        users: [BrokerUser] = []
    ) {
        self.users = users
        self.eventsExchange = eventsExchange
        self.deliveryLimit = deliveryLimit
        self.streams = streams
        self.retry = retry
        self.deadLetter = deadLetter
        self.plan = Self.makePlan(
            eventsExchange: eventsExchange,
            streams: streams,
            retry: retry,
            deadLetter: deadLetter
        )
    }

    /// The stream called `name` (`inventory`, `shipment`, `receipt`), if there is one.
    public func stream(named name: String) -> Stream? {
        streams.first { $0.name == name }
    }

    /// The queues a worker of `stream` consumes; empty for a name that is not a stream.
    /// Pass `EventStream.rawValue`.
    public func workQueues(for stream: String) -> [String] {
        self.stream(named: stream)?.workQueues ?? []
    }

    /// The delay before posting attempt `attempt + 1`, after attempt `attempt` failed
    /// transiently: attempt 1 → the first tier, 2 → the second…, the last tier repeating.
    /// Attempts below 1 count as 1.
    public func retryTier(forAttempt attempt: Int) -> RetryTier {
        let tiers = retry.tiers
        return tiers[min(max(attempt, 1), tiers.count) - 1]
    }

    /// The TTL queue that holds `stream`'s messages for `tier`: `whsync.retry.inventory.5s`.
    public func retryQueue(stream: String, tier: RetryTier) -> String {
        Self.retryQueueName(retryExchange: retry.exchange, stream: stream, tier: tier)
    }

    /// The headers a retried message must carry, beside its own, when published to
    /// ``Retry/exchange`` (keep its original routing key: that routes it home afterwards).
    public func retryHeaders(stream: String, forAttempt attempt: Int) -> [String: String] {
        [WireHeader.stream: stream, WireHeader.retryTier: retryTier(forAttempt: attempt).name]
    }
}
