import Foundation
import WarehouseSyncCore

extension TopologyPlan {
    /// The plan as a RabbitMQ definitions file, for `rabbitmqctl import_definitions FILE` (3.10
    /// and later) or the management UI's import.
    ///
    /// The vhost, exchanges, queues and bindings, and the `users` with their `permissions` in
    /// `vhost` (each with its password hash, in ``BrokerUser/passwordHashingAlgorithm``); no
    /// policies. Without users the file has no users or permissions, so an import never touches
    /// credentials. Pretty-printed with sorted keys and a final newline, and the objects in plan
    /// order, so the file diffs cleanly when the topology changes.
    public func definitions(
        vhost: String = "/", rabbitVersion: String = "3.10.8", users: [(user: BrokerUser, passwordHash: String)] = []
    ) -> Data {
        var document: [String: TopologyDefinitionsJSON] = [
            "rabbit_version": .string(rabbitVersion),
            "rabbitmq_version": .string(rabbitVersion),
            "product_name": .string("RabbitMQ"),
            "product_version": .string(rabbitVersion),
            "vhosts": .array([.object(["name": .string(vhost)])]),
            "exchanges": .array(
                exchanges.map {
                    .object([
                        "name": .string($0.name),
                        "vhost": .string(vhost),
                        "type": .string($0.type),
                        "durable": .bool($0.durable),
                        "auto_delete": .bool($0.autoDelete),
                        "internal": .bool($0.internal),
                        "arguments": .arguments($0.arguments),
                    ])
                }
            ),
            "queues": .array(
                queues.map {
                    .object([
                        "name": .string($0.name),
                        "vhost": .string(vhost),
                        "durable": .bool($0.durable),
                        "auto_delete": .bool(false),
                        "arguments": .arguments($0.arguments),
                    ])
                }
            ),
            "bindings": .array(
                bindings.map {
                    .object([
                        "source": .string($0.source),
                        "vhost": .string(vhost),
                        "destination": .string($0.destination),
                        "destination_type": .string($0.destinationType.rawValue),
                        "routing_key": .string($0.routingKey),
                        "arguments": .arguments($0.arguments),
                    ])
                }
            ),
        ]
        if !users.isEmpty {
            document["users"] = .array(
                users.map {
                    .object([
                        "name": .string($0.user.name),
                        "password_hash": .string($0.passwordHash),
                        "hashing_algorithm": .string(BrokerUser.passwordHashingAlgorithm),
                        // A comma-separated string: what 3.10 exports, and 3.13/4.x still import.
                        "tags": .string($0.user.tags.joined(separator: ",")),
                    ])
                })
            document["permissions"] = .array(
                users.map {
                    .object([
                        "user": .string($0.user.name),
                        "vhost": .string(vhost),
                        "configure": .string($0.user.permissions.configure),
                        "write": .string($0.user.permissions.write),
                        "read": .string($0.user.permissions.read),
                    ])
                })
        }
        var text = ""
        TopologyDefinitionsJSON.object(document).write(to: &text, indent: "")
        text += "\n"
        return Data(text.utf8)
    }
}

/// The JSON of a definitions file, written by hand rather than by JSONEncoder so that the bytes
/// are the same on every platform and Foundation version: two-space indent, `"key": value`,
/// keys sorted, `{}` for an empty object, only `"` `\\` and control characters escaped.
private indirect enum TopologyDefinitionsJSON {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case array([TopologyDefinitionsJSON])
    case object([String: TopologyDefinitionsJSON])

    static func arguments(_ arguments: [String: TopologyValue]) -> TopologyDefinitionsJSON {
        .object(
            arguments.mapValues {
                switch $0 {
                case .string(let value): .string(value)
                case .int(let value): .int(value)
                case .bool(let value): .bool(value)
                }
            }
        )
    }

    func write(to text: inout String, indent: String) {
        switch self {
        case .string(let value):
            Self.writeString(value, to: &text)
        case .int(let value):
            text += String(value)
        case .bool(let value):
            text += value ? "true" : "false"
        case .array(let elements):
            guard !elements.isEmpty else {
                text += "[]"
                return
            }
            let inner = indent + "  "
            text += "[\n"
            for (index, element) in elements.enumerated() {
                text += inner
                element.write(to: &text, indent: inner)
                text += index == elements.count - 1 ? "\n" : ",\n"
            }
            text += indent + "]"
        case .object(let fields):
            guard !fields.isEmpty else {
                text += "{}"
                return
            }
            let inner = indent + "  "
            let keys = fields.keys.sorted()
            text += "{\n"
            for (index, key) in keys.enumerated() {
                text += inner
                Self.writeString(key, to: &text)
                text += ": "
                fields[key]!.write(to: &text, indent: inner)
                text += index == keys.count - 1 ? "\n" : ",\n"
            }
            text += indent + "}"
        }
    }

    private static func writeString(_ value: String, to text: inout String) {
        text += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }
}
