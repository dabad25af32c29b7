import AMQPClient
import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncRuntime

@Suite struct TopologyIntegrationTests {
    static func repoTopology() throws -> Topology {
        try Topology.load(contentsOf: TestBroker.repoRoot().appendingPathComponent(Topology.defaultRelativePath))
    }

    static func management() throws -> ManagementClient {
        ManagementClient(baseURL: URL(string: try TestBroker.env("WHSYNC_TEST_MANAGEMENT_URL"))!, username: "guest", password: "guest")
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
        let drift = try await deployer.verify(on: connection, management: Self.management())
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
        let drift = try await deployer.verify(on: connection, management: Self.management())
        #expect(drift.contains(.missing(kind: "queue", name: "erp.receipt")))
        #expect(drift.contains { if case .different(kind: "queue", name: "erp.shipment", let detail) = $0 { detail.contains("inequivalent arg") } else { false } })
        #expect(drift.contains { $0.description.contains("binding") && $0.description.contains("erp.shipment") })
        // Exchanges and the other queues are untouched and not reported.
        #expect(!drift.contains { $0.description.contains("erp.inventory") })
        await connection.close()

        // The CLI reports the same and exits non-zero.
        let cli = try await TestBroker.run(
            try TestBroker.whsyncPath(), ["topology", "verify", "--amqp-url", vhost.url],
            environment: ["RABBITMQ_MANAGEMENT_URL": try TestBroker.env("WHSYNC_TEST_MANAGEMENT_URL")])
        #expect(cli.status == 1)
        #expect(cli.stdout.contains("missing queue: erp.receipt"))
        #expect(cli.stdout.contains("different queue 'erp.shipment'"))
    }

    @Test func cliApplyThenVerifyPasses() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        let whsync = try TestBroker.whsyncPath()
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
        let whsync = try TestBroker.whsyncPath()
        let root = TestBroker.repoRoot().path
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("definitions-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let export = try await TestBroker.run(whsync, ["topology", "export", "--file", "\(root)/topology/topology.json", "--output", file])
        #expect(export.status == 0, "\(export.stderr)")

        let scratchURL = try TestBroker.env("WHSYNC_TEST_SCRATCH_AMQP_URL")
        let before = try await TestBroker.run(whsync, ["topology", "verify", "--amqp-url", scratchURL, "--file", "\(root)/topology/topology.json"])
        #expect(before.status == 1, "the scratch broker should start without the topology")

        try await TestBroker.scratchBroker("import", file)

        // rabbitmqctl import_definitions returns before the broker has finished importing.
        var after: TestBroker.ProcessResult?
        for _ in 0..<30 {
            after = try await TestBroker.run(
                whsync, ["topology", "verify", "--amqp-url", scratchURL, "--file", "\(root)/topology/topology.json"],
                environment: ["RABBITMQ_MANAGEMENT_URL": try TestBroker.env("WHSYNC_TEST_SCRATCH_MANAGEMENT_URL")])
            if after?.status == 0 { break }
            try await Task.sleep(for: .seconds(1))
        }
        #expect(after?.status == 0, "\(after?.stdout ?? "")\(after?.stderr ?? "")")
        #expect(after?.stdout.contains("exchanges, queues and bindings") == true)
    }
}
