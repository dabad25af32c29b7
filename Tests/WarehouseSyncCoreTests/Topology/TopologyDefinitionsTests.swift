import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSettings
import WarehouseSyncOperations

@Suite("Topology definitions export")
struct TopologyDefinitionsTests {
    /// JSON as read back by JSONSerialization, with booleans, integers and other numbers kept apart
    /// so that `true` is not mistaken for `1`.
    indirect enum JSON: Equatable, CustomStringConvertible {
        case string(String)
        case int(Int64)
        case bool(Bool)
        case array([JSON])
        case object([String: JSON])
        case other(String)

        init(_ value: Any) {
            switch value {
            case let string as String:
                self = .string(string)
            case let number as NSNumber:
                switch String(cString: number.objCType) {
                case "c", "B": self = .bool(number.boolValue)
                case "d", "f": self = .other("\(number)")
                default: self = .int(number.int64Value)
                }
            case let array as [Any]:
                self = .array(array.map(JSON.init))
            case let object as [String: Any]:
                self = .object(object.mapValues(JSON.init))
            default:
                self = .other("\(value)")
            }
        }

        var description: String {
            switch self {
            case .string(let value): "\"\(value)\""
            case .int(let value): "\(value)"
            case .bool(let value): "\(value)"
            case .array(let values): "[\(values.map(\.description).joined(separator: ", "))]"
            case .object(let fields): "{\(fields.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))}"
            case .other(let value): "?\(value)"
            }
        }

        subscript(key: String) -> JSON? {
            guard case .object(let fields) = self else { return nil }
            return fields[key]
        }

        var array: [JSON] {
            guard case .array(let values) = self else { return [] }
            return values
        }
    }

    static func readBack(_ data: Data) throws -> JSON {
        JSON(try JSONSerialization.jsonObject(with: data))
    }

