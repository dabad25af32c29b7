import Foundation
import Logging
import Synchronization

/// A connection to RabbitMQ with one channel, owned by its own thread (see `ConnectionEngine`).
///
/// Keep confirmed publishing and consuming on separate connections: a connection that both
/// consumes and publishes stalls its consumers while it waits on a slow confirm.
public final class AMQPConnection: Sendable {
    public struct Options: Sendable {
        /// Put the channel in confirm mode: `publish` completes when the broker has taken
        /// responsibility for the message (for a quorum queue: a majority has it on disk).
        public var publisherConfirms: Bool
        /// Reconnect after a lost connection; `nil` makes a loss final (for CLIs).
        public var reconnect: ReconnectPolicy?
        /// Runs on every (re)connect before anything else: declare what this connection needs.
        public var onConnect: (@Sendable (SyncChannel) throws -> Void)?

        public init(
            publisherConfirms: Bool = false, reconnect: ReconnectPolicy? = .default,
            onConnect: (@Sendable (SyncChannel) throws -> Void)? = nil
        ) {
            self.publisherConfirms = publisherConfirms
            self.reconnect = reconnect
            self.onConnect = onConnect
        }
    }

    let engine: ConnectionEngine
    /// A ``close(timeout:)`` returned before the engine finished closing.
    private let closeGaveUp = Atomic<Bool>(false)

    private init(engine: ConnectionEngine) {
        self.engine = engine
    }

    /// Connects, or throws what went wrong on the first attempt (refused, TLS, ACCESS_REFUSED...).
    /// Later losses are repaired in the background when `options.reconnect` is set.
    public static func connect(
        _ configuration: AMQPConfiguration, options: Options = Options(), logger: Logger
    ) async throws(AMQPError) -> AMQPConnection {
        let engine = ConnectionEngine(
            configuration: configuration,
            options: .init(publisherConfirms: options.publisherConfirms, reconnect: options.reconnect, onConnect: options.onConnect),
            logger: logger)
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, AMQPError>, Never>) in
            engine.start { continuation.resume(returning: $0) }
        }
        try result.get()
        return AMQPConnection(engine: engine)
    }

    public var configuration: AMQPConfiguration { engine.configuration }

    /// Whether the connection is up right now (for readiness probes).
    public var isConnected: Bool { engine.connected.load(ordering: .acquiring) }

    /// Whether the broker has said it blocks publishing on this connection (connection.blocked:
    /// a memory or disk alarm) and not yet that it stopped. Publishes sent meanwhile wait for
    /// their confirms until the alarm clears.
    public var isBlocked: Bool { engine.blocked.load(ordering: .acquiring) }

    /// Runs `body` on the connection's thread with blocking channel operations.
    @discardableResult
    public func withChannel<T: Sendable>(_ body: @escaping @Sendable (SyncChannel) throws -> T) async throws -> T {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>, Never>) in
            engine.enqueue(
                .perform(
                    run: { channel in continuation.resume(returning: Result { try body(channel) }) },
                    fail: { continuation.resume(returning: .failure($0)) }))
        }
        return try result.get()
    }

    /// Publishes and, with publisher confirms, waits for the broker's confirm.
    public func publish(_ message: OutboundMessage) async throws(AMQPError) {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, AMQPError>, Never>) in
            engine.enqueue(.publish(message, deadline: nil) { continuation.resume(returning: $0) })
        }
        try result.get()
    }

    /// Publishes all messages pipelined (no round-trip each) and returns each one's outcome,
    /// in order, once every confirm is in.
    ///
    /// With a `deadline`, it returns by then at the latest: an outcome not in by then is
    /// `.timeout`, and a message the connection had not sent by then (it was down, or busy) is
    /// never sent. A message sent but unconfirmed at the deadline may still reach its queue.
    public func publish(_ messages: [OutboundMessage], deadline: ContinuousClock.Instant? = nil) async -> [Result<Void, AMQPError>] {
        guard !messages.isEmpty else { return [] }
        let batch = BatchCompletion(count: messages.count)
        guard let deadline else {
            return await batch.wait { enqueue(messages, deadline: nil, into: batch) }
        }
        return await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                batch.expire(AMQPError(.timeout, "no confirm from the broker in time"))
            }
            let results = await batch.wait { enqueue(messages, deadline: deadline, into: batch) }
            group.cancelAll()
            return results
        }
    }

    private func enqueue(_ messages: [OutboundMessage], deadline: ContinuousClock.Instant?, into batch: BatchCompletion) {
        for (index, message) in messages.enumerated() {
            engine.enqueue(.publish(message, deadline: deadline) { batch.complete(index, $0) })
        }
    }

    /// Publishes without waiting; `completion` runs on the connection's thread when the
    /// confirm arrives (keep it short). For pipelines that keep a window of messages in flight.
    public func publish(_ message: OutboundMessage, completion: @escaping @Sendable (Result<Void, AMQPError>) -> Void) {
        engine.enqueue(.publish(message, deadline: nil, completion))
    }

    /// Starts consuming `queue` with manual acknowledgement. At most `prefetch` deliveries are
    /// unsettled at a time, which also bounds the buffer between the connection and the caller.
    /// After a reconnect, or after the broker closed the channel (a delivery held past the broker's
    /// `consumer_timeout`), the consumer resumes by itself on the same stream; unsettled
    /// deliveries come again, and settling one of the dead channel's deliveries does nothing.
    public func consume(
        queue: String, prefetch: UInt16, exclusive: Bool = false, arguments: AMQPTable = [:]
    ) async throws(AMQPError) -> AMQPConsumer {
        let (stream, continuation) = AsyncStream<[AMQPDelivery]>.makeStream()
        let tag = "\(configuration.connectionName ?? "whsync")-\(queue)-\(UUID().uuidString.prefix(8))"
        let registration = ConsumerRegistration(
            tag: tag, queue: queue, prefetch: prefetch, exclusive: exclusive, arguments: arguments, continuation: continuation)
        let result = await withCheckedContinuation { (done: CheckedContinuation<Result<Void, AMQPError>, Never>) in
            engine.enqueue(.consume(registration) { done.resume(returning: $0) })
        }
        try result.get()
        return AMQPConsumer(tag: tag, queue: queue, deliveries: AMQPDeliveries(batches: stream), engine: engine)
    }

    /// Waits (up to 5 s) for outstanding confirms, cancels consumers (waiting for cancel-ok),
    /// then closes the channel and connection (each reply waited for up to 2 s while the broker
    /// blocks the connection). Idempotent.
    ///
    /// Returns after `timeout` at the latest, even when the connection's thread is stuck in a
    /// call it cannot leave (a send to a broker that stopped reading): the thread then finishes
    /// alone, and a program that is shutting down is not held by it. Once a close gave up, a
    /// later one returns at once instead of waiting for the same stuck thread again.
    public func close(timeout: Duration = .seconds(10)) async {
        guard !closeGaveUp.load(ordering: .acquiring) else { return }
        let engine = self.engine
        let finished = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let pending = Mutex<CheckedContinuation<Bool, Never>?>(continuation)
            let resume = { @Sendable (finished: Bool) in
                pending.withLock { stored in
                    defer { stored = nil }
                    return stored
                }?.resume(returning: finished)
            }
            let timer = Task {
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                resume(false)
            }
            engine.enqueue(.close {
                resume(true)
                timer.cancel()
            })
        }
        if !finished {
            closeGaveUp.store(true, ordering: .releasing)
            engine.logger.warning(
                "the connection did not close within \(timeout); leaving it to finish alone",
                metadata: ["amqp.endpoint": "\(engine.configuration.endpoint)"])
        }
    }
}

