import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSettings

@Suite("Topology plan")
struct TopologyPlanTests {
    static let workArguments: [String: TopologyValue] = [
        "x-queue-type": "quorum",
        "x-delivery-limit": 20,
        "x-dead-letter-exchange": "whsync.dead",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    ]

    static func retryQueue(_ stream: String, _ tier: String, ttl: Int64) -> QueueSpec {
        QueueSpec(
            name: "whsync.retry.\(stream).\(tier)",
            arguments: [
                "x-queue-type": "quorum",
                "x-message-ttl": .int(ttl),
                "x-dead-letter-exchange": "whsync.requeue",
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            ]
        )
    }

    static func retryBinding(_ stream: String, _ tier: String) -> BindingSpec {
        BindingSpec(
            source: "whsync.retry",
            destination: "whsync.retry.\(stream).\(tier)",
            destinationType: .queue,
            routingKey: "",
            arguments: ["x-match": "all", "whsync-stream": .string(stream), "whsync-retry-tier": .string(tier)]
        )
    }

    /// The plan the design asks for, written out object by object.
    static let expectedRepositoryPlan: TopologyPlan = {
        let streams = ["inventory", "shipment", "receipt"]
        let tiers: [(String, Int64)] = [("5s", 5000), ("30s", 30000), ("5m", 300_000)]
        var bindings: [BindingSpec] = []
        for stream in streams {
            bindings.append(BindingSpec(source: "wms.events", destination: "erp.\(stream)", destinationType: .queue, routingKey: "\(stream).*"))
            bindings.append(BindingSpec(source: "whsync.requeue", destination: "erp.\(stream)", destinationType: .queue, routingKey: "\(stream).*"))
        }
        for stream in streams {
            bindings += tiers.map { retryBinding(stream, $0.0) }
        }
        bindings.append(BindingSpec(source: "whsync.dead", destination: "whsync.dead-letters", destinationType: .queue, routingKey: "#"))
        return TopologyPlan(
            exchanges: [
                ExchangeSpec(name: "wms.events", type: "topic"),
                ExchangeSpec(name: "whsync.retry", type: "headers"),
                ExchangeSpec(name: "whsync.requeue", type: "topic", internal: false),
                ExchangeSpec(name: "whsync.dead", type: "topic"),
            ],
            queues: streams.map { QueueSpec(name: "erp.\($0)", arguments: workArguments) }
                + streams.flatMap { stream in tiers.map { retryQueue(stream, $0.0, ttl: $0.1) } }
                + [QueueSpec(name: "whsync.dead-letters", arguments: ["x-queue-type": "quorum"])],
            bindings: bindings
        )
    }()

    @Test("the repository's topology.json parses into the designed plan")
    func repositoryFile() throws {
        let topology = try Topology.load(contentsOf: TopologyFixtures.repositoryFile)
        #expect(topology.eventsExchange == "wms.events")
        #expect(topology.streams.map(\.name) == ["inventory", "shipment", "receipt"])
        #expect(topology.retry.tiers.map(\.name) == ["5s", "30s", "5m"])
        #expect(topology.retry.tiers.map(\.delay) == [.seconds(5), .seconds(30), .seconds(300)])
        let plan = topology.plan
        let expected = Self.expectedRepositoryPlan
        #expect(plan.exchanges == expected.exchanges)
        #expect(plan.queues == expected.queues)
        #expect(plan.bindings == expected.bindings)
        #expect(plan == expected)
    }

    @Test("every exchange and queue is durable and never auto-deleted")
    func durability() throws {
        let plan = try Topology.load(contentsOf: TopologyFixtures.repositoryFile).plan
        #expect(plan.exchanges.allSatisfy { $0.durable && !$0.autoDelete })
        #expect(plan.queues.allSatisfy { $0.durable && $0.arguments["x-queue-type"] == "quorum" })
    }