    @Test("the export has exactly the definitions fields, and nothing about users")
    func documentShape() throws {
        let plan = try Topology.load(contentsOf: TopologyFixtures.repositoryFile).plan
        let json = try Self.readBack(plan.definitions())
        guard case .object(let top) = json else {
            Issue.record("not an object: \(json)")
            return
        }
        #expect(
            Set(top.keys)
                == ["rabbit_version", "rabbitmq_version", "product_name", "product_version", "vhosts", "exchanges", "queues", "bindings"]
        )
        #expect(top["rabbit_version"] == .string("3.10.8"))
        #expect(top["rabbitmq_version"] == .string("3.10.8"))
        #expect(top["product_name"] == .string("RabbitMQ"))
        #expect(top["vhosts"] == .array([.object(["name": .string("/")])]))
        #expect(json["exchanges"]?.array.count == plan.exchanges.count)
        #expect(json["queues"]?.array.count == plan.queues.count)
        #expect(json["bindings"]?.array.count == plan.bindings.count)
    }

    @Test("exchanges, queues and bindings round-trip field by field, in plan order")
    func objects() throws {
        let topology = try TopologyFixtures.topology(TopologyFixtures.document(inventory: #"{ "partitions": 2 }"#))
        let plan = topology.plan
        let json = try Self.readBack(plan.definitions(vhost: "wms", rabbitVersion: "3.13.7"))
        #expect(json["rabbit_version"] == .string("3.13.7"))
        #expect(json["vhosts"] == .array([.object(["name": .string("wms")])]))

        #expect(
            json["exchanges"]?.array.first
                == .object([
                    "name": .string("wms.events"), "vhost": .string("wms"), "type": .string("topic"),
                    "durable": .bool(true), "auto_delete": .bool(false), "internal": .bool(false),
                    "arguments": .object([:]),
                ])
        )
        #expect(
            json["exchanges"]?.array.first { $0["name"] == .string("erp.inventory.partitions") }
                == .object([
                    "name": .string("erp.inventory.partitions"), "vhost": .string("wms"),
                    "type": .string("x-consistent-hash"), "durable": .bool(true), "auto_delete": .bool(false),
                    "internal": .bool(true), "arguments": .object(["hash-header": .string("partition-key")]),
                ])
        )
        #expect(
            json["queues"]?.array.first
                == .object([
                    "name": .string("erp.inventory.p0"), "vhost": .string("wms"), "durable": .bool(true),
                    "auto_delete": .bool(false),
                    "arguments": .object([
                        "x-queue-type": .string("quorum"), "x-delivery-limit": .int(20),
                        "x-dead-letter-exchange": .string("whsync.dead"),
                        "x-dead-letter-strategy": .string("at-least-once"), "x-overflow": .string("reject-publish"),
                        "x-single-active-consumer": .bool(true),
                    ]),
                ])
        )
        #expect(
            json["queues"]?.array.first { $0["name"] == .string("whsync.retry.shipment.30s") }?["arguments"]
                == .object([
                    "x-queue-type": .string("quorum"), "x-message-ttl": .int(30000),
                    "x-dead-letter-exchange": .string("whsync.requeue"),
                    "x-dead-letter-strategy": .string("at-least-once"), "x-overflow": .string("reject-publish"),
                ])
        )
        #expect(
            json["bindings"]?.array.first
                == .object([
                    "source": .string("wms.events"), "vhost": .string("wms"),
                    "destination": .string("erp.inventory.partitions"), "destination_type": .string("exchange"),
                    "routing_key": .string("inventory.*"), "arguments": .object([:]),
                ])
        )
        #expect(
            json["bindings"]?.array.first { $0["destination"] == .string("whsync.retry.receipt.5m") }
                == .object([
                    "source": .string("whsync.retry"), "vhost": .string("wms"),
                    "destination": .string("whsync.retry.receipt.5m"), "destination_type": .string("queue"),
                    "routing_key": .string(""),
                    "arguments": .object([
                        "x-match": .string("all"), "whsync-stream": .string("receipt"),
                        "whsync-retry-tier": .string("5m"),
                    ]),
                ])
        )

        // Every object, in order, as the plan has it.
        #expect(json["exchanges"]?.array.map { $0["name"] } == plan.exchanges.map { .string($0.name) })
        #expect(json["queues"]?.array.map { $0["name"] } == plan.queues.map { .string($0.name) })
        #expect(
            json["bindings"]?.array.map { [$0["source"], $0["destination"], $0["routing_key"]] }
                == plan.bindings.map { [.string($0.source), .string($0.destination), .string($0.routingKey)] }
        )
    }

    @Test("the file is diff-friendly: pretty-printed, sorted keys, unescaped slashes, final newline, stable")
    func textForm() throws {
        let plan = try Topology.load(contentsOf: TopologyFixtures.repositoryFile).plan
        let data = plan.definitions()
        let text = try #require(String(data: data, encoding: .utf8))
        #expect(text.hasSuffix("}\n"))
        #expect(text.contains("\n      \"vhost\": \"/\"\n"))
        #expect(text.contains("\"arguments\": {},\n"))
        #expect(!text.contains("\\/"))
        #expect(text.split(separator: "\n").count > 100)
        let topKeys = text.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { $0.split(separator: "\"")[1] }
        #expect(
            topKeys
                == ["bindings", "exchanges", "product_name", "product_version", "queues", "rabbit_version", "rabbitmq_version", "vhosts"]
        )
        #expect(plan.definitions() == data)
    }

    @Test("strings are escaped as JSON requires")
    func escaping() throws {
        let plan = TopologyPlan(exchanges: [], queues: [QueueSpec(name: "q", arguments: ["x-note": "a\"b\\c\nd\u{1}é"])], bindings: [])
        let data = plan.definitions(vhost: "tab\there")
        let text = try #require(String(data: data, encoding: .utf8))
        #expect(text.contains(#""x-note": "a\"b\\c\nd\u0001é""#))
        #expect(text.contains(#""exchanges": [],"#))
        let json = try Self.readBack(data)
        #expect(json["queues"]?.array.first?["arguments"] == .object(["x-note": .string("a\"b\\c\nd\u{1}é")]))
        #expect(json["vhosts"] == .array([.object(["name": .string("tab\there")])]))
    }
}
