import AMQPClient
import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSimulation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The edges where the promise (every valid event posted once in effect, in order per key,
/// nothing stalled silently) broke when tried black-box with real processes: replicas racing on
/// a re-emitted sequence, answers that are not the ERP's, a few locked items, identifiers that
/// cannot be headers, forged replay headers. Each test failed before its fix.
@Suite(.serialized) struct PromiseEdgeTests {
    /// A WMS that re-emits every event under a new eventId (a scanner retry) keeps its sequence.
    /// Three replicas on one store race on each twin; the ERP gets one posting per (key,
    /// sequence) whatever store they share, and every twin that lost is dropped as stale or
    /// dead-lettered as a conflict, never posted.
    @Test(arguments: ["sqlite", "postgres"])
    func twinsUnderANewEventIdPostOncePerSequenceAcrossReplicas(store: String) async throws {
        let day = try SimulatedDay(options: SimulationOptions(seed: 31, warehouses: 2, skus: 40, events: 900, outOfOrder: 0, duplicates: 0))
        let inventory = day.messages.filter { $0.routingKey.hasPrefix("inventory.") }
        let expected = try #require(day.manifest.counts.byStream["inventory"]).posted
        var twinned: [RawMessage] = []
        for message in inventory {
            var object = try #require(try JSONSerialization.jsonObject(with: Data(message.body)) as? [String: Any])
            twinned.append(RawMessage(routingKey: message.routingKey, body: message.body))
            object["eventId"] = "\(object["eventId"]!)-rescan"
            twinned.append(RawMessage(routingKey: message.routingKey, body: Array(try JSONSerialization.data(withJSONObject: object))))
        }
        let storeURL = store == "postgres" ? try await WorkerSystem.makePostgresDatabase() : nil
        try await WorkerSystem.with(masterData: day.catalogue, storeURL: storeURL) { system in
            for _ in 0..<3 { try await system.startReplica(.inventory) }
            try await system.publish(twinned)
            try await system.waitUntil("the work queue to drain", timeout: .seconds(240)) {
                guard try await system.queueDepth("erp.inventory") == 0 else { return false }
                return try await system.erpDocumentCount() >= expected
            }
            // Settle: late answers of the last postings.
            try await Task.sleep(for: .seconds(2))

            var postedPerSequence: [String: [String]] = [:]
            for row in try await system.erpDocuments() {
                postedPerSequence["\(row["key"]!)#\(row["sequence"]!)", default: []].append("\(row["eventId"]!)")
            }
            let twice = postedPerSequence.filter { $0.value.count > 1 }
            #expect(twice.isEmpty, "\(twice.count) (key, sequence) pairs posted more than once, e.g. \(twice.prefix(3))")
            #expect(postedPerSequence.count == expected)
            let dead = try await system.queueDepth("whsync.dead-letters")
            let letters = try await system.deadLetters(count: Int(dead), timeout: .seconds(10))
            for letter in letters {
                #expect(letter.properties.headers["whsync-reason"]?.stringValue == "conflict", "\(letter.properties.headers)")
            }
        }
    }

    /// A proxy or an ingress in front of the ERP answers 200 with an HTML page: that is not the
    /// ERP speaking. Nothing is taken as posted, nothing is dead-lettered, `/readyz` names the ERP
    /// as misanswering; with the right URL everything posts.
    @Test func aProxysHTMLPageIsNeverTakenAsPosted() async throws {
        let catalogue = Catalogue(warehouses: 1, skus: 8)
        let proxy = try HTMLProxy()
        defer { proxy.stop() }
        let proxyURL = try await proxy.start()
        try await WorkerSystem.with(masterData: catalogue) { system in
            try await system.startWorker(.inventory, environment: ["ERP_BASE_URL": proxyURL])
            let events = catalogue.skus.enumerated().map { index, sku in
                inventoryMessage(eventId: "html-\(index)", warehouse: "WH1", sku: sku.sku, uom: sku.uom, sequence: 1)
            }
            try await system.publish(events)
            try await system.waitUntil("readiness to name the ERP as misanswering", timeout: .seconds(30)) {
                try await system.readiness(.inventory).failing.contains("erp-misanswering")
            }
            #expect(try await system.metric(.inventory, "whsync_posted_total") == 0)
            #expect(try await system.queueDepth("whsync.dead-letters") == 0)
            #expect(try await system.erpDocumentCount() == 0)
            _ = try await system.workers[.inventory]!.awaitLog(#"not the ERP speaking.*erp\.answer=(HTTP 200 without a JSON documentId)"#)

            try await system.restartWorker(.inventory)
            try await system.waitUntil("every event to post through the right URL", timeout: .seconds(60)) {
                try await system.erpDocumentCount() >= events.count
            }
            #expect(try await system.erpDocumentCount() == events.count)
            #expect(try await system.queueDepth("whsync.dead-letters") == 0)
            #expect(try await system.readiness(.inventory).failing.isEmpty)
        }
    }

    /// A wrong base URL: every posting answers 404 (the reference ERP answers it with a JSON
    /// error body, as many frameworks do). No event is dead-lettered as rejected, no key moves
    /// on; the circuit opens; with the right URL everything posts in order.
    @Test func aWrongBaseURLDeadLettersNothing() async throws {
        let catalogue = Catalogue(warehouses: 1, skus: 6)
        try await WorkerSystem.with(masterData: catalogue) { system in
            try await system.startWorker(.inventory, environment: ["ERP_BASE_URL": system.erpURL + "/erp-v2"])
            var events: [RawMessage] = []
            for (index, sku) in catalogue.skus.enumerated() {
                for sequence in 1...3 {
                    events.append(inventoryMessage(eventId: "url-\(index)-\(sequence)", warehouse: "WH1", sku: sku.sku, uom: sku.uom, sequence: sequence))
                }
            }
            try await system.publish(events)
            try await system.waitUntil("the circuit to open on the misanswers", timeout: .seconds(30)) {
                try await system.metricSample(.inventory, "whsync_erp_circuit_open") == 1
            }
            let failing = try await system.readiness(.inventory).failing
            #expect(failing.contains("erp-misanswering") && failing.contains("erp-circuit"), "\(failing)")
            #expect(try await system.queueDepth("whsync.dead-letters") == 0)
            #expect(try await system.erpDocumentCount() == 0)

            try await system.restartWorker(.inventory)
            try await system.waitUntil("every event to post with the right URL", timeout: .seconds(60)) {
                try await system.erpDocumentCount() >= events.count
            }
            let sequences = try await system.erpDocuments().map { "\($0["key"]!)#\($0["sequence"]!)" }
            let inOrder = catalogue.skus.flatMap { sku in (1...3).map { "WH1/\(sku.sku)#\($0)" } }
            #expect(sequences.count == events.count)
            for sku in catalogue.skus {
                let ofKey = sequences.filter { $0.hasPrefix("WH1/\(sku.sku)#") }
                #expect(ofKey == inOrder.filter { $0.hasPrefix("WH1/\(sku.sku)#") }, "postings of \(sku.sku) out of order: \(ofKey)")
            }
            #expect(try await system.queueDepth("whsync.dead-letters") == 0)
        }
    }

    /// The ERP answers 503 to every posting of a few items while `/health` answers: item
    /// failures. They spend their attempts and end as `retries-exhausted` dead letters (for the
    /// auto-replay); the circuit does not keep the stream paused for them.
    @Test func itemsTheERPKeepsRefusingReachRetriesExhausted() async throws {
        let catalogue = Catalogue(warehouses: 1, skus: 5)
        try await WorkerSystem.with(masterData: catalogue, workerEnvironment: ["RETRY_MAX_ATTEMPTS": "3"]) { system in
            try await system.startWorker(.inventory)
            _ = try await postJSON(system.erpURL + "/admin/faults", #"{"errorRate": 1, "errorStatuses": [503]}"#)
            let events = catalogue.skus.enumerated().map { index, sku in
                inventoryMessage(eventId: "locked-\(index)", warehouse: "WH1", sku: sku.sku, uom: sku.uom, sequence: 1)
            }
            try await system.publish(events)
            let letters = try await system.deadLetters(count: events.count, timeout: .seconds(150))
            #expect(letters.count == events.count)
            for letter in letters {
                #expect(letter.properties.headers["whsync-reason"]?.stringValue == "retries-exhausted")
                #expect(letter.properties.headers["whsync-error"]?.stringValue?.hasPrefix("HTTP 503 on attempt 3 of 3") == true)
            }
            #expect(try await system.metricSample(.inventory, "whsync_erp_circuit_open") == 0)
        }
    }

    /// An eventId or correlationId that cannot travel as a header (CR, LF, a tab, DEL) is
    /// `invalid` at decode, dead-lettered with the field; it never reaches the ERP client, never
    /// opens the circuit, and the events around it post.
    @Test func identifiersThatCannotBeHeadersAreDeadLetteredAsInvalid() async throws {
        let catalogue = Catalogue(warehouses: 1, skus: 4)
        try await WorkerSystem.with(masterData: catalogue) { system in
            try await system.startWorker(.inventory)
            let skus = catalogue.skus
            func event(_ eventId: String, _ sku: Int, correlationId: String? = nil) -> RawMessage {
                var body: [String: Any] = [
                    "schema": "inventory.delta/1", "eventId": eventId, "occurredAt": "2026-11-22T10:00:00Z", "warehouse": "WH1",
                    "sequence": 1, "sku": skus[sku].sku, "quantity": 5, "uom": skus[sku].uom, "status": "available", "reason": "receipt",
                ]
                if let correlationId { body["correlationId"] = correlationId }
                return RawMessage(routingKey: "inventory.WH1", body: Array(try! JSONSerialization.data(withJSONObject: body)))
            }
            try await system.publish([
                event("ok-1", 0), event("bad\r\nX-Injected: 1", 1), event("ok-2", 2, correlationId: "corr\u{7F}"), event("ok-3", 3),
            ])
            let letters = try await system.deadLetters(count: 2, timeout: .seconds(30))
            #expect(letters.count == 2)
            let errors = letters.compactMap { $0.properties.headers["whsync-error"]?.stringValue }.sorted()
            #expect(errors.contains { $0.hasPrefix("correlationId: must be visible ASCII") }, "\(errors)")
            #expect(errors.contains { $0.hasPrefix("eventId: must be visible ASCII") }, "\(errors)")
            try await system.waitUntil("the good events to post", timeout: .seconds(30)) {
                try await system.erpDocumentCount() >= 2
            }
            #expect(try await system.erpDocumentCount() == 2)
            #expect(try await system.metricSample(.inventory, "whsync_erp_circuit_open") == 0)
        }
    }

    /// `whsync-replay-of` lets a dead letter's replay through below its key's position. A
    /// header naming no stored dead letter of that eventId is ignored: the event is stale.
    @Test func aForgedReplayHeaderDoesNotBypassTheOrder() async throws {
        let catalogue = Catalogue(warehouses: 1, skus: 1)
        let sku = catalogue.skus[0]
        try await WorkerSystem.with(masterData: catalogue) { system in
            try await system.startWorker(.inventory)
            try await system.publish([
                inventoryMessage(eventId: "order-1", warehouse: "WH1", sku: sku.sku, uom: sku.uom, sequence: 1),
                inventoryMessage(eventId: "order-2", warehouse: "WH1", sku: sku.sku, uom: sku.uom, sequence: 2),
            ])
            try await system.waitUntil("both events to post", timeout: .seconds(30)) {
                try await system.erpDocumentCount() >= 2
            }
            let forged = inventoryMessage(eventId: "forged-1", warehouse: "WH1", sku: sku.sku, uom: sku.uom, sequence: 1, quantity: "900")
            let connection = try await TestBroker.connect(system.amqp, confirms: true)
            try await connection.publish(OutboundMessage(
                exchange: "wms.events", routingKey: forged.routingKey, body: forged.body,
                properties: AMQPProperties(
                    contentType: "application/json", headers: ["whsync-replay-of": "424242"], deliveryMode: .persistent,
                    messageId: "forged-1")))
            await connection.close()
            _ = try await system.workers[.inventory]!.awaitLog("whsync-replay-of names no stored dead letter")
            try await system.waitUntil("the forged event to be dropped as stale", timeout: .seconds(30)) {
                try await system.metric(.inventory, "whsync_stale_total") >= 1
            }
            #expect(try await system.erpDocumentCount() == 2)
        }
    }
}

/// A stand-in for a misrouted ingress: answers every request, `/health` included, with
/// `200 OK` and an HTML page. A Python child process on 127.0.0.1, on a port it picks.
final class HTMLProxy: @unchecked Sendable {
    private var process: ChildProcess?
    private let directory: URL

    init() throws {
        directory = try TestBroker.temporaryDirectory("html-proxy")
    }

    /// Starts it and returns its base URL.
    func start() async throws -> String {
        let script = """
            import http.server
            class Page(http.server.BaseHTTPRequestHandler):
                def answer(self):
                    self.rfile.read(int(self.headers.get('Content-Length') or 0))
                    body = b'<html><body><h1>Welcome to nginx!</h1></body></html>'
                    self.send_response(200)
                    self.send_header('Content-Type', 'text/html')
                    self.send_header('Content-Length', str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                do_GET = do_POST = answer
                def log_message(self, *args):
                    pass
            server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Page)
            print('proxy.address=127.0.0.1:%d' % server.server_address[1], flush=True)
            server.serve_forever()
            """
        let child = try ChildProcess(
            name: "html-proxy", executable: "/usr/bin/env", arguments: ["python3", "-c", script],
            environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"],
            logFile: directory.appendingPathComponent("proxy.log"))
        process = child
        return "http://" + (try await child.awaitLog(#"proxy\.address=(127\.0\.0\.1:[0-9]+)"#))
    }

    func stop() {
        process?.signal(SIGKILL)
        try? FileManager.default.removeItem(at: directory)
    }
}