/// A consumer's deliveries. The stream ends after `cancel()` or when the connection closes.
public final class AMQPConsumer: Sendable {
    public let tag: String
    public let queue: String
    public let deliveries: AMQPDeliveries
    private let engine: ConnectionEngine

    init(tag: String, queue: String, deliveries: AMQPDeliveries, engine: ConnectionEngine) {
        self.tag = tag
        self.queue = queue
        self.deliveries = deliveries
        self.engine = engine
    }

    /// Whether the broker has this consumer on an open channel right now (for readiness probes).
    /// False from the moment the broker closes the channel or the connection drops until the
    /// connection's thread has consumed again (at once after a channel close; after a reconnect
    /// when the connection dropped or consuming again failed), and for good after ``cancel()``.
    public var isConsuming: Bool { engine.isConsuming(tag: tag) }

    /// Stops deliveries and waits for the broker's cancel-ok. Deliveries already handed out can
    /// still be settled afterwards, until the connection closes.
    public func cancel() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            engine.enqueue(.cancel(tag: tag) { done.resume() })
        }
    }
}

/// Collects the outcomes of a pipelined batch and resumes its caller once, when all are in or
/// when the batch expires. The first outcome for an index wins; later ones are ignored.
private final class BatchCompletion: Sendable {
    private struct State {
        var results: [Result<Void, AMQPError>?]
        var remaining: Int
        var continuation: CheckedContinuation<[Result<Void, AMQPError>], Never>?
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(results: Array(repeating: nil, count: count), remaining: count))
    }

    /// Runs `start` (which hands out the messages) and waits for every outcome.
    func wait(_ start: () -> Void) async -> [Result<Void, AMQPError>] {
        await withCheckedContinuation { continuation in
            // Expired before it started (a deadline already past): nothing is handed out.
            let expired: [Result<Void, AMQPError>]? = state.withLock { state in
                if state.remaining == 0 { return state.results.map { $0! } }
                state.continuation = continuation
                return nil
            }
            if let expired { continuation.resume(returning: expired) } else { start() }
        }
    }

    func complete(_ index: Int, _ result: Result<Void, AMQPError>) {
        resumeIfDone { state in
            guard state.results[index] == nil else { return }
            state.results[index] = result
            state.remaining -= 1
        }
    }

    /// Gives every outcome not in yet as `error`.
    func expire(_ error: AMQPError) {
        resumeIfDone { state in
            for index in state.results.indices where state.results[index] == nil {
                state.results[index] = .failure(error)
            }
            state.remaining = 0
        }
    }

    private func resumeIfDone(_ update: (inout State) -> Void) {
        let finished: (CheckedContinuation<[Result<Void, AMQPError>], Never>, [Result<Void, AMQPError>])? = state.withLock { state in
            update(&state)
            guard state.remaining == 0, let continuation = state.continuation else { return nil }
            state.continuation = nil
            return (continuation, state.results.map { $0! })
        }
        if let (continuation, results) = finished { continuation.resume(returning: results) }
    }
}

/// A consumer's deliveries, one at a time. The connection thread hands them over in batches
/// (one task resume per batch instead of per message); this sequence flattens them, and skips
/// those whose channel closed while they waited here (the broker delivers them again).
public struct AMQPDeliveries: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery
    let batches: AsyncStream<[AMQPDelivery]>

    public struct AsyncIterator: AsyncIteratorProtocol {
        var batches: AsyncStream<[AMQPDelivery]>.AsyncIterator
        var current: [AMQPDelivery] = []
        var index = 0

        public mutating func next() async -> AMQPDelivery? {
            while true {
                while index == current.count {
                    guard let batch = await batches.next() else { return nil }
                    current = batch
                    index = 0
                }
                defer { index += 1 }
                if !current[index].isStale { return current[index] }
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(batches: batches.makeAsyncIterator())
    }
}
