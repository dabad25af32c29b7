import AMQPClient
import Foundation
import WarehouseSyncCore

/// Declares a topology plan over AMQP and checks a broker against it.
public struct TopologyDeployer: Sendable {
    public let plan: TopologyPlan

    public init(plan: TopologyPlan) {
        self.plan = plan
    }

    /// Declares every exchange, queue and binding. Declares are idempotent, so applying twice
    /// changes nothing; an object that exists with other arguments fails with the broker's
    /// PRECONDITION_FAILED text (RabbitMQ never changes a queue's arguments in place).
    public func apply(on connection: AMQPConnection) async throws {
        let plan = plan
        try await connection.withChannel { channel in try Self.declare(plan, on: channel) }
    }

    /// For an `onConnect` hook: declares on the connection's own thread.
    public static func declare(_ plan: TopologyPlan, on channel: SyncChannel) throws(AMQPError) {
        for exchange in plan.exchanges {
            try channel.declareExchange(
                exchange.name, type: exchange.type, durable: exchange.durable, autoDelete: exchange.autoDelete,
                internal: exchange.internal, arguments: exchange.arguments.amqpTable)
        }
        for queue in plan.queues {
            try channel.declareQueue(queue.name, durable: queue.durable, arguments: queue.arguments.amqpTable)
        }
        for binding in plan.bindings {
            switch binding.destinationType {
            case .queue:
                try channel.bindQueue(
                    binding.destination, exchange: binding.source, routingKey: binding.routingKey,
                    arguments: binding.arguments.amqpTable)
            case .exchange:
                try channel.bindExchange(
                    binding.destination, source: binding.source, routingKey: binding.routingKey,
                    arguments: binding.arguments.amqpTable)
            }
        }
    }

    /// Every object that is missing or different. Exchanges and queues are checked over AMQP:
    /// a passive declare finds missing ones, and a declare with the planned arguments on an
    /// existing object is refused by the broker when they differ, without changing anything.
    /// AMQP cannot see bindings; with `management` they are checked through the HTTP API too.
    public func verify(on connection: AMQPConnection, management: ManagementClient? = nil) async throws -> [TopologyDrift] {
        let plan = plan
        var drift = try await connection.withChannel { channel in try Self.check(plan, on: channel) }
        if let management {
            let existing = try await management.bindings(vhost: connection.configuration.virtualHost)
            for binding in plan.bindings where !existing.contains(where: { $0.matches(binding) }) {
                drift.append(.missing(kind: "binding", name: binding.summary))
            }
        }
        return drift
    }

    static func check(_ plan: TopologyPlan, on channel: SyncChannel) throws(AMQPError) -> [TopologyDrift] {
        var drift: [TopologyDrift] = []
        for exchange in plan.exchanges {
            let found = try probe("exchange", exchange.name) { () throws(AMQPError) in try channel.checkExchange(exchange.name) } redeclare: { () throws(AMQPError) in
                try channel.declareExchange(
                    exchange.name, type: exchange.type, durable: exchange.durable, autoDelete: exchange.autoDelete,
                    internal: exchange.internal, arguments: exchange.arguments.amqpTable)
            }
            drift += found
        }
        for queue in plan.queues {
            let found = try probe("queue", queue.name) { () throws(AMQPError) in _ = try channel.checkQueue(queue.name) } redeclare: { () throws(AMQPError) in
                try channel.declareQueue(queue.name, durable: queue.durable, arguments: queue.arguments.amqpTable)
            }
            drift += found
        }
        return drift
    }

    /// `exists` throws NOT_FOUND for a missing object; `redeclare` throws PRECONDITION_FAILED
    /// for one whose properties differ (and changes nothing when they are the same).
    private static func probe(
        _ kind: String, _ name: String, exists: () throws(AMQPError) -> Void, redeclare: () throws(AMQPError) -> Void
    ) throws(AMQPError) -> [TopologyDrift] {
        do {
            try exists()
        } catch {
            guard error.code == .notFound else { throw error }
            return [.missing(kind: kind, name: name)]
        }
        do {
            try redeclare()
        } catch {
            guard error.code == .preconditionFailed else { throw error }
            return [.different(kind: kind, name: name, detail: error.message)]
        }
        return []
    }
}

public enum TopologyDrift: Sendable, Equatable, CustomStringConvertible {
    case missing(kind: String, name: String)
    case different(kind: String, name: String, detail: String)

    public var description: String {
        switch self {
        case .missing(let kind, let name): "missing \(kind): \(name)"
        case .different(let kind, let name, let detail): "different \(kind) '\(name)': \(detail)"
        }
    }
}

extension BindingSpec {
    var summary: String {
        "\(destinationType.rawValue) '\(destination)' ← exchange '\(source)' (routing key '\(routingKey)')"
    }
}
