import CRabbitMQ

/// The basic.properties of a message. `nil` fields are not sent.
public struct AMQPProperties: Sendable, Equatable {
    public enum DeliveryMode: UInt8, Sendable {
        case transient = 1
        case persistent = 2
    }

    public var contentType: String?
    public var contentEncoding: String?
    public var headers: AMQPTable
    public var deliveryMode: DeliveryMode?
    public var priority: UInt8?
    public var correlationId: String?
    public var replyTo: String?
    public var expiration: String?
    public var messageId: String?
    /// Seconds since the Unix epoch.
    public var timestamp: UInt64?
    public var type: String?
    public var userId: String?
    public var appId: String?

    public init(
        contentType: String? = nil,
        contentEncoding: String? = nil,
        headers: AMQPTable = [:],
        deliveryMode: DeliveryMode? = nil,
        priority: UInt8? = nil,
        correlationId: String? = nil,
        replyTo: String? = nil,
        expiration: String? = nil,
        messageId: String? = nil,
        timestamp: UInt64? = nil,
        type: String? = nil,
        userId: String? = nil,
        appId: String? = nil
    ) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationId = correlationId
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageId = messageId
        self.timestamp = timestamp
        self.type = type
        self.userId = userId
        self.appId = appId
    }
}

extension AMQPProperties {
    init(_ p: amqp_basic_properties_t) {
        func has(_ flag: amqp_flags_t) -> Bool { p._flags & flag != 0 }
        self.init(
            contentType: has(WHSYNC_FLAG_CONTENT_TYPE) ? String(amqpBytes: p.content_type) : nil,
            contentEncoding: has(WHSYNC_FLAG_CONTENT_ENCODING) ? String(amqpBytes: p.content_encoding) : nil,
            headers: has(WHSYNC_FLAG_HEADERS) ? AMQPTable(p.headers) : [:],
            deliveryMode: has(WHSYNC_FLAG_DELIVERY_MODE) ? DeliveryMode(rawValue: p.delivery_mode) : nil,
            priority: has(WHSYNC_FLAG_PRIORITY) ? p.priority : nil,
            correlationId: has(WHSYNC_FLAG_CORRELATION_ID) ? String(amqpBytes: p.correlation_id) : nil,
            replyTo: has(WHSYNC_FLAG_REPLY_TO) ? String(amqpBytes: p.reply_to) : nil,
            expiration: has(WHSYNC_FLAG_EXPIRATION) ? String(amqpBytes: p.expiration) : nil,
            messageId: has(WHSYNC_FLAG_MESSAGE_ID) ? String(amqpBytes: p.message_id) : nil,
            timestamp: has(WHSYNC_FLAG_TIMESTAMP) ? p.timestamp : nil,
            type: has(WHSYNC_FLAG_TYPE) ? String(amqpBytes: p.type) : nil,
            userId: has(WHSYNC_FLAG_USER_ID) ? String(amqpBytes: p.user_id) : nil,
            appId: has(WHSYNC_FLAG_APP_ID) ? String(amqpBytes: p.app_id) : nil
        )
    }

    func cProperties(in arena: CArena, extraHeaders: AMQPTable = [:]) -> amqp_basic_properties_t {
        var p = amqp_basic_properties_t()
        var flags: amqp_flags_t = 0
        if let contentType { p.content_type = arena.bytes(contentType); flags |= WHSYNC_FLAG_CONTENT_TYPE }
        if let contentEncoding { p.content_encoding = arena.bytes(contentEncoding); flags |= WHSYNC_FLAG_CONTENT_ENCODING }
        let allHeaders = extraHeaders.isEmpty ? headers : headers.merging(extraHeaders) { _, extra in extra }
        if !allHeaders.isEmpty { p.headers = arena.table(allHeaders); flags |= WHSYNC_FLAG_HEADERS }
        if let deliveryMode { p.delivery_mode = deliveryMode.rawValue; flags |= WHSYNC_FLAG_DELIVERY_MODE }
        if let priority { p.priority = priority; flags |= WHSYNC_FLAG_PRIORITY }
        if let correlationId { p.correlation_id = arena.bytes(correlationId); flags |= WHSYNC_FLAG_CORRELATION_ID }
        if let replyTo { p.reply_to = arena.bytes(replyTo); flags |= WHSYNC_FLAG_REPLY_TO }
        if let expiration { p.expiration = arena.bytes(expiration); flags |= WHSYNC_FLAG_EXPIRATION }
        if let messageId { p.message_id = arena.bytes(messageId); flags |= WHSYNC_FLAG_MESSAGE_ID }
        if let timestamp { p.timestamp = timestamp; flags |= WHSYNC_FLAG_TIMESTAMP }
        if let type { p.type = arena.bytes(type); flags |= WHSYNC_FLAG_TYPE }
        if let userId { p.user_id = arena.bytes(userId); flags |= WHSYNC_FLAG_USER_ID }
        if let appId { p.app_id = arena.bytes(appId); flags |= WHSYNC_FLAG_APP_ID }
        p._flags = flags
        return p
    }
}

/// A message to publish.
public struct OutboundMessage: Sendable, Equatable {
    public var exchange: String
    public var routingKey: String
    public var body: [UInt8]
    public var properties: AMQPProperties
    /// Ask the broker to return the message if it matches no queue; the publish then fails
    /// with `.unroutable` instead of silently vanishing.
    public var mandatory: Bool

    public init(exchange: String, routingKey: String, body: [UInt8], properties: AMQPProperties = AMQPProperties(), mandatory: Bool = false) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
    }
}

/// A message handed to a consumer. Settle it exactly once with `ack`, `nack` or `reject`.
/// A settlement for a delivery from a channel or connection that has since closed is discarded:
/// the broker redelivers that message on the new one.
public struct AMQPDelivery: Sendable {
    public let body: [UInt8]
    public let properties: AMQPProperties
    public let exchange: String
    public let routingKey: String
    public let redelivered: Bool
    public let deliveryTag: UInt64
    public let consumerTag: String
    let channelGeneration: UInt64
    let engine: ConnectionEngine

    /// Its channel is gone: the broker has requeued it, and a settlement would be dropped.
    var isStale: Bool { engine.isStale(generation: channelGeneration) }

    public func ack(multiple: Bool = false) {
        engine.enqueue(.settle(.ack(multiple: multiple), tag: deliveryTag, generation: channelGeneration))
    }

    public func nack(requeue: Bool, multiple: Bool = false) {
        engine.enqueue(.settle(.nack(requeue: requeue, multiple: multiple), tag: deliveryTag, generation: channelGeneration))
    }

    public func reject(requeue: Bool) {
        engine.enqueue(.settle(.reject(requeue: requeue), tag: deliveryTag, generation: channelGeneration))
    }
}
