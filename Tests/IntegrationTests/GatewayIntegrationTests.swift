import AMQPClient
import Foundation
import Testing
import WarehouseSyncCore

#if canImport(FoundationNetworking)
import FoundationNetworking
import WarehouseSyncProcessKit
import WarehouseSyncWorker
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncSettings
import WarehouseSyncOps
#endif

/// A `wms-gateway` process on a virtual host of its own with the repository's topology applied,
/// with a bearer token and an HMAC secret.
final class GatewayHarness: @unchecked Sendable {
    static let token = "gateway-test-token"
    static let secret = Array("integration-secret-0123456789abcdef".utf8)

    let directory: URL
    let amqp: AMQPConfiguration
    let gateway: ChildProcess
    let baseURL: String

    /// Starts the gateway, runs `body`, then stops it with SIGTERM and expects exit status 0.
    static func with(
        amqpURL: String, amqp: AMQPConfiguration, environment: [String: String] = [:], _ body: (GatewayHarness) async throws -> Void
    ) async throws {
        let harness = try await GatewayHarness(amqpURL: amqpURL, amqp: amqp, environment: environment)
        do {
            try await body(harness)
        } catch {
            await harness.gateway.stop()
            throw error
        }
        harness.gateway.signal(SIGTERM)
        let status = await harness.gateway.waitForExit(timeout: .seconds(20))
        #expect(status == 0, "wms-gateway should exit 0 after SIGTERM:\n\(harness.gateway.log.suffix(2000))")
        if status == nil { await harness.gateway.stop() }
        try? FileManager.default.removeItem(at: harness.directory)
    }

