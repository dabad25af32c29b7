import AMQPClient
import Foundation
import WarehouseSyncCore
import WarehouseSyncPublisher
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
    /// How to settle it with the broker; `nil` for a held message.
    let delivery: DeliveryHandle?

    init(delivery: AMQPDelivery, topology: Topology) {
        self.init(
            exchange: delivery.exchange, routingKey: delivery.routingKey, properties: delivery.properties, body: delivery.body,
            topology: topology, handle: .broker(delivery))
    }

    /// A delivery from anywhere (in-process tests hand their own `handle`).
    init(exchange: String, routingKey: String, properties: AMQPProperties, body: [UInt8], topology: Topology, handle: DeliveryHandle) {
        self.body = body
        originalExchange = exchange == topology.retry.requeueExchange ? topology.eventsExchange : exchange
        self.routingKey = routingKey
        self.properties = properties
        headers = properties.headers.compactMapValues(\.stringValue)
        delivery = handle
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

    /// The message as an ``EventJourney`` sees it.
    var envelope: EventJourney.Envelope { .init(routingKey: routingKey, headers: headers, body: body) }

    func ack() { delivery?.ack() }

    /// Gives the delivery back to the broker for another try (shutdown, store or broker trouble).
    func handBack() { delivery?.handBack() }

    /// The headers to republish with: ours and the WMS's, never the broker's `x-` headers
    /// (`x-death` from the retry queues; RabbitMQ 4 refuses client-set `x-` headers).
    private var republishedHeaders: AMQPTable {
        properties.headers.filter { !$0.key.hasPrefix(WireHeader.brokerPrefix) }
    }

    /// The copy for the retry exchange: back home after `tier`, as attempt `nextAttempt`.
    func retryCopy(stream: EventStream, tier: Topology.RetryTier, nextAttempt: Int, topology: Topology) -> OutboundMessage {
        var properties = properties
        properties.headers = republishedHeaders
        properties.headers[WireHeader.attempt] = .string(String(nextAttempt))
        properties.headers[WireHeader.stream] = .string(stream.rawValue)
        properties.headers[WireHeader.retryTier] = .string(tier.name)
        return OutboundMessage(
            exchange: topology.retry.exchange, routingKey: routingKey, body: body, properties: properties, mandatory: true)
    }

    /// The dead letter (DESIGN §5): the original body and properties with the `whsync-*` headers
    /// that say why, published to the dead-letter exchange under the original routing key.
    func deadLetter(_ letter: DeadLetterHeaders, topology: Topology) -> OutboundMessage {
        var properties = properties
        properties.headers = republishedHeaders
        properties.headers[WireHeader.retryTier] = nil
        properties.headers[WireHeader.stream] = nil
        for (name, value) in letter.headers(originalExchange: originalExchange, routingKey: routingKey) {
            properties.headers[name] = .string(value)
        }
        return OutboundMessage(
            exchange: topology.deadLetter.exchange, routingKey: routingKey, body: body, properties: properties, mandatory: true)
    }
}

/// How a delivery is settled with the broker: ack, or requeue for another try. A broker's
/// delivery is kept as it is (no closure to allocate per message); in-process tests settle
/// through their own closures.
enum DeliveryHandle: Sendable {
    case broker(AMQPDelivery)
    case recorded(ack: @Sendable () -> Void, handBack: @Sendable () -> Void)

    func ack() {
        switch self {
        case .broker(let delivery): delivery.ack()
        case .recorded(let ack, _): ack()
        }
    }

    func handBack() {
        switch self {
        case .broker(let delivery): delivery.nack(requeue: true)
        case .recorded(_, let handBack): handBack()
        }
    }
}

/// What the pipeline publishes through: dead letters and retry copies, each confirmed by the
/// broker (``AMQPConnection`` in confirm mode; in-process tests, a fake).
protocol ConfirmingPublisher: Sendable {
    func publish(_ messages: [OutboundMessage], deadline: ContinuousClock.Instant?) async -> [Result<Void, AMQPError>]
}

extension AMQPConnection: ConfirmingPublisher {}
