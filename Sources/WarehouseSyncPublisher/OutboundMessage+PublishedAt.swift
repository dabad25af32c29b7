import AMQPClient
import Foundation
import WarehouseSyncCore

extension OutboundMessage {
    /// This message with `whsync-published-at` set to `date` (``WireHeader/publishedAt``): where
    /// the workers' publish-to-posted latency starts.
    public func stampedPublished(at date: Date = Date()) -> OutboundMessage {
        var message = self
        message.properties.headers[WireHeader.publishedAt] = .string(Timestamp(date).text)
        return message
    }
}
