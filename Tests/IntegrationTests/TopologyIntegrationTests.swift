import AMQPClient
import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncOps
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncWorker

@Suite struct TopologyIntegrationTests {
    static func repoTopology() throws -> Topology {
        try Topology.load(contentsOf: TestBroker.repoRoot().appendingPathComponent(Topology.defaultRelativePath))
    }

    /// Runs `body` with a client of the test broker's management API (shut down after it).
    static func withManagement<Result>(_ body: (ManagementClient) async throws -> Result) async throws -> Result {
        try await withManagementClient(
            baseURL: URL(string: try TestBroker.env("WHSYNC_TEST_MANAGEMENT_URL"))!, username: "guest", password: "guest", body)
    }

    /// What the broker holds in a vhost, as the management API lists it.
    static func snapshot(vhost: String) async throws -> String {
        var parts: [String] = []
        for kind in ["exchanges", "queues", "bindings"] {
            let data = try await TestBroker.management("GET", "/api/\(kind)/\(vhost)?columns=name,type,durable,arguments,source,destination,routing_key")
            let json = try JSONSerialization.jsonObject(with: data) as! [[String: Any]]
            let lines = json.map { item in
                String(decoding: try! JSONSerialization.data(withJSONObject: item, options: [.sortedKeys]), as: UTF8.self)
            }
            parts.append(contentsOf: lines.sorted())
        }
        return parts.joined(separator: "\n")
    }

    @Test func applyingTwiceIsANoOpAndVerifyThenPasses() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        let deployer = TopologyDeployer(plan: try Self.repoTopology().plan)
        let connection = try await TestBroker.connect(vhost.configuration)
        try await deployer.apply(on: connection)
        let first = try await Self.snapshot(vhost: vhost.name)
        try await deployer.apply(on: connection)
        let second = try await Self.snapshot(vhost: vhost.name)
        #expect(first == second)
        #expect(first.contains("erp.inventory"))
        let drift = try await Self.withManagement { try await deployer.verify(on: connection, management: $0) }
        #expect(drift.isEmpty, "\(drift)")
        await connection.close()
    }

    @Test func verifyReportsADeletedQueueAQueueWithOtherArgumentsAndAMissingBinding() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        let deployer = TopologyDeployer(plan: try Self.repoTopology().plan)
        let connection = try await TestBroker.connect(vhost.configuration)
        try await deployer.apply(on: connection)
        try await connection.withChannel { channel in
            try channel.deleteQueue("erp.receipt")
            try channel.deleteQueue("erp.shipment")
            try channel.declareQueue("erp.shipment", arguments: ["x-queue-type": "quorum", "x-delivery-limit": 3])
        }
        let drift = try await Self.withManagement { try await deployer.verify(on: connection, management: $0) }
        #expect(drift.contains(.missing(kind: "queue", name: "erp.receipt")))
        #expect(drift.contains { if case .different(kind: "queue", name: "erp.shipment", let detail) = $0 { detail.contains("inequivalent arg") } else { false } })
        #expect(drift.contains { $0.description.contains("binding") && $0.description.contains("erp.shipment") })
        // Exchanges and the other queues are untouched and not reported.
        #expect(!drift.contains { $0.description.contains("erp.inventory") })
        await connection.close()

        // The CLI reports the same and exits non-zero.
        let cli = try await TestBroker.run(
            try TestBroker.executablePath("whsync"), ["topology", "verify", "--amqp-url", vhost.url],
            environment: ["RABBITMQ_MANAGEMENT_URL": try TestBroker.env("WHSYNC_TEST_MANAGEMENT_URL")])
        #expect(cli.status == 1)
        #expect(cli.stdout.contains("missing queue: erp.receipt"))
        #expect(cli.stdout.contains("different queue 'erp.shipment'"))
    }

    @Test func cliVerifyWithAnUnreachableManagementURLFailsWithOneLineNamingItWithoutThePassword() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        // The empty vhost is checked over AMQP first, then the bindings through the management
        // API, where nothing listens (port 1 of the loopback interface).
        let verify = try await TestBroker.run(
            try TestBroker.executablePath("whsync"),
            ["topology", "verify", "--amqp-url", vhost.url, "--management-url", "http://whsync-admin:url-secret@127.0.0.1:1"])
        #expect(verify.status != 0)
        let lines = verify.stderr.split(separator: "\n").filter { $0.contains("management API") }
        #expect(lines.count == 1, "\(verify.stderr)")
        #expect(lines.first?.contains("cannot reach the management API at http://whsync-admin@127.0.0.1:1") == true, "\(verify.stderr)")
        #expect(!verify.stderr.contains("url-secret") && !verify.stdout.contains("url-secret"))
    }

    @Test func wrongCredentialsAreRefusedNamingTheURLAndStatusWithoutAnyPassword() async throws {
        var url = try #require(URLComponents(string: try TestBroker.env("WHSYNC_TEST_MANAGEMENT_URL")))
        url.user = "whsync-admin"
        url.password = "url-secret"
        let error = await #expect(throws: AMQPError.self) {
            try await withManagementClient(baseURL: try #require(url.url), username: "guest", password: "wrong-password") {
                try await $0.bindings(vhost: "/")
            }
        }
        let message = try #require(error).description
        #expect(error?.code == .accessRefused)
        #expect(message.hasPrefix("management API GET http://"), "\(message)")
        #expect(message.hasSuffix("/api/bindings/%2F answered HTTP 401"), "\(message)")
        #expect(!message.contains("url-secret") && !message.contains("wrong-password") && !message.contains("whsync-admin"), "\(message)")
    }

    @Test func cliApplyThenVerifyPasses() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        let whsync = try TestBroker.executablePath("whsync")
        let root = TestBroker.repoRoot().path
        let apply = try await TestBroker.run(whsync, ["topology", "apply", "--amqp-url", vhost.url, "--file", "\(root)/topology/topology.json"])
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(apply.stdout.contains("applied:"))
        let verify = try await TestBroker.run(whsync, ["topology", "verify", "--amqp-url", vhost.url, "--file", "\(root)/topology/topology.json"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stdout.contains("topology matches"))
    }
}

