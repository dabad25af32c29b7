/// An argument value in an exchange, queue or binding declaration (`x-delivery-limit`, `x-match`…).
///
/// Only the three kinds the topology uses, so a declaration maps one-to-one onto an AMQP field
/// table (`longstr`, signed 64-bit integer, boolean) and onto JSON in a definitions file.
public enum TopologyValue: Sendable, Hashable {
    case string(String)
    case int(Int64)
    case bool(Bool)
}

extension TopologyValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .string(let value): "\"\(value)\""
        case .int(let value): String(value)
        case .bool(let value): String(value)
        }
    }
}

extension TopologyValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

/// One exchange to declare.
public struct ExchangeSpec: Sendable, Equatable {
    public var name: String
    /// `topic`, `headers`, `x-consistent-hash`, `fanout` or `direct`.
    public var type: String
    public var durable: Bool
    public var autoDelete: Bool
    /// An internal exchange takes no publishes from clients, only exchange-to-exchange bindings.
    public var `internal`: Bool
    public var arguments: [String: TopologyValue]

    public init(
        name: String,
        type: String,
        durable: Bool = true,
        autoDelete: Bool = false,
        internal: Bool = false,
        arguments: [String: TopologyValue] = [:]
    ) {
        self.name = name
        self.type = type
        self.durable = durable
        self.autoDelete = autoDelete
        self.internal = `internal`
        self.arguments = arguments
    }
}

/// One queue to declare (never exclusive, never auto-delete).
public struct QueueSpec: Sendable, Equatable {
    public var name: String
    public var durable: Bool
    public var arguments: [String: TopologyValue]

    public init(name: String, durable: Bool = true, arguments: [String: TopologyValue] = [:]) {
        self.name = name
        self.durable = durable
        self.arguments = arguments
    }
}

/// One binding from an exchange to a queue or to another exchange.
public struct BindingSpec: Sendable, Equatable {
    public enum DestinationType: String, Sendable, Hashable {
        case queue
        case exchange
    }

    public var source: String
    public var destination: String
    public var destinationType: DestinationType
    public var routingKey: String
    public var arguments: [String: TopologyValue]

    public init(
        source: String,
        destination: String,
        destinationType: DestinationType,
        routingKey: String,
        arguments: [String: TopologyValue] = [:]
    ) {
        self.source = source
        self.destination = destination
        self.destinationType = destinationType
        self.routingKey = routingKey
        self.arguments = arguments
    }
}

/// Everything to declare on the broker, in an order that declares each object after what it
/// refers to: exchanges, then queues (whose dead-letter exchanges then exist), then bindings.
/// The order is deterministic, so an export diffs cleanly and `verify` reports drift in a stable order.
public struct TopologyPlan: Sendable, Equatable {
    public var exchanges: [ExchangeSpec]
    public var queues: [QueueSpec]
    public var bindings: [BindingSpec]

    public init(exchanges: [ExchangeSpec], queues: [QueueSpec], bindings: [BindingSpec]) {
        self.exchanges = exchanges
        self.queues = queues
        self.bindings = bindings
    }
}