    /// A fresh virtual host on the main broker with the topology applied, and a gateway on it.
    static func withVirtualHost(environment: [String: String] = [:], _ body: (GatewayHarness) async throws -> Void) async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        do {
            try await TestBroker.applyTopology(amqpURL: vhost.url)
            try await with(amqpURL: vhost.url, amqp: vhost.configuration, environment: environment, body)
        } catch {
            await TestBroker.deleteVirtualHost(vhost.name)
            throw error
        }
        await TestBroker.deleteVirtualHost(vhost.name)
    }

    private init(amqpURL: String, amqp: AMQPConfiguration, environment: [String: String]) async throws {
        self.amqp = amqp
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let tokenFile = directory.appendingPathComponent("token")
        let secretFile = directory.appendingPathComponent("secret")
        try Data((Self.token + "\n").utf8).write(to: tokenFile)
        try Data(Self.secret).write(to: secretFile)
        gateway = try ChildProcess(
            name: "wms-gateway", executable: try TestBroker.executablePath("wms-gateway"),
            environment: [
                "AMQP_URL": amqpURL, "GATEWAY_PORT": "0", "GATEWAY_TOKEN_FILE": tokenFile.path,
                "GATEWAY_HMAC_SECRET_FILE": secretFile.path, "LOG_LEVEL": "info", "PATH": "/usr/bin:/bin",
            ].merging(environment) { _, new in new },
            logFile: directory.appendingPathComponent("gateway.log"))
        baseURL = "http://" + (try await gateway.awaitLog(#"gateway\.address=(127\.0\.0\.1:[0-9]+)"#))
    }

    struct Answer: @unchecked Sendable {  // JSONSerialization values: read-only after parsing
        let status: Int
        let json: [String: Any]
        let headers: [AnyHashable: Any]

        var results: [[String: Any]] { json["results"] as? [[String: Any]] ?? [] }
    }

    enum Credentials {
        case token(String)
        case signed(timestamp: Int, secret: [UInt8])
        case none

        static let valid = Credentials.token(GatewayHarness.token)
        static var freshSignature: Credentials { .signed(timestamp: Int(Date().timeIntervalSince1970), secret: GatewayHarness.secret) }
    }

    func post(
        _ path: String, _ body: String, _ credentials: Credentials = .valid, headers: [String: String] = [:], timeout: TimeInterval = 60
    ) async throws -> Answer {
        var request = URLRequest(url: URL(string: baseURL + path)!, timeoutInterval: timeout)
        request.httpMethod = "POST"
        request.httpBody = Data(body.utf8)
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        switch credentials {
        case .token(let token):
            request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        case .signed(let timestamp, let secret):
            request.setValue(String(timestamp), forHTTPHeaderField: GatewayAuthentication.timestampHeader)
            request.setValue(
                GatewayAuthentication.signature(secret: secret, timestamp: String(timestamp), body: Array(body.utf8)),
                forHTTPHeaderField: GatewayAuthentication.signatureHeader)
        case .none:
            break
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return Answer(status: http.statusCode, json: json, headers: http.allHeaderFields)
    }

    func status(_ path: String) async throws -> Int {
        let (_, response) = try await URLSession.shared.data(from: URL(string: baseURL + path)!)
        return (response as! HTTPURLResponse).statusCode
    }

    /// Every message ready in `queue`, consumed (and acked).
    func drain(_ queue: String) async throws -> [AMQPDelivery] {
        let depth = try await TestBroker.queueDepth(amqp, queue)
        let connection = try await TestBroker.connect(amqp)
        var messages: [AMQPDelivery] = []
        if depth > 0 {
            let consumer = try await connection.consume(queue: queue, prefetch: 500)
            messages = await receive(consumer, count: Int(depth), timeout: .seconds(30))
            await consumer.cancel()
        }
        await connection.close()
        return messages
    }

    func depth(_ queue: String) async throws -> UInt32 {
        try await TestBroker.queueDepth(amqp, queue)
    }
}

/// Event bodies for the gateway tests: valid ones of each stream and a few broken ones.
enum GatewayEvents {
    static func inventory(_ id: String, warehouse: String = "WH1", sku: String = "SKU-1", sequence: Int = 1) -> String {
        #"{"schema":"inventory.delta/1","eventId":"\#(id)","occurredAt":"2026-11-23T06:00:00Z","warehouse":"\#(warehouse)","sequence":\#(sequence),"sku":"\#(sku)","quantity":"2.5","uom":"EA","status":"available","reason":"receipt","correlationId":"c-\#(id)"}"#
    }

    static func shipment(_ id: String) -> String {
        #"{"schema":"shipment.event/1","eventId":"\#(id)","occurredAt":"2026-11-23T06:00:00Z","warehouse":"WH2","sequence":1,"shipmentId":"SH-\#(id)","orderRef":"O-1","status":"shipped","lines":[{"sku":"SKU-1","quantity":1,"uom":"EA"}]}"#
    }

    static func receipt(_ id: String) -> String {
        #"{"schema":"receipt.event/1","eventId":"\#(id)","occurredAt":"2026-11-23T06:00:00Z","warehouse":"WH3","sequence":1,"receiptId":"R-\#(id)","purchaseOrderRef":"PO-1","supplier":"ACME","status":"received","lines":[{"sku":"SKU-1","quantityExpected":5,"quantityReceived":5,"uom":"EA"}]}"#
    }

    /// Sequence 0 breaks `sequence: must be an integer ≥ 1`.
    static func badSequence(_ id: String) -> String {
        inventory(id).replacingOccurrences(of: #""sequence":1"#, with: #""sequence":0"#)
    }

    /// A warehouse the routing key cannot carry.
    static func badWarehouse(_ id: String) -> String {
        inventory(id, warehouse: "WH 1")
    }
}

@Suite struct GatewayIntegrationTests {
    @Test func acceptedEventsAreInTheirQueuesExactlyOnceWithTheContractsProperties() async throws {
        try await GatewayHarness.withVirtualHost { gateway in
            var expected: [String: Set<String>] = ["erp.inventory": [], "erp.shipment": [], "erp.receipt": []]
            for index in 0..<10 {
                let id = "single-\(index)"
                let credentials: GatewayHarness.Credentials = index.isMultiple(of: 2) ? .valid : .freshSignature
                let answer = try await gateway.post("/events", GatewayEvents.inventory(id, sku: "S\(index)"), credentials)
                #expect(answer.status == 202, "\(answer.json)")
                #expect(answer.json["eventId"] as? String == id)
                #expect(answer.json["status"] as? String == "accepted")
                expected["erp.inventory"]!.insert(id)
            }
            var lines: [String] = []
            for index in 0..<90 {
                let id = "batch-\(index)"
                switch index % 3 {
                case 0: lines.append(GatewayEvents.inventory(id, sku: "B\(index)")); expected["erp.inventory"]!.insert(id)
                case 1: lines.append(GatewayEvents.shipment(id)); expected["erp.shipment"]!.insert(id)
                default: lines.append(GatewayEvents.receipt(id)); expected["erp.receipt"]!.insert(id)
                }
            }
            let batch = try await gateway.post("/events:batch", lines.joined(separator: "\n") + "\n")
            #expect(batch.status == 202, "\(batch.json)")
            #expect(batch.json["accepted"] as? Int == 90)
            let array = try await gateway.post("/events:batch", "[" + [GatewayEvents.receipt("array-0")].joined(separator: ",") + "]")
            #expect(array.status == 202, "\(array.json)")
            expected["erp.receipt"]!.insert("array-0")

            for (queue, ids) in expected {
                let messages = try await gateway.drain(queue)
                let seen = messages.compactMap(\.properties.messageId)
                #expect(seen.count == ids.count && Set(seen) == ids, "\(queue): \(seen.count) messages for \(ids.count) events")
                for message in messages {
                    let event = try EventDecoder().decode(message.body, routingKey: message.routingKey)
                    #expect(message.properties.type == event.schema)
                    #expect(message.properties.deliveryMode == .persistent)
                    #expect(message.properties.contentType == "application/json")
                    #expect(message.properties.headers["partition-key"] == .string(event.sequencingKey))
                    #expect(message.properties.correlationId == event.header.correlationId)
                }
            }
        }
    }

    @Test func aMixedBatchPublishesExactlyTheGoodEventsAndSaysWhichFailedAndWhy() async throws {
        try await GatewayHarness.withVirtualHost { gateway in
            let events = [
                GatewayEvents.inventory("good-0", sku: "A"), GatewayEvents.badSequence("bad-1"),
                GatewayEvents.inventory("good-2", sku: "B"), GatewayEvents.badWarehouse("bad-3"), "{not json",
            ]
            let answer = try await gateway.post("/events:batch", "[" + events.dropLast().joined(separator: ",") + "]")
            #expect(answer.status == 207, "\(answer.json)")
            #expect(answer.json["accepted"] as? Int == 2)
            #expect(answer.json["invalid"] as? Int == 2)
            let results = answer.results
            try #require(results.count == 4, "\(answer.json)")
            #expect(results.map { $0["status"] as? String } == ["accepted", "invalid", "accepted", "invalid"])
            #expect(results.map { $0["index"] as? Int } == [0, 1, 2, 3])
            #expect(results[1]["eventId"] as? String == "bad-1")
            let violations = results[1]["violations"] as? [[String: String]] ?? []
            #expect(violations.contains { $0["field"] == "sequence" && $0["rule"]?.contains("≥ 1") == true }, "\(violations)")
            #expect((results[3]["violations"] as? [[String: String]] ?? []).contains { $0["field"] == "warehouse" })

            // JSON lines: a line that is not JSON is one invalid event, with its line number.
            let lines = try await gateway.post("/events:batch", [events[4], GatewayEvents.inventory("good-5", sku: "C")].joined(separator: "\n"))
            #expect(lines.status == 207, "\(lines.json)")
            #expect(lines.results.first?["line"] as? Int == 1)
            #expect((lines.results.first?["violations"] as? [[String: String]])?.first?["field"] == "body")

            // A single invalid event: 400 with the field, nothing published.
            let single = try await gateway.post("/events", GatewayEvents.badSequence("bad-6"))
            #expect(single.status == 400)
            #expect((single.json["violations"] as? [[String: String]])?.first?["field"] == "sequence")

            let ids = try await gateway.drain("erp.inventory").compactMap(\.properties.messageId)
            #expect(ids.sorted() == ["good-0", "good-2", "good-5"])
        }
    }

    @Test func wrongTokensBadSignaturesAndStaleTimestampsGet401AndPublishNothing() async throws {
        try await GatewayHarness.withVirtualHost { gateway in
            let body = GatewayEvents.inventory("unauthorized")
            let now = Int(Date().timeIntervalSince1970)
            let refused: [(GatewayHarness.Credentials, String)] = [
                (.none, "no credentials"),
                (.token("gateway-test-tokem"), "wrong bearer token"),
                (.signed(timestamp: now, secret: Array("another-secret-0123456789abcdef!!".utf8)), "signature does not match"),
                (.signed(timestamp: now - 600, secret: GatewayHarness.secret), "away from the gateway's clock"),
                (.signed(timestamp: now + 600, secret: GatewayHarness.secret), "away from the gateway's clock"),
            ]
            for (credentials, message) in refused {
                for path in ["/events", "/events:batch"] {
                    let answer = try await gateway.post(path, body, credentials)
                    #expect(answer.status == 401, "\(credentials) on \(path): \(answer.json)")
                    #expect((answer.json["message"] as? String)?.contains(message) == true, "\(answer.json)")
                    let challenge = (answer.headers["Www-Authenticate"] ?? answer.headers["WWW-Authenticate"]) as? String
                    #expect(challenge == "Bearer, WHSync-HMAC-SHA256")
                }
            }
            // A signature over other content: the body changed after signing.
            var request = URLRequest(url: URL(string: gateway.baseURL + "/events")!)
            request.httpMethod = "POST"
            request.httpBody = Data(body.utf8)
            request.setValue(String(now), forHTTPHeaderField: GatewayAuthentication.timestampHeader)
            request.setValue(
                GatewayAuthentication.signature(secret: GatewayHarness.secret, timestamp: String(now), body: Array((body + " ").utf8)),
                forHTTPHeaderField: GatewayAuthentication.signatureHeader)
            let (_, tampered) = try await URLSession.shared.data(for: request)
            #expect((tampered as! HTTPURLResponse).statusCode == 401)

            #expect(try await gateway.depth("erp.inventory") == 0, "a refused request published something")
            #expect(try await gateway.post("/events", body).status == 202)
            #expect(try await gateway.depth("erp.inventory") == 1)
        }
    }

    /// A WMS cannot smuggle WarehouseSync's own headers (a replay's, an attempt's) in through
    /// the gateway: such a request is refused whole, and nothing is published.
    @Test func aRequestCarryingWhsyncHeadersIsRefusedAndPublishesNothing() async throws {
        try await GatewayHarness.withVirtualHost { gateway in
            for header in ["whsync-replay-of", "WHSync-Attempt", "whsync-reason"] {
                for path in ["/events", "/events:batch"] {
                    let body = GatewayEvents.inventory("smuggled-\(header.lowercased())")
                    let answer = try await gateway.post(path, body, headers: [header: "1"])
                    #expect(answer.status == 400, "\(header) on \(path): \(answer.json)")
                    #expect(answer.json["error"] as? String == "reserved-header", "\(answer.json)")
                }
            }
            #expect(try await gateway.depth("erp.inventory") == 0, "a refused request published something")
            #expect(try await gateway.post("/events", GatewayEvents.inventory("plain")).status == 202)
        }
    }

    @Test func requestsOverTheLimitsGet413AndPublishNothing() async throws {
        try await GatewayHarness.withVirtualHost(environment: ["GATEWAY_MAX_BATCH": "10", "GATEWAY_MAX_BODY": "64KiB"]) { gateway in
            let padding = String(repeating: "x", count: 70_000)
            let large = GatewayEvents.inventory("large").replacingOccurrences(of: #""uom":"EA""#, with: #""uom":"EA","note":"\#(padding)""#)
            let single = try await gateway.post("/events", large)
            #expect(single.status == 413, "\(single.json)")
            let tooMany = (0..<11).map { GatewayEvents.inventory("many-\($0)", sku: "M\($0)") }.joined(separator: "\n")
            let batch = try await gateway.post("/events:batch", tooMany)
            #expect(batch.status == 413, "\(batch.json)")
            #expect((batch.json["message"] as? String)?.contains("GATEWAY_MAX_BATCH") == true)
            #expect(try await gateway.depth("erp.inventory") == 0)
            #expect(try await gateway.status("/readyz") == 200)
            #expect(try await gateway.status("/healthz") == 200)
        }
    }

    @Test func withoutTheTopologyTheGatewayRefusesToStartWithOneLine() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        let result = try await TestBroker.run(
            try TestBroker.executablePath("wms-gateway"), [],
            environment: ["AMQP_URL": vhost.url, "GATEWAY_ALLOW_ANONYMOUS": "true", "GATEWAY_PORT": "0", "LOG_LEVEL": "error"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("wms-gateway: the exchange 'wms.events' does not exist (apply the topology: whsync topology apply)"), "\(result.stderr)")
    }
}

extension ScratchBrokerTests {
    /// The broker blocks publishers (memory alarm: it says so only once a publish comes), so the
    /// confirm cannot come; then it stops. The request in hand must not be answered 202; the
    /// gateway is not ready while blocked; requests while the broker is away get 503 at once;
    /// after the restart the gateway takes events again.
    @Test func aRequestWhoseConfirmNeverComesIsNotAccepted() async throws {
        let management = try TestBroker.env("WHSYNC_TEST_SCRATCH_MANAGEMENT_URL")
        let vhost = TestBroker.uniqueName("gateway")
        try await TestBroker.management("PUT", "/api/vhosts/\(vhost)", base: management)
        try await TestBroker.management("PUT", "/api/permissions/\(vhost)/guest", body: #"{"configure":".*","write":".*","read":".*"}"#, base: management)
        var url = try TestBroker.env("WHSYNC_TEST_SCRATCH_AMQP_URL")
        if url.hasSuffix("/") { url.removeLast() }
        url += "/\(vhost)"
        try await TestBroker.applyTopology(amqpURL: url)
        let amqp = try AMQPConfiguration(url: url, connectionName: "gateway-scratch-test")

        var brokerStopped = false
        do {
            let environment = ["GATEWAY_CONFIRM_TIMEOUT": "120s", "GATEWAY_MAX_CONCURRENCY": "1"]
            try await GatewayHarness.with(amqpURL: url, amqp: amqp, environment: environment) { gateway in
                let lines = (0..<50).map { GatewayEvents.inventory("blocked-\($0)", sku: "K\($0)") }.joined(separator: "\n")
                try await TestBroker.scratchBroker("ctl", "set_vm_memory_high_watermark", "0")
                let request = Task { try await gateway.post("/events:batch", lines, timeout: 120) }
                // Blocked once the batch's publishes reached the broker: the request holds its slot.
                try await TestBroker.waitUntil("the gateway not ready while the broker blocks it", timeout: .seconds(30)) {
                    try await gateway.status("/readyz") == 503
                }
                // The blocked request holds the only slot: the next one is turned away at once.
                let overloaded = try await gateway.post("/events", GatewayEvents.inventory("overload"))
                #expect(overloaded.status == 503, "\(overloaded.json)")
                #expect(overloaded.json["error"] as? String == "overloaded")
                #expect(overloaded.headers["Retry-After"] as? String == "1")
                // The broker said it blocks the connection (connection.blocked): not ready.
                #expect(try await gateway.status("/readyz") == 503)
                try await TestBroker.scratchBroker("stop")
                brokerStopped = true
                let answer = try await request.value
                #expect(answer.status != 202, "a batch the broker never confirmed was answered 202: \(answer.json)")
                #expect(answer.status == 503, "\(answer.json)")
                #expect(answer.headers["Retry-After"] as? String == "5")
                #expect(answer.json["failed"] as? Int == 50, "\(answer.json)")

                let whileDown = ContinuousClock.now
                let single = try await gateway.post("/events", GatewayEvents.inventory("while-down"))
                #expect(single.status == 503, "\(single.json)")
                // At once: far below the 120 s confirm timeout a publish would wait for.
                #expect(whileDown.duration(to: .now) < .seconds(10), "a request while the broker is away is answered at once")
                #expect(single.json["error"] as? String == "unavailable", "\(single.json)")
                #expect(try await gateway.status("/readyz") == 503)

                try await TestBroker.scratchBroker("start")
                brokerStopped = false
                try await TestBroker.waitUntil("the gateway ready again after the broker's restart", timeout: .seconds(60)) {
                    try await gateway.status("/readyz") == 200
                }
                let again = try await gateway.post("/events:batch", lines)
                #expect(again.status == 202, "sent again after the restart: \(again.json)")
                let ids = Set(try await gateway.drain("erp.inventory").compactMap(\.properties.messageId))
                #expect(ids == Set((0..<50).map { "blocked-\($0)" }), "every event of the batch is there after the resend")
                #expect(!ids.contains("while-down") && !ids.contains("overload"))
            }
        } catch {
            if brokerStopped {
                try? await TestBroker.scratchBroker("start")
            } else {
                try? await TestBroker.scratchBroker("ctl", "set_vm_memory_high_watermark", "0.4")
            }
            _ = try? await TestBroker.management("DELETE", "/api/vhosts/\(vhost)", base: management)
            throw error
        }
        _ = try? await TestBroker.management("DELETE", "/api/vhosts/\(vhost)", base: management)
    }
}