    @Test("defaults: queue erp.<stream>, no partitions, delivery limit 20; a stream may override the limit")
    func defaults() throws {
        let topology = try TopologyFixtures.topology(
            TopologyFixtures.document(top: #""eventsExchange": "wms.events""#, shipment: #"{ "deliveryLimit": 5 }"#)
        )
        #expect(topology.deliveryLimit == 20)
        #expect(topology.streams.map(\.queue) == ["erp.inventory", "erp.shipment", "erp.receipt"])
        #expect(topology.streams.map(\.partitions) == [0, 0, 0])
        #expect(topology.streams.map(\.deliveryLimit) == [20, 5, 20])
        let shipment = try #require(topology.plan.queues.first { $0.name == "erp.shipment" })
        #expect(shipment.arguments["x-delivery-limit"] == .int(5))
        #expect(topology.workQueues(for: "shipment") == ["erp.shipment"])
    }

    @Test("a renamed queue keeps its stream's routing")
    func renamedQueue() throws {
        let topology = try TopologyFixtures.topology(
            TopologyFixtures.document(receipt: #"{ "queue": "erp.goods-receipts", "description": "renamed" }"#)
        )
        #expect(topology.workQueues(for: "receipt") == ["erp.goods-receipts"])
        #expect(
            topology.plan.bindings.contains(
                BindingSpec(source: "wms.events", destination: "erp.goods-receipts", destinationType: .queue, routingKey: "receipt.*")
            )
        )
    }

    @Test("partitions: a consistent-hash exchange, N single-active-consumer queues, equal-weight bindings")
    func partitions() throws {
        let topology = try TopologyFixtures.topology(
            TopologyFixtures.document(inventory: #"{ "partitions": 4, "deliveryLimit": 7 }"#)
        )
        let plan = topology.plan
        let hashExchange = ExchangeSpec(
            name: "erp.inventory.partitions",
            type: "x-consistent-hash",
            internal: true,
            arguments: ["hash-header": "partition-key"]
        )
        #expect(plan.exchanges.filter { $0.type == "x-consistent-hash" } == [hashExchange])
        #expect(plan.exchanges.firstIndex(of: hashExchange)! > plan.exchanges.firstIndex { $0.name == "wms.events" }!)

        let partitionNames = (0..<4).map { "erp.inventory.p\($0)" }
        #expect(topology.workQueues(for: "inventory") == partitionNames)
        #expect(topology.stream(named: "inventory")?.partitionExchange == "erp.inventory.partitions")
        var sacArguments = Self.workArguments
        sacArguments["x-single-active-consumer"] = true
        sacArguments["x-delivery-limit"] = 7
        let partitionQueues = plan.queues.filter { $0.name.hasPrefix("erp.inventory") }
        #expect(partitionQueues == partitionNames.map { QueueSpec(name: $0, arguments: sacArguments) })
        #expect(!plan.queues.contains { $0.name == "erp.inventory" })

        let inventoryBindings = plan.bindings.filter { $0.destination.hasPrefix("erp.inventory") }
        #expect(
            inventoryBindings
                == [
                    BindingSpec(source: "wms.events", destination: "erp.inventory.partitions", destinationType: .exchange, routingKey: "inventory.*"),
                    BindingSpec(source: "whsync.requeue", destination: "erp.inventory.partitions", destinationType: .exchange, routingKey: "inventory.*"),
                ]
                + partitionNames.map {
                    BindingSpec(source: "erp.inventory.partitions", destination: $0, destinationType: .queue, routingKey: "1")
                }
        )
        // The other streams are untouched.
        #expect(topology.workQueues(for: "shipment") == ["erp.shipment"])
        #expect(plan.queues.first { $0.name == "erp.shipment" }?.arguments == Self.workArguments)
    }

    @Test("plan order: exchanges and queues exist before anything refers to them")
    func dependencyOrder() throws {
        let topology = try TopologyFixtures.topology(TopologyFixtures.document(shipment: #"{ "partitions": 2 }"#))
        let plan = topology.plan
        let exchanges = Set(plan.exchanges.map(\.name))
        let queues = Set(plan.queues.map(\.name))
        for queue in plan.queues {
            if case .string(let deadLetterExchange)? = queue.arguments["x-dead-letter-exchange"] {
                #expect(exchanges.contains(deadLetterExchange))
            }
        }
        for binding in plan.bindings {
            #expect(exchanges.contains(binding.source))
            #expect((binding.destinationType == .queue ? queues : exchanges).contains(binding.destination))
        }
        #expect(Set(plan.exchanges.map(\.name)).count == plan.exchanges.count)
        #expect(Set(plan.queues.map(\.name)).count == plan.queues.count)
        // Deterministic: parsing again gives the same plan, in the same order.
        #expect(try TopologyFixtures.topology(TopologyFixtures.document(shipment: #"{ "partitions": 2 }"#)).plan == plan)
    }

    @Test(
        "retry tier for an attempt: the tiers in order, the last one repeating",
        arguments: [(-1, "5s"), (0, "5s"), (1, "5s"), (2, "30s"), (3, "5m"), (4, "5m"), (100, "5m")]
    )
    func retryTier(attempt: Int, tier: String) throws {
        let topology = try Topology.load(contentsOf: TopologyFixtures.repositoryFile)
        #expect(topology.retryTier(forAttempt: attempt).name == tier)
        #expect(
            topology.retryHeaders(stream: "inventory", forAttempt: attempt)
                == [WireHeader.stream: "inventory", WireHeader.retryTier: tier]
        )
        let queue = topology.retryQueue(stream: "inventory", tier: topology.retryTier(forAttempt: attempt))
        #expect(queue == "whsync.retry.inventory.\(tier)")
        #expect(topology.plan.queues.contains { $0.name == queue })
    }

    @Test("header names are the wire names")
    func headerNames() {
        #expect(WireHeader.stream == "whsync-stream")
        #expect(WireHeader.retryTier == "whsync-retry-tier")
        #expect(WireHeader.partitionKey == "partition-key")
    }

    @Test("tier names are canonical and TTLs are in milliseconds")
    func canonicalTiers() throws {
        let topology = try TopologyFixtures.topology(
            TopologyFixtures.document(tiers: #"["500ms", "1500ms", "60s", "90s", "180m"]"#)
        )
        #expect(topology.retry.tiers.map(\.name) == ["500ms", "1500ms", "1m", "90s", "3h"])
        #expect(topology.retry.tiers.map(\.milliseconds) == [500, 1500, 60000, 90000, 10_800_000])
        let ttl = topology.plan.queues.first { $0.name == "whsync.retry.receipt.1m" }?.arguments["x-message-ttl"]
        #expect(ttl == .int(60000))
        #expect(topology.workQueues(for: "unknown").isEmpty)
    }
}
