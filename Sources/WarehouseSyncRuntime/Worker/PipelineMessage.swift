import AMQPClient
import Foundation
import WarehouseSyncCore
import WarehouseSyncStore

/// A message the pipeline works on: a delivery from the work queue, or a held message the store
/// released. Only a delivery has something to settle with the broker.
struct PipelineMessage: Sendable {
    let body: [UInt8]
    /// Where the WMS published it (a retried delivery arrives through the requeue exchange, but
    /// its origin is still the events exchange).
    let originalExchange: String
    let routingKey: String
    let properties: AMQPProperties
    /// The string-valued headers: what the pipeline reads (`whsync-attempt`, `whsync-replay-of`)
    /// and what a held message keeps.
    let headers: [String: String]
    let delivery: AMQPDelivery?

    init(delivery: AMQPDelivery, topology: Topology) {
        body = delivery.body
        originalExchange = delivery.exchange == topology.retry.requeueExchange ? topology.eventsExchange : delivery.exchange
        routingKey = delivery.routingKey
        properties = delivery.properties
        headers = delivery.properties.headers.compactMapValues(\.stringValue)
        self.delivery = delivery
    }

    /// A held message: it was acked when it was held, so there is no delivery. Its properties
    /// are those of the contract (DESIGN §2) for its event, its headers those it was held with.
    init(held: HeldMessage, event: WarehouseEvent?, topology: Topology) {
        body = held.body
        originalExchange = topology.eventsExchange
        routingKey = held.routingKey
        var properties = event.map { OutboundMessage(event: $0, body: []).properties } ?? AMQPProperties()
        for (name, value) in held.headers { properties.headers[name] = .string(value) }
        self.properties = properties
        headers = held.headers
        delivery = nil
    }

    var attempt: Int { RetryPolicy.attempt(fromHeader: headers[RetryPolicy.attemptHeader]) }
    /// The dead letter this message claims to replay (`whsync-replay-of`); the pipeline believes
    /// it only when the store holds that letter for the event (``WorkerPipeline``).
    var claimedReplayOf: String? { headers[IncomingEvent.replayHeader] }

    func ack() { delivery?.ack() }

    /// Gives the delivery back to the broker for another try (shutdown, store or broker trouble).
    func handBack() { delivery?.nack(requeue: true) }

    /// The headers to republish with: ours and the WMS's, never the broker's `x-` headers
    /// (`x-death` from the retry queues; RabbitMQ 4 refuses client-set `x-` headers).
    private var republishedHeaders: AMQPTable {
        properties.headers.filter { !$0.key.hasPrefix("x-") }
    }

    /// The copy for the retry exchange: back home after `tier`, as attempt `nextAttempt`.
    func retryCopy(stream: EventStream, tier: Topology.RetryTier, nextAttempt: Int, topology: Topology) -> OutboundMessage {
        var properties = properties
        properties.headers = republishedHeaders
        properties.headers[RetryPolicy.attemptHeader] = .string(String(nextAttempt))
        properties.headers[Topology.streamHeader] = .string(stream.rawValue)
        properties.headers[Topology.retryTierHeader] = .string(tier.name)
        return OutboundMessage(
            exchange: topology.retry.exchange, routingKey: routingKey, body: body, properties: properties, mandatory: true)
    }

    /// The dead letter (DESIGN §5): the original body and properties with the `whsync-*` headers
    /// that say why, published to the dead-letter exchange under the original routing key.
    func deadLetter(_ letter: DeadLetterHeaders, topology: Topology) -> OutboundMessage {
        var properties = properties
        properties.headers = republishedHeaders
        properties.headers[Topology.retryTierHeader] = nil
        properties.headers[Topology.streamHeader] = nil
        for (name, value) in letter.headers(originalExchange: originalExchange, routingKey: routingKey) {
            properties.headers[name] = .string(value)
        }
        return OutboundMessage(
            exchange: topology.deadLetter.exchange, routingKey: routingKey, body: body, properties: properties, mandatory: true)
    }
}

/// What a dead letter says about itself: the `whsync-*` headers of DESIGN §5.
public struct DeadLetterHeaders: Sendable, Hashable {
    public enum Name {
        public static let reason = "whsync-reason"
        public static let error = "whsync-error"
        public static let originalExchange = "whsync-original-exchange"
        public static let originalRoutingKey = "whsync-original-routing-key"
        public static let worker = "whsync-worker"
        public static let failedAt = "whsync-failed-at"
    }

    /// `whsync-error` is short and bounded: never a stack trace, never a payload.
    public static let maxErrorLength = 512

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
            Name.reason: reason.rawValue,
            Name.error: bounded,
            Name.originalExchange: originalExchange,
            Name.originalRoutingKey: routingKey,
            Name.worker: worker,
            Name.failedAt: Timestamp(failedAt).text,
            RetryPolicy.attemptHeader: String(attempt),
        ]
    }
}
