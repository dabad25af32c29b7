import CRabbitMQ
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Reading frames and dispatching on their method: deliveries, confirms, returns, closes.
extension ConnectionEngine {
    func readAvailableFrames() {
        defer { flushDeliveries() }
        for _ in 0..<1024 {
            guard let state else { return }
            var frame = amqp_frame_t()
            var immediately = timeval(tv_sec: 0, tv_usec: 0)
            let status = amqp_simple_wait_frame_noblock(state, &frame, &immediately)
            if status == AMQP_STATUS_TIMEOUT.rawValue { return }
            guard status == AMQP_STATUS_OK.rawValue else {
                connectionFailed(libraryError(status, context: "reading from the broker"))
                return
            }
            machine.received(now: .now)
            handle(frame)
            if let state = self.state { amqp_maybe_release_buffers(state) }
        }
    }

    func handle(_ frame: amqp_frame_t) {
        guard frame.frame_type == AMQP_FRAME_METHOD else {
            if frame.frame_type != AMQP_FRAME_HEARTBEAT {
                connectionFailed(AMQPError(.protocolError, "unexpected frame type \(frame.frame_type) from the broker"))
            }
            return
        }
        let method = frame.payload.method
        switch method.id {
        case WHSYNC_BASIC_DELIVER:
            let deliver = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            let tag = String(amqpBytes: deliver.consumer_tag)
            let exchange = String(amqpBytes: deliver.exchange)
            let routingKey = String(amqpBytes: deliver.routing_key)
            guard let content = readContent(channel: frame.channel, context: "reading a delivery") else { return }
            var (properties, body) = (content.0, content.1)
            // Our own publisher's bookkeeping (see publishSequenceHeader), not the sender's data.
            properties.headers.removeValue(forKey: Self.publishSequenceHeader)
            let delivery = AMQPDelivery(
                body: body, properties: properties, exchange: exchange, routingKey: routingKey,
                redelivered: deliver.redelivered != 0, deliveryTag: deliver.delivery_tag, consumerTag: tag,
                channelGeneration: machine.generation, engine: self)
            machine.deliveryArrived(tag: deliver.delivery_tag, consumer: tag)
            if consumers[tag] != nil {
                deliveryBatches[tag, default: []].append(delivery)
            } else {
                // Sent before our cancel reached the broker: hand it back at once.
                settle(.reject(requeue: true), tag: deliver.delivery_tag, generation: machine.generation)
            }
        case WHSYNC_BASIC_ACK:
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            complete(machine.confirmReceived(tag: ack.delivery_tag, multiple: ack.multiple != 0, nack: nil))
        case WHSYNC_BASIC_NACK:
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            complete(machine.confirmReceived(
                tag: nack.delivery_tag, multiple: nack.multiple != 0,
                nack: AMQPError(.nacked, "the broker refused the message (basic.nack): the queue may be full (x-overflow=reject-publish) or unavailable")))
        case WHSYNC_BASIC_RETURN:
            let returned = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let reason = "\(String(amqpBytes: returned.reply_text)) (reply code \(returned.reply_code))"
            let exchange = String(amqpBytes: returned.exchange)
            let routingKey = String(amqpBytes: returned.routing_key)
            guard let (properties, _) = readContent(channel: frame.channel, context: "reading a returned message") else { return }
            if let sequence = properties.headers[Self.publishSequenceHeader]?.intValue {
                machine.publishReturned(
                    sequence: UInt64(sequence),
                    AMQPError(.unroutable, "no queue is bound to exchange '\(exchange)' for routing key '\(routingKey)': \(reason)", replyCode: returned.reply_code))
            } else {
                logger.warning("broker returned a message", metadata: ["exchange": "\(exchange)", "routingKey": "\(routingKey)", "reason": "\(reason)"])
            }
        case WHSYNC_BASIC_CANCEL:
            // The broker cancelled a consumer (its queue was deleted, or it moved). Reconnect with
            // backoff, which consumes again and says so loudly if the queue is really gone.
            connectionFailed(AMQPError(.closedByBroker, "the broker cancelled a consumer"))
        case WHSYNC_CHANNEL_CLOSE:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError.fromBroker(replyCode: close.reply_code, replyText: String(amqpBytes: close.reply_text), context: "channel closed by the broker")
            acknowledgeChannelClose()
            channelFailed(error, reportedToCaller: false)
        case WHSYNC_CONNECTION_CLOSE:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = AMQPError.fromBroker(replyCode: close.reply_code, replyText: String(amqpBytes: close.reply_text), context: "connection closed by the broker")
            acknowledgeConnectionClose()
            connectionFailed(error)
        case WHSYNC_CONNECTION_BLOCKED:
            blocked.store(true, ordering: .releasing)
            logger.warning("the broker blocked publishing on this connection (memory or disk alarm)")
        case WHSYNC_CONNECTION_UNBLOCKED:
            blocked.store(false, ordering: .releasing)
            logger.info("the broker unblocked this connection")
        case WHSYNC_BASIC_CANCEL_OK:
            break  // consumed by amqp_basic_cancel's own wait
        default:
            logger.debug("ignored method frame", metadata: ["method": "\(method.id)"])
        }
    }

    func flushDeliveries() {
        guard !deliveryBatches.isEmpty else { return }
        for (tag, batch) in deliveryBatches {
            consumers[tag]?.continuation.yield(batch)
        }
        deliveryBatches.removeAll(keepingCapacity: true)
    }

    /// Reads the header and body frames that follow basic.deliver or basic.return.
    func readContent(channel: amqp_channel_t, context: String) -> (AMQPProperties, [UInt8])? {
        guard let state else { return nil }
        var message = amqp_message_t()
        let reply = amqp_read_message(state, channel, &message, 0)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            connectionFailed(replyError(reply, context: context))
            return nil
        }
        defer { amqp_destroy_message(&message) }
        return (AMQPProperties(message.properties), [UInt8](amqpBytes: message.body))
    }
}
