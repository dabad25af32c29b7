import CRabbitMQ
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Channel and connection failures, and turning librabbitmq's replies into `AMQPError`s.
extension ConnectionEngine {
    /// Checks the reply of the last synchronous librabbitmq call. A channel error closes only
    /// the channel (reopened lazily before the next operation); anything else drops the connection.
    func checkReply(_ context: String) throws(AMQPError) {
        guard let state else { throw AMQPError(.connectionLost, "\(context): not connected") }
        let reply = amqp_get_rpc_reply(state)
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == WHSYNC_CHANNEL_CLOSE:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError.fromBroker(replyCode: close.reply_code, replyText: String(amqpBytes: close.reply_text), context: context)
            acknowledgeChannelClose()
            channelFailed(error, reportedToCaller: true)
            throw error
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == WHSYNC_CONNECTION_CLOSE:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = AMQPError.fromBroker(replyCode: close.reply_code, replyText: String(amqpBytes: close.reply_text), context: context)
            acknowledgeConnectionClose()
            connectionFailed(error)
            throw error
        default:
            let error = replyError(reply, context: context)
            connectionFailed(error)
            throw error
        }
    }

    func acknowledgeChannelClose() {
        guard let state else { return }
        var ok = amqp_channel_close_ok_t(dummy: 0)
        _ = amqp_send_method(state, Self.channel, WHSYNC_CHANNEL_CLOSE_OK, &ok)
    }

    func acknowledgeConnectionClose() {
        guard let state else { return }
        var ok = amqp_connection_close_ok_t(dummy: 0)
        _ = amqp_send_method(state, 0, WHSYNC_CONNECTION_CLOSE_OK, &ok)
    }

    /// The channel is reopened lazily by the next operation. A failure the caller sees as a
    /// thrown error (a passive declare of a missing queue) is routine and logged at debug.
    func channelFailed(_ error: AMQPError, reportedToCaller: Bool) {
        let failed = machine.channelClosed(by: error)
        shareGeneration()
        shareLiveConsumers()
        complete(failed)
        // Not handed out yet, and the broker requeues them: their acks could not reach it.
        deliveryBatches.removeAll()
        logger.log(
            level: reportedToCaller ? .debug : .warning, "channel closed by the broker; reopening",
            metadata: ["error": "\(error)"])
    }

    func connectionFailed(_ error: AMQPError) {
        guard state != nil else { return }
        connected.store(false, ordering: .releasing)
        let lost = machine.connectionLost(error, canReconnect: options.reconnect != nil)
        complete(lost.failed)
        teardownConnection(graceful: false)
        // The node may be gone (a cluster losing a member): the next attempt starts at the next.
        nodeCursor = (nodeCursor + 1) % configuration.nodes.count
        if lost.stop {
            running = false
        }
        if !machine.awaitingFirstConnection {
            logger.warning("lost the connection to the broker", metadata: ["error": "\(error)"])
        }
    }

    /// Tells other threads the channel generation: deliveries of an older one are stale.
    func shareGeneration() {
        currentGeneration.store(machine.generation, ordering: .releasing)
    }

    /// Tells readiness probes which consumers are live (`isConsuming(tag:)`).
    func shareLiveConsumers() {
        let live = machine.liveConsumerTags
        liveConsumers.withLock { $0 = live }
    }

    /// Resumes the callers of publishes the state machine has completed.
    func complete(_ completions: [ConnectionStateMachine<PublishCompletion>.Completion]) {
        for completion in completions {
            completion.publish(completion.error.map { .failure($0) } ?? .success(()))
        }
    }

    func teardownConnection(graceful: Bool) {
        // Acks still deferred would be redelivered as duplicates: a graceful close sends them.
        if graceful { sendDeferredAcks() }
        guard let conn = state else { return }
        if graceful {
            if machine.channelOpen { _ = amqp_channel_close(conn, Self.channel, AMQP_REPLY_SUCCESS) }
            _ = amqp_connection_close(conn, AMQP_REPLY_SUCCESS)
        }
        amqp_destroy_connection(conn)
        state = nil
        machine.connectionGone()
        shareGeneration()
        shareLiveConsumers()
        // Not handed out yet, and the broker will redeliver them: drop rather than hand out
        // deliveries whose acks could no longer reach it.
        deliveryBatches.removeAll()
    }

    func statusText(_ status: Int32) -> String {
        String(cString: amqp_error_string2(status))
    }

    func libraryError(_ status: Int32, context: String) -> AMQPError {
        let code: AMQPError.Code = status == AMQP_STATUS_TIMEOUT.rawValue ? .timeout : .connectionLost
        return AMQPError(code, "\(context): \(statusText(status))")
    }

    func replyError(_ reply: amqp_rpc_reply_t, context: String) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return libraryError(reply.library_error, context: context)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            return AMQPError(.protocolError, "\(context): unexpected method \(reply.reply.id) from the broker")
        default:
            return AMQPError(.protocolError, "\(context): no reply")
        }
    }
}
