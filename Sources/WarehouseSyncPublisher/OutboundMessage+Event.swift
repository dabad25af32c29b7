import AMQPClient
import WarehouseSyncCore

extension OutboundMessage {
    /// The message of DESIGN section 2 for a validated event: routing key `<stream>.<warehouse>`,
    /// persistent, `message_id` = eventId, `type` = schema, and the `partition-key` header that
    /// the consistent-hash exchange routes partitions by. The body goes out exactly as given.
    public init(event: WarehouseEvent, body: [UInt8], exchange: String = "wms.events") {
        let header = event.header
        self.init(
            exchange: exchange,
            routingKey: event.routingKey,
            body: body,
            properties: AMQPProperties(
                contentType: "application/json",
                headers: [WireHeader.partitionKey: .string(event.sequencingKey)],
                deliveryMode: .persistent,
                correlationId: header.correlationId,
                messageId: header.eventId,
                type: header.schema),
            mandatory: true)
    }
}
