/// The fields every event carries (DESIGN §2).
public struct EventHeader: Sendable, Hashable {
    /// The stream, from `schema`.
    public var stream: EventStream
    /// The idempotency key, 1–128 characters; the message's `message_id`.
    public var eventId: String
    public var occurredAt: Timestamp
    /// Matches `[A-Za-z0-9_-]{1,64}` and the routing key's warehouse.
    public var warehouse: String
    /// ≥ 1, +1 per event of the sequencing key.
    public var sequence: Int64
    public var correlationId: String?
    /// The emitting WMS.
    public var source: String?

    public init(
        stream: EventStream, eventId: String, occurredAt: Timestamp, warehouse: String, sequence: Int64,
        correlationId: String? = nil, source: String? = nil
    ) {
        self.stream = stream
        self.eventId = eventId
        self.occurredAt = occurredAt
        self.warehouse = warehouse
        self.sequence = sequence
        self.correlationId = correlationId
        self.source = source
    }

    /// The body's `schema`.
    public var schema: String { stream.schema }

    /// `<stream>.<warehouse>`.
    public var routingKey: String { stream.routingKey(warehouse: warehouse) }
}