extension ScratchBrokerTests {
    @Test func exportedDefinitionsImportIntoAFreshBrokerAndVerifyPasses() async throws {
        let whsync = try TestBroker.executablePath("whsync")
        let root = TestBroker.repoRoot().path
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("definitions-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        // The users' password files: the export carries their hashes, the broker must accept them.
        let passwords = try TestBroker.temporaryDirectory("passwords")
        defer { try? FileManager.default.removeItem(at: passwords) }
        let kedaPassword = "keda-\(UUID().uuidString)"
        for user in try TopologyIntegrationTests.repoTopology().users {
            try Data((user.name == "whsync-keda" ? kedaPassword : UUID().uuidString).utf8).write(to: passwords.appendingPathComponent(user.passwordFile))
        }
        let export = try await TestBroker.run(
            whsync, ["topology", "export", "--file", "\(root)/topology/topology.json", "--output", file, "--passwords-dir", passwords.path])
        #expect(export.status == 0, "\(export.stderr)")

        let scratchURL = try TestBroker.env("WHSYNC_TEST_SCRATCH_AMQP_URL")
        let before = try await TestBroker.run(whsync, ["topology", "verify", "--amqp-url", scratchURL, "--file", "\(root)/topology/topology.json"])
        #expect(before.status == 1, "the scratch broker should start without the topology")

        try await TestBroker.scratchBroker("import", file)

        // rabbitmqctl import_definitions returns before the broker has finished importing.
        var after: TestBroker.ProcessResult?
        for _ in 0..<30 {
            after = try await TestBroker.run(
                whsync, ["topology", "verify", "--amqp-url", scratchURL, "--file", "\(root)/topology/topology.json", "--passwords-dir", passwords.path],
                environment: ["RABBITMQ_MANAGEMENT_URL": try TestBroker.env("WHSYNC_TEST_SCRATCH_MANAGEMENT_URL")])
            if after?.status == 0 { break }
            try await Task.sleep(for: .seconds(1))
        }
        #expect(after?.status == 0, "\(after?.stdout ?? "")\(after?.stderr ?? "")")
        #expect(after?.stdout.contains("exchanges, queues, bindings and broker users") == true)

        // The imported hash is one RabbitMQ logs in with: KEDA's user reads a queue depth.
        var keda = try AMQPConfiguration(url: scratchURL, connectionName: "keda-import-test")
        keda.username = "whsync-keda"
        keda.password = kedaPassword
        let connection = try await TestBroker.connect(keda)
        let depth = try await connection.withChannel { try $0.checkQueue("erp.inventory").messageCount }
        #expect(depth == 0)
        await connection.close()
    }
}

@Suite struct PartitionedTopologyIntegrationTests {
    static let partitionedTopology = #"""
        {
          "eventsExchange": "wms.events",
          "streams": { "inventory": { "partitions": 4 }, "shipment": {}, "receipt": {} },
          "retry": { "exchange": "whsync.retry", "requeueExchange": "whsync.requeue", "tiers": ["1s"] },
          "deadLetter": { "exchange": "whsync.dead", "queue": "whsync.dead-letters" }
        }
        """#

    @Test func eachSequencingKeyLandsInOnePartitionAndRetriesComeBackToIt() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        let topology = try Topology(jsonData: Data(Self.partitionedTopology.utf8))
        let partitions = topology.workQueues(for: "inventory")
        #expect(partitions == (0..<4).map { "erp.inventory.p\($0)" })
        let connection = try await TestBroker.connect(vhost.configuration, confirms: true)
        try await TopologyDeployer(plan: topology.plan).apply(on: connection)
        let drift = try await TopologyIntegrationTests.withManagement {
            try await TopologyDeployer(plan: topology.plan).verify(on: connection, management: $0)
        }
        #expect(drift.isEmpty)

        // 40 keys x 5 events through wms.events, as whsync publish sends them.
        let keys = (0..<40).map { "WH1/SKU-\($0)" }
        var messages: [OutboundMessage] = []
        for key in keys {
            for sequence in 1...5 {
                messages.append(OutboundMessage(
                    exchange: "wms.events", routingKey: "inventory.WH1", body: Array("\(key)#\(sequence)".utf8),
                    properties: AMQPProperties(headers: ["partition-key": .string(key)], deliveryMode: .persistent, messageId: "\(key)#\(sequence)"),
                    mandatory: true))
            }
        }
        let results = await connection.publish(messages)
        #expect(results.allSatisfy { (try? $0.get()) != nil })

        var partitionOfKey: [String: String] = [:]
        var total = 0
        for queue in partitions {
            let count = Int(try await connection.withChannel { try $0.checkQueue(queue) }.messageCount)
            total += count
            guard count > 0 else { continue }
            let consumer = try await connection.consume(queue: queue, prefetch: 500)
            for delivery in await receive(consumer, count: count, timeout: .seconds(20)) {
                let key = String(decoding: delivery.body, as: UTF8.self).split(separator: "#")[0]
                #expect(partitionOfKey[String(key), default: queue] == queue, "key \(key) split across partitions")
                partitionOfKey[String(key)] = queue
            }
            await consumer.cancel()
        }
        #expect(total == messages.count)
        #expect(partitionOfKey.count == keys.count)
        #expect(Set(partitionOfKey.values).count > 1, "the hash spread 40 keys over more than one partition")

        // A retry goes through the 1s tier and back to the same partition via whsync.requeue.
        let key = keys[7]
        let home = try #require(partitionOfKey[key])
        var headers: AMQPTable = ["partition-key": .string(key), "whsync-attempt": 2]
        for (name, value) in topology.retryHeaders(stream: "inventory", forAttempt: 1) { headers[name] = .string(value) }
        try await connection.publish(OutboundMessage(
            exchange: "whsync.retry", routingKey: "inventory.WH1", body: Array("retry".utf8),
            properties: AMQPProperties(headers: headers, deliveryMode: .persistent, messageId: "retry-1"), mandatory: true))
        let consumer = try await connection.consume(queue: home, prefetch: 10)
        let back = try #require(await receive(consumer, count: 1, timeout: .seconds(20)).first)
        #expect(back.properties.messageId == "retry-1")
        #expect(back.routingKey == "inventory.WH1", "the original routing key survives the retry")
        #expect(back.exchange == "whsync.requeue")
        await consumer.cancel()
        await connection.close()
    }
}
