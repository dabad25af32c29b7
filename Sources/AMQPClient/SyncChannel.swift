import CRabbitMQ

/// Blocking channel operations, usable only inside `AMQPConnection.withChannel` or the
/// connection's `onConnect` hook, where they run on the connection's own thread.
///
/// A broker error (NOT_FOUND, PRECONDITION_FAILED, ...) throws and closes the channel; the
/// next operation reopens it, so one failed check does not spoil the ones after it.
public struct SyncChannel {
    let engine: ConnectionEngine

    public struct QueueState: Sendable, Equatable {
        public let messageCount: UInt32
        public let consumerCount: UInt32
    }

    public func declareExchange(
        _ name: String, type: String, durable: Bool = true, autoDelete: Bool = false, internal isInternal: Bool = false,
        arguments: AMQPTable = [:]
    ) throws(AMQPError) {
        try call("declaring exchange '\(name)'") { state, arena in
            amqp_exchange_declare(
                state, ConnectionEngine.channel, arena.bytes(name), arena.bytes(type), 0, durable ? 1 : 0,
                autoDelete ? 1 : 0, isInternal ? 1 : 0, arena.table(arguments))
        }
    }

    /// Succeeds when the exchange exists; throws `.notFound` when it does not. Changes nothing.
    public func checkExchange(_ name: String) throws(AMQPError) {
        try call("checking exchange '\(name)'") { state, arena in
            amqp_exchange_declare(
                state, ConnectionEngine.channel, arena.bytes(name), arena.bytes(""), 1, 0, 0, 0, amqp_empty_table)
        }
    }

    @discardableResult
    public func declareQueue(
        _ name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false, arguments: AMQPTable = [:]
    ) throws(AMQPError) -> QueueState {
        try queueDeclare(name, passive: false, durable: durable, exclusive: exclusive, autoDelete: autoDelete, arguments: arguments)
    }

    /// The queue's message and consumer counts; throws `.notFound` when it does not exist.
    public func checkQueue(_ name: String) throws(AMQPError) -> QueueState {
        try queueDeclare(name, passive: true, durable: false, exclusive: false, autoDelete: false, arguments: [:])
    }

    private func queueDeclare(
        _ name: String, passive: Bool, durable: Bool, exclusive: Bool, autoDelete: Bool, arguments: AMQPTable
    ) throws(AMQPError) -> QueueState {
        let ok = try call(passive ? "checking queue '\(name)'" : "declaring queue '\(name)'") { state, arena in
            amqp_queue_declare(
                state, ConnectionEngine.channel, arena.bytes(name), passive ? 1 : 0, durable ? 1 : 0,
                exclusive ? 1 : 0, autoDelete ? 1 : 0, arena.table(arguments))
        }
        guard let ok else { throw AMQPError(.protocolError, "queue.declare-ok for '\(name)' missing") }
        return QueueState(messageCount: ok.pointee.message_count, consumerCount: ok.pointee.consumer_count)
    }

    public func bindQueue(_ queue: String, exchange: String, routingKey: String, arguments: AMQPTable = [:]) throws(AMQPError) {
        try call("binding queue '\(queue)' to exchange '\(exchange)' with '\(routingKey)'") { state, arena in
            amqp_queue_bind(
                state, ConnectionEngine.channel, arena.bytes(queue), arena.bytes(exchange), arena.bytes(routingKey),
                arena.table(arguments))
        }
    }

    public func bindExchange(_ destination: String, source: String, routingKey: String, arguments: AMQPTable = [:]) throws(AMQPError) {
        try call("binding exchange '\(destination)' to exchange '\(source)' with '\(routingKey)'") { state, arena in
            amqp_exchange_bind(
                state, ConnectionEngine.channel, arena.bytes(destination), arena.bytes(source), arena.bytes(routingKey),
                arena.table(arguments))
        }
    }

    /// Deletes the queue and returns how many messages it held.
    @discardableResult
    public func deleteQueue(_ name: String) throws(AMQPError) -> UInt32 {
        let ok = try call("deleting queue '\(name)'") { state, arena in
            amqp_queue_delete(state, ConnectionEngine.channel, arena.bytes(name), 0, 0)
        }
        return ok?.pointee.message_count ?? 0
    }

    public func deleteExchange(_ name: String) throws(AMQPError) {
        try call("deleting exchange '\(name)'") { state, arena in
            amqp_exchange_delete(state, ConnectionEngine.channel, arena.bytes(name), 0)
        }
    }

    @discardableResult
    public func purgeQueue(_ name: String) throws(AMQPError) -> UInt32 {
        let ok = try call("purging queue '\(name)'") { state, arena in
            amqp_queue_purge(state, ConnectionEngine.channel, arena.bytes(name))
        }
        return ok?.pointee.message_count ?? 0
    }

    @discardableResult
    private func call<T>(_ context: String, _ body: (amqp_connection_state_t, CArena) -> T) throws(AMQPError) -> T {
        try engine.ensureChannel()
        guard let state = engine.currentState else {
            throw AMQPError(.connectionLost, "\(context): not connected")
        }
        let arena = CArena()
        let result = body(state, arena)
        try engine.checkReply(context)
        return result
    }
}

@available(*, unavailable)
extension SyncChannel: Sendable {}
