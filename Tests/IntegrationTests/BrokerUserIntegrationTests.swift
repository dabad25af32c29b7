import AMQPClient
import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSimulation

#if canImport(FoundationNetworking)
import FoundationNetworking
import WarehouseSyncProcessKit
import WarehouseSyncWorker
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncSettings
import WarehouseSyncOps
#endif

/// The per-role broker users of topology/topology.json, applied by `whsync topology apply` to a
/// real broker, then used: each role may do what its program does and is refused the rest.
/// Users are broker-wide (their permissions per vhost), so the suite runs one test at a time.
@Suite(.serialized) struct BrokerUserIntegrationTests {
    /// A fresh vhost with the topology and its users applied, each user with a new random password.
    struct RoleBroker {
        let vhost: (configuration: AMQPConfiguration, url: String, name: String)
        let passwordsDirectory: URL
        let passwords: [String: String]

        func configuration(as user: String, password: String? = nil) -> AMQPConfiguration {
            var configuration = vhost.configuration
            configuration.username = user
            configuration.password = password ?? passwords[user]!
            configuration.connectionName = "role-test-\(user)"
            return configuration
        }

        /// What a program needs to connect as `user`: the URL without a password, and its file.
        func environment(as user: String) -> [String: String] {
            [
                "AMQP_URL": vhost.url.replacingOccurrences(of: "guest:guest@", with: "\(user)@"),
                "AMQP_PASSWORD_FILE": passwordsDirectory.appendingPathComponent(user).path,
            ]
        }

        func remove() async {
            await TestBroker.deleteVirtualHost(vhost.name)
            try? FileManager.default.removeItem(at: passwordsDirectory)
        }
    }

    static var topologyFile: String { TestBroker.repoRoot().appendingPathComponent(Topology.defaultRelativePath).path }

    /// Applies the topology and its users to `vhost` (default: a fresh one).
    static func setUp(vhost: (configuration: AMQPConfiguration, url: String, name: String)? = nil) async throws -> RoleBroker {
        let topology = try Topology.load(contentsOf: URL(fileURLWithPath: topologyFile))
        let vhost = if let vhost { vhost } else { try await TestBroker.makeVirtualHost() }
        let directory = try TestBroker.temporaryDirectory("passwords")
        var passwords: [String: String] = [:]
        for user in topology.users {
            let password = "pw-\(UUID().uuidString)"
            try Data("\(password)\n".utf8).write(to: directory.appendingPathComponent(user.passwordFile))
            passwords[user.name] = password
        }
        let broker = RoleBroker(vhost: vhost, passwordsDirectory: directory, passwords: passwords)
        let apply = try await applyCLI(broker)
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(apply.stdout.contains("applied: 8 broker users with their permissions in vhost '\(vhost.name)'"), "\(apply.stdout)")
        return broker
    }

    static func applyCLI(_ broker: RoleBroker, _ extra: [String] = []) async throws -> TestBroker.ProcessResult {
        try await TestBroker.run(
            try TestBroker.executablePath("whsync"),
            ["topology", "apply", "--amqp-url", broker.vhost.url, "--file", topologyFile,
             "--management-url", try TestBroker.env("WHSYNC_TEST_MANAGEMENT_URL"), "--passwords-dir", broker.passwordsDirectory.path] + extra)
    }

    static func verifyCLI(_ broker: RoleBroker) async throws -> TestBroker.ProcessResult {
        try await TestBroker.run(
            try TestBroker.executablePath("whsync"),
            ["topology", "verify", "--amqp-url", broker.vhost.url, "--file", topologyFile,
             "--management-url", try TestBroker.env("WHSYNC_TEST_MANAGEMENT_URL"), "--passwords-dir", broker.passwordsDirectory.path])
    }

    /// Runs `body` on a new connection as `user`: nil when it succeeds, else the broker's error
    /// (a refusal closes the channel, so every attempt gets its own connection).
    static func attempt(
        _ broker: RoleBroker, as user: String, confirms: Bool = false, _ body: (AMQPConnection) async throws -> Void
    ) async throws -> AMQPError? {
        let connection = try await TestBroker.connect(broker.configuration(as: user), confirms: confirms)
        var refusal: AMQPError?
        do {
            try await body(connection)
        } catch let error as AMQPError {
            refusal = error
        }
        await connection.close()
        return refusal
    }

