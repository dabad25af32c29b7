import CRabbitMQ
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Publishing and settling deliveries: librabbitmq calls on the connection thread, each decided
/// by the state machine first.
extension ConnectionEngine {
    func publish(_ message: OutboundMessage, deadline: ContinuousClock.Instant?, completion: @escaping PublishCompletion) {
        if let error = machine.publishRequested(deadline: deadline, now: .now) {
            completion(.failure(error))
            return
        }
        do {
            try ensureChannel()
        } catch {
            completion(.failure(error))
            return
        }
        guard let state else { return }
        let confirms = options.publisherConfirms
        let sequence = machine.nextPublishSequence
        let arena = CArena()
        var extra: AMQPTable = [:]
        if confirms && message.mandatory { extra[Self.publishSequenceHeader] = .int(Int64(sequence)) }
        var properties = message.properties.cProperties(in: arena, extraHeaders: extra)
        let status = message.body.withUnsafeBytes { body in
            amqp_basic_publish(
                state, Self.channel, arena.bytes(message.exchange), arena.bytes(message.routingKey),
                message.mandatory ? 1 : 0, 0, &properties,
                amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            let error = libraryError(status, context: "publishing to '\(message.exchange)'")
            completion(.failure(error))
            connectionFailed(error)
            return
        }
        if let done = machine.published(completion, confirms: confirms) {
            complete([done])
        }
    }

    func settle(_ settlement: Settlement, tag: UInt64, generation: UInt64) {
        guard case .send(_, _, let before, let after) = machine.settleRequested(settlement, tag: tag, generation: generation),
            let state
        else {
            logger.debug("settlement for a delivery of an earlier channel dropped; it will be redelivered")
            return
        }
        guard sendAckFrames(before) else { return }
        let status: Int32
        switch settlement {
        case .ack(let multiple):
            status = amqp_basic_ack(state, Self.channel, tag, multiple ? 1 : 0)
        case .nack(let requeue, let multiple):
            status = amqp_basic_nack(state, Self.channel, tag, multiple ? 1 : 0, requeue ? 1 : 0)
        case .reject(let requeue):
            status = amqp_basic_reject(state, Self.channel, tag, requeue ? 1 : 0)
        }
        if status != AMQP_STATUS_OK.rawValue {
            connectionFailed(libraryError(status, context: "settling a delivery"))
            return
        }
        if let after { sendAckFrames([after]) }
    }
}
