@_exported import AMQPClient
import Foundation
import Logging
import Synchronization
import WarehouseSyncTracing

/// Publishes WMS events to `wms.events` the way the contract wants them (DESIGN §2): validated by
/// the core's decoder, routing key `<stream>.<warehouse>`, persistent, `message_id` = eventId,
/// `type` = schema, `partition-key` header, `mandatory`, and each one confirmed by the broker.
///
/// One connection in confirm mode, on its own thread, reconnecting with backoff. While it is
/// down, or the broker blocks publishing (a resource alarm), publishing fails at once with ``PublishError/Code/unavailable`` instead of waiting, and a
/// message not sent before its confirm timeout is never sent later: a caller that saw an error
/// can resend without the event reaching the queue behind its back. (A message sent but not yet
/// confirmed when the timeout hits may still arrive; resending it is harmless, the eventId makes
/// the workers drop the repeat.)
///
/// ```swift
/// let publisher = try await EventPublisher.connect(.init(url: "amqp://user:pass@broker:5672/"), logger: logger)
/// try await publisher.publish(.inventory(delta))
/// ```
public final class EventPublisher: Sendable {
    public struct Configuration: Sendable {
        public var amqp: AMQPConfiguration
        public var exchange: String
        /// The longest a publish waits for its confirm (and for a busy or reconnecting connection).
        public var confirmTimeout: Duration
        /// How the connection comes back after a loss; `nil` makes a loss final.
        public var reconnect: ReconnectPolicy?
        public var decoder: EventDecoder
        /// The most events waiting for their confirms at once; beyond it publishing fails at once
        /// as `unavailable`, so a broker that stops reading cannot make them pile up in memory.
        public var maxUnconfirmed = 20_000

        public init(
            amqp: AMQPConfiguration, exchange: String = "wms.events", confirmTimeout: Duration = .seconds(10),
            reconnect: ReconnectPolicy? = .default, decoder: EventDecoder = EventDecoder()
        ) {
            self.amqp = amqp
            self.exchange = exchange
            self.confirmTimeout = confirmTimeout
            self.reconnect = reconnect
            self.decoder = decoder
        }

        /// From an `amqp://` or `amqps://` URL; throws ``PublishError/Code/unavailable`` with what
        /// is wrong with it (never echoing the password).
        public init(url: String, connectionName: String? = nil) throws(PublishError) {
            do {
                self.init(amqp: try AMQPConfiguration(url: url, connectionName: connectionName))
            } catch {
                throw PublishError(.unavailable, error.message)
            }
        }
    }

    public let configuration: Configuration
    private let connection: AMQPConnection
    private let unconfirmed = Atomic<Int>(0)

    private init(configuration: Configuration, connection: AMQPConnection) {
        self.configuration = configuration
        self.connection = connection
    }

    /// Connects, or throws ``PublishError/Code/unavailable`` with what went wrong (refused, TLS,
    /// credentials...).
    public static func connect(_ configuration: Configuration, logger: Logger) async throws(PublishError) -> EventPublisher {
        var amqp = configuration.amqp
        amqp.connectionName = amqp.connectionName ?? "whsync publisher"
        do {
            let connection = try await AMQPConnection.connect(
                amqp, options: .init(publisherConfirms: true, reconnect: configuration.reconnect), logger: logger)
            return EventPublisher(configuration: configuration, connection: connection)
        } catch {
            throw PublishError(.unavailable, error.message)
        }
    }

    /// Throws ``PublishError/Code/notConfirmed`` when the exchange does not exist (the topology
    /// has not been applied), so that a publisher can refuse to start instead of failing each event.
    public func checkExchange() async throws(PublishError) {
        let exchange = configuration.exchange
        do {
            try await connection.withChannel { try $0.checkExchange(exchange) }
        } catch let error as AMQPError where error.code == .notFound {
            throw PublishError(.notConfirmed, "the exchange '\(exchange)' does not exist (apply the topology: whsync topology apply)")
        } catch {
            throw PublishError(.unavailable, "checking the exchange '\(exchange)': \(error)")
        }
    }

    /// Whether the connection is up now.
    public var isConnected: Bool { connection.isConnected }

    /// Whether a publish can go out now: connected, and the broker does not block publishing (a
    /// memory or disk alarm). For readiness probes.
    public var isReady: Bool { unavailability == nil }

    /// Why publishing would fail at once now, or `nil`.
    private var unavailability: String? {
        if !connection.isConnected { return "not connected to the broker at \(configuration.amqp.endpoint)" }
        if connection.isBlocked { return "the broker at \(configuration.amqp.endpoint) blocks publishing (memory or disk alarm)" }
        return nil
    }

    /// Validates a body as the workers will; the event keeps the body exactly as given.
    public func validate(_ body: [UInt8]) throws(PublishError) -> ValidatedEvent {
        do throws(EventValidationError) {
            return ValidatedEvent(event: try configuration.decoder.decode(body), body: body)
        } catch {
            throw PublishError(error)
        }
    }

    /// Publishes a typed event (its ``WarehouseEvent/jsonBody``), after validating it.
    public func publish(_ event: WarehouseEvent) async throws(PublishError) {
        try await publish(validate(event.jsonBody))
    }

    /// Validates and publishes one body.
    public func publish(body: [UInt8]) async throws(PublishError) {
        try await publish(validate(body))
    }

    public func publish(_ event: ValidatedEvent) async throws(PublishError) {
        try await publish([event])[0].get()
    }

    /// Publishes the events pipelined and returns each one's outcome, in order, within the
    /// confirm timeout.
    public func publish(_ events: [ValidatedEvent]) async -> [Result<Void, PublishError>] {
        guard !events.isEmpty else { return [] }
        if let reason = unavailability {
            return Array(repeating: .failure(PublishError(.unavailable, reason)), count: events.count)
        }
        let waiting = unconfirmed.add(events.count, ordering: .relaxed).newValue
        defer { unconfirmed.subtract(events.count, ordering: .relaxed) }
        guard waiting <= configuration.maxUnconfirmed else {
            let error = PublishError(
                .unavailable, "more than \(configuration.maxUnconfirmed) events await the broker's confirms; it is not keeping up")
            return Array(repeating: .failure(error), count: events.count)
        }
        let now = Date()
        // The caller's span (or the trace it was handed) goes on with each event (docs/tracing.md).
        let trace = TraceHeaders.current
        let messages = events.map {
            OutboundMessage(event: $0.event, body: $0.body, exchange: configuration.exchange).stampedPublished(at: now).traced(trace)
        }
        let results = await connection.publish(messages, deadline: .now + configuration.confirmTimeout)
        return results.map { $0.mapError(PublishError.init) }
    }

    /// Waits until the connection is up, for at most `timeout`; whether it is.
    public func waitUntilConnected(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !connection.isConnected {
            guard ContinuousClock.now < deadline, (try? await Task.sleep(for: .milliseconds(50))) != nil else {
                return connection.isConnected
            }
        }
        return true
    }

    /// Waits (a few seconds at most) for outstanding confirms, then closes the connection. Returns
    /// within 10 s even when the broker stopped reading (a resource alarm): see
    /// ``AMQPConnection/close(timeout:)``.
    public func close() async {
        await connection.close()
    }
}

/// An event that passed validation, with the body it came in (published byte for byte).
public struct ValidatedEvent: Sendable {
    public let event: WarehouseEvent
    public let body: [UInt8]

    init(event: WarehouseEvent, body: [UInt8]) {
        self.event = event
        self.body = body
    }
}