    static func publish(_ broker: RoleBroker, as user: String, to exchange: String, routingKey: String = "inventory.WH1") async throws -> AMQPError? {
        try await attempt(broker, as: user, confirms: true) { connection in
            try await connection.publish(OutboundMessage(exchange: exchange, routingKey: routingKey, body: Array(#"{"role":"test"}"#.utf8)))
        }
    }

    static func consume(_ broker: RoleBroker, as user: String, _ queue: String) async throws -> AMQPError? {
        try await attempt(broker, as: user) { connection in
            let consumer = try await connection.consume(queue: queue, prefetch: 1)
            await consumer.cancel()
        }
    }

    static func declareQueue(_ broker: RoleBroker, as user: String) async throws -> AMQPError? {
        try await attempt(broker, as: user) { connection in
            _ = try await connection.withChannel { try $0.declareQueue("role-test-\(user)") }
        }
    }

    static func queueDepth(_ broker: RoleBroker, as user: String, _ queue: String) async throws -> AMQPError? {
        try await attempt(broker, as: user) { connection in
            _ = try await connection.withChannel { try $0.checkQueue(queue).messageCount }
        }
    }

    static func expectRefused(_ error: AMQPError?, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(error?.code == .accessRefused, "\(what): expected ACCESS_REFUSED, got \(error.map(String.init(describing:)) ?? "success")", sourceLocation: sourceLocation)
    }

    static func expectAllowed(_ error: AMQPError?, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(error == nil, "\(what): \(error.map(String.init(describing:)) ?? "")", sourceLocation: sourceLocation)
    }

    @Test func theWMSAndTheGatewayPublishEventsAndNothingElse() async throws {
        let broker = try await Self.setUp()
        for user in ["whsync-wms", "whsync-gateway"] {
            Self.expectAllowed(try await Self.publish(broker, as: user, to: "wms.events"), "\(user) publishing to wms.events")
            Self.expectAllowed(try await Self.queueDepth(broker, as: user, "erp.inventory"), "\(user) checking erp.inventory passively")
            Self.expectRefused(try await Self.consume(broker, as: user, "erp.inventory"), "\(user) consuming erp.inventory")
            Self.expectRefused(try await Self.publish(broker, as: user, to: "whsync.dead"), "\(user) publishing to whsync.dead")
            Self.expectRefused(try await Self.publish(broker, as: user, to: "whsync.retry"), "\(user) publishing to whsync.retry")
            Self.expectRefused(try await Self.declareQueue(broker, as: user), "\(user) declaring a queue")
        }
        await broker.remove()
    }

    @Test(arguments: Topology.streamNames)
    func aStreamWorkerConsumesItsOwnQueueAndPublishesRetriesAndDeadLettersOnly(stream: String) async throws {
        let broker = try await Self.setUp()
        let user = "whsync-\(stream)-worker"
        Self.expectAllowed(try await Self.consume(broker, as: user, "erp.\(stream)"), "\(user) consuming erp.\(stream)")
        for other in Topology.streamNames where other != stream {
            Self.expectRefused(try await Self.consume(broker, as: user, "erp.\(other)"), "\(user) consuming erp.\(other)")
        }
        Self.expectRefused(try await Self.consume(broker, as: user, "whsync.dead-letters"), "\(user) consuming whsync.dead-letters")
        Self.expectAllowed(try await Self.publish(broker, as: user, to: "whsync.retry"), "\(user) publishing to whsync.retry")
        Self.expectAllowed(try await Self.publish(broker, as: user, to: "whsync.dead"), "\(user) publishing to whsync.dead")
        Self.expectRefused(try await Self.publish(broker, as: user, to: "wms.events"), "\(user) publishing to wms.events")
        Self.expectRefused(try await Self.declareQueue(broker, as: user), "\(user) declaring a queue")
        // What the worker's start-up check does: passive declares need no permission.
        Self.expectAllowed(
            try await Self.attempt(broker, as: user) { connection in
                try await connection.withChannel { channel in
                    _ = try channel.checkQueue("erp.\(stream)")
                    try channel.checkExchange("whsync.retry")
                    try channel.checkExchange("whsync.dead")
                }
            }, "\(user) checking its topology passively")
        await broker.remove()
    }

    @Test func theReplayWorkerDrainsDeadLettersAndRepublishesEventsOnly() async throws {
        let broker = try await Self.setUp()
        let user = "whsync-replay-worker"
        Self.expectAllowed(try await Self.consume(broker, as: user, "whsync.dead-letters"), "consuming whsync.dead-letters")
        Self.expectAllowed(try await Self.publish(broker, as: user, to: "wms.events"), "publishing to wms.events")
        Self.expectRefused(try await Self.consume(broker, as: user, "erp.inventory"), "consuming erp.inventory")
        Self.expectRefused(try await Self.publish(broker, as: user, to: "whsync.retry"), "publishing to whsync.retry")
        await broker.remove()
    }

    @Test func kedaReadsQueueDepthsAndCannotPublishOrConsume() async throws {
        let broker = try await Self.setUp()
        let user = "whsync-keda"
        Self.expectAllowed(try await Self.queueDepth(broker, as: user, "erp.shipment"), "reading the depth of erp.shipment")
        Self.expectRefused(try await Self.publish(broker, as: user, to: "wms.events"), "publishing to wms.events")
        Self.expectRefused(try await Self.consume(broker, as: user, "erp.shipment"), "consuming erp.shipment")
        Self.expectRefused(try await Self.declareQueue(broker, as: user), "declaring a queue")
        // The monitoring tag: the management API's queue depths (KEDA's http mode).
        let management = try TestBroker.env("WHSYNC_TEST_MANAGEMENT_URL")
        var request = URLRequest(url: URL(string: "\(management)/api/queues/\(broker.vhost.name)/erp.shipment")!)
        request.setValue(
            "Basic " + Data("\(user):\(broker.passwords[user]!)".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        let (body, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        // A fresh queue's counters appear with the next statistics round; the queue itself at once.
        #expect(String(decoding: body, as: UTF8.self).contains("\"name\":\"erp.shipment\""))
        // A wrong password is refused at login.
        await #expect(throws: AMQPError.self) {
            try await TestBroker.connect(broker.configuration(as: user, password: "wrong")).close()
        }
        await broker.remove()
    }

    @Test func theOperatorVerifiesWithItsPasswordFileAndApplyIsIdempotentAndRepairsDrift() async throws {
        let broker = try await Self.setUp()
        let management = try TestBroker.env("WHSYNC_TEST_MANAGEMENT_URL")
        // As the operator, its password from a file (AMQP_PASSWORD_FILE), not the URL.
        let verifyAsOperator = try await TestBroker.run(
            try TestBroker.executablePath("whsync"),
            ["topology", "verify", "--file", Self.topologyFile, "--management-url", management,
             "--passwords-dir", broker.passwordsDirectory.path],
            environment: broker.environment(as: "whsync-operator"))
        #expect(verifyAsOperator.status == 0, "\(verifyAsOperator.stdout)\(verifyAsOperator.stderr)")
        #expect(verifyAsOperator.stdout.contains("topology matches: exchanges, queues, bindings and broker users"))

        let again = try await Self.applyCLI(broker)
        #expect(again.stdout.contains("(0 created, 0 updated, 8 unchanged)"), "\(again.stdout)\(again.stderr)")

        // Drift: wider permissions, a changed tag, a changed password.
        try await TestBroker.management(
            "PUT", "/api/permissions/\(broker.vhost.name)/whsync-wms", body: #"{"configure":".*","write":".*","read":"^$"}"#)
        try await TestBroker.management("PUT", "/api/users/whsync-keda", body: #"{"password":"\#(broker.passwords["whsync-keda"]!)","tags":"administrator"}"#)
        try await TestBroker.management("PUT", "/api/users/whsync-gateway", body: #"{"password":"not-the-file","tags":""}"#)
        let drift = try await Self.verifyCLI(broker)
        #expect(drift.status == 1)
        #expect(drift.stdout.contains("different permissions 'whsync-wms': in vhost '\(broker.vhost.name)': configure '.*', the topology says '^$'; write '.*', the topology says '^wms\\.events$'"), "\(drift.stdout)")
        #expect(drift.stdout.contains("different user 'whsync-keda': tags administrator, the topology says monitoring"), "\(drift.stdout)")
        #expect(drift.stdout.contains("different user 'whsync-gateway': the password is not the one in whsync-gateway"), "\(drift.stdout)")
        #expect(drift.stdout.split(separator: "\n").count == 3, "\(drift.stdout)")  // the three differences and nothing else

        let repaired = try await Self.applyCLI(broker)
        #expect(repaired.stdout.contains("(0 created, 3 updated, 5 unchanged)"), "\(repaired.stdout)\(repaired.stderr)")
        let clean = try await Self.verifyCLI(broker)
        #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
        Self.expectRefused(try await Self.consume(broker, as: "whsync-wms", "erp.inventory"), "whsync-wms after the repair")
        await broker.remove()
    }

    @Test func applySaysInOneLineWhenUsersAreNotAppliedAndAMissingPasswordFileChangesNothing() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        let whsync = try TestBroker.executablePath("whsync")
        let management = try TestBroker.env("WHSYNC_TEST_MANAGEMENT_URL")
        let plain = try await TestBroker.run(
            whsync, ["topology", "apply", "--amqp-url", vhost.url, "--file", Self.topologyFile], environment: ["RABBITMQ_MANAGEMENT_URL": ""])
        #expect(plain.status == 0, "\(plain.stderr)")
        let notApplied = plain.stderr.split(separator: "\n").filter { $0.contains("broker users") }
        #expect(
            notApplied == ["whsync: broker users NOT applied (8 in the topology): no management URL (--management-url or RABBITMQ_MANAGEMENT_URL)"],
            "\(plain.stderr)")

        let noPasswords = try await TestBroker.run(
            whsync, ["topology", "apply", "--amqp-url", vhost.url, "--file", Self.topologyFile, "--management-url", management],
            environment: ["BROKER_PASSWORDS_DIR": ""])
        #expect(noPasswords.status == 0)
        #expect(noPasswords.stderr.contains("broker users NOT applied (8 in the topology): no passwords directory"), "\(noPasswords.stderr)")

        // One password file missing: nothing is declared, and the error names the file.
        let directory = try TestBroker.temporaryDirectory("passwords")
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("secret".utf8).write(to: directory.appendingPathComponent("whsync-wms"))
        let fresh = try await TestBroker.makeVirtualHost()
        let missing = try await TestBroker.run(
            whsync, ["topology", "apply", "--amqp-url", fresh.url, "--file", Self.topologyFile, "--management-url", management,
                     "--passwords-dir", directory.path])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("cannot read \(directory.path)/whsync-gateway"), "\(missing.stderr)")
        #expect(try await TestBroker.management("GET", "/api/queues/\(fresh.name)").count <= 2, "nothing declared")
        await TestBroker.deleteVirtualHost(fresh.name)
        await TestBroker.deleteVirtualHost(vhost.name)
    }

    /// The real programs as their roles: the inventory worker (its retries and dead letters), the
    /// replay worker (stores the letters, replays the exhausted ones once the ERP is back) need no
    /// more than the topology grants them.
    @Test func theWorkersRunAsTheirOwnBrokerUsers() async throws {
        let catalogue = Catalogue(warehouses: 1, skus: 5)
        try await WorkerSystem.with(masterData: catalogue) { system in
            let broker = try await Self.setUp(vhost: (system.amqp, system.amqpURL, system.vhost))
            defer { try? FileManager.default.removeItem(at: broker.passwordsDirectory) }
            try await postJSON(system.erpURL + "/admin/faults", #"{"outage": true}"#)
            // Two attempts each (a delayed retry through whsync.retry, then a dead letter); two
            // events stay below the five failures in a row that would open the circuit.
            try await system.startWorker(
                .inventory, environment: broker.environment(as: "whsync-inventory-worker").merging(["RETRY_MAX_ATTEMPTS": "2"]) { $1 })
            let replayEnvironment = broker.environment(as: "whsync-replay-worker").merging(ReplayWorkerIntegrationTests.fastPolicy) { $1 }
            try await system.withReplayWorker(environment: replayEnvironment) { replay in
                let store = try await system.openStore()
                do {
                    let events = (0..<2).map { index in
                        inventoryMessage(
                            eventId: "role-\(index)", warehouse: "WH1", sku: catalogue.skus[index].sku, uom: catalogue.skus[index].uom,
                            sequence: 1)
                    }
                    let invalid = inventoryMessage(
                        eventId: "role-invalid", warehouse: "WH1", sku: catalogue.skus[3].sku, uom: catalogue.skus[3].uom, sequence: 1,
                        quantity: "0")
                    try await system.publish(events + [invalid])
                    try await system.waitForReplay(replay, "the three letters to be stored", timeout: .seconds(60)) {
                        try await store.deadLetters(matching: .all, limit: 100).count == 3
                    }
                    #expect(try await store.deadLetters(matching: .init(reason: .retriesExhausted), limit: 100).count == 2)
                    try await deleteRequest(system.erpURL + "/admin/faults")
                    try await system.waitForReplay(replay, "the ERP to book the replayed events", timeout: .seconds(60)) {
                        try await system.erpDocumentCount() == 2
                    }
                } catch {
                    await store.close()
                    throw error
                }
                await store.close()
            }
            let worker = try #require(system.workers[.inventory])
            #expect(!worker.log.contains("ACCESS_REFUSED"), "\(worker.log.suffix(2000))")
        }
    }

    /// `wms-gateway` as `whsync-gateway`: it starts (its check of `wms.events` is passive) and
    /// publishes what it accepts.
    @Test func theGatewayRunsAsItsOwnBrokerUser() async throws {
        let broker = try await Self.setUp()
        try await GatewayHarness.with(
            amqpURL: broker.vhost.url, amqp: broker.vhost.configuration, environment: broker.environment(as: "whsync-gateway")
        ) { gateway in
            let answer = try await gateway.post("/events", GatewayEvents.inventory("role-gateway-1"))
            #expect(answer.status == 202, "\(answer.json)")
            #expect(try await gateway.depth("erp.inventory") == 1)
        }
        await broker.remove()
    }
}
