import AMQPClient
import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSimulation
import WarehouseSyncSQLite

#if canImport(FoundationNetworking)
import FoundationNetworking
import WarehouseSyncProcessKit
import WarehouseSyncWorker
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncSettings
import WarehouseSyncOps
#endif

/// The workers as they run in production: the `inventory-worker`, `shipment-worker` and
/// `receipt-worker` executables against the test broker and the `reference-erp` executable.
/// Serialized: each test starts several processes, and the machine has two cores.
@Suite(.serialized) struct WorkerIntegrationTests {
    /// A disturbed day (out of order, duplicates) over hundreds of keys ends in exactly the
    /// ledger the simulator expects, each eventId booked once and each key in sequence order,
    /// although the inventory worker is killed with SIGKILL twice while it works.
    /// On the single routes (`ERP_BATCH_MAX=0`) and the batch route (DESIGN §3a).
    @Test(arguments: [0, 50])
    func aDisturbedDayEndsInTheExactLedgerThoughAWorkerIsKilledTwice(erpBatchMax: Int) async throws {
        let day = try SimulatedDay(options: SimulationOptions(
            seed: 11, warehouses: 4, skus: 60, events: 3000, outOfOrder: 0.08, duplicates: 0.05))
        let manifest = day.manifest
        let environment = ["ERP_BATCH_MAX": "\(erpBatchMax)"]
        try await WorkerSystem.with(masterData: day.catalogue) { system in
            for stream in EventStream.allCases { try await system.startWorker(stream, environment: environment) }
            try await system.publish(day.messages)

            let expectedDocuments = manifest.expected.documents.values.reduce(0, +)
            for kill in 1...2 {
                let before = try await system.erpDocumentCount()
                try await system.waitUntil("inventory postings to move on before kill \(kill)", timeout: .seconds(120)) {
                    try await system.erpDocumentCount() >= before + 200
                }
                let worker = try #require(system.workers[.inventory])
                worker.signal(SIGKILL)
                #expect(await worker.waitForExit(timeout: .seconds(10)) != nil)
                try await system.startWorker(.inventory, environment: environment)
            }

            try await system.waitUntil("every expected document to be booked", timeout: .seconds(300)) {
                try await system.erpDocumentCount() >= expectedDocuments
            }
            // Nothing more arrives: the work queues drain and the count stays exact.
            try await system.waitUntil("the work queues to drain", timeout: .seconds(60)) {
                var total: UInt32 = 0
                for stream in EventStream.allCases { total += try await system.queueDepth("erp.\(stream)") }
                return total == 0
            }
            #expect(try await system.erpDocumentCount() == expectedDocuments)
            let documents = try await system.erpJSON("/stats")["documents"] as? [String: Int] ?? [:]
            // The manifest counts by endpoint (`goods-issues`), the ERP by document type (`goods-issue`).
            let types = [
                "inventory-movements": "inventory-movement", "goods-issues": "goods-issue", "goods-receipts": "goods-receipt",
                "shipment-status": "shipment-status",
            ]
            let expectedByType = Dictionary(uniqueKeysWithValues: manifest.expected.documents.map { (types[$0.key] ?? $0.key, $0.value) })
            #expect(documents == expectedByType)
            // The route the day went by: batch requests only when ERP_BATCH_MAX asks for them.
            let endpoints = try await system.erpJSON("/stats")["endpoints"] as? [String: Any] ?? [:]
            let batchRequests = (endpoints["POST /postings:batch"] as? [String: Any])?["requests"] as? Int ?? 0
            #expect(erpBatchMax == 0 ? batchRequests == 0 : batchRequests > 0)

            var expectedBalances: [String: String] = [:]
            for balance in manifest.expected.ledger.balances {
                expectedBalances["\(balance.warehouse)/\(balance.sku)/\(balance.status)"] = balance.quantity
            }
            #expect(try await system.erpBalances() == expectedBalances)

            // Each eventId booked once, each key's postings in sequence order, nothing lost or
            // unexpected: the ledger audit `scripts/proof` runs too (`wms-simulator check`).
            let audit = LedgerAudit(
                documents: try await system.erpDocuments().compactMap(LedgerAudit.Document.init(row:)),
                expectedEventIds: Set(manifest.expected.postedEventIds))
            #expect(audit.booked == expectedDocuments)
            #expect(audit.postedTwice.isEmpty, "an eventId was booked twice: \(audit.postedTwice.prefix(5))")
            #expect(audit.lost.isEmpty && audit.unexpected.isEmpty, "lost \(audit.lost.prefix(5)), unexpected \(audit.unexpected.prefix(5))")
            #expect(audit.orderViolations.isEmpty, "postings out of sequence order: \(audit.orderViolations.prefix(5))")
            #expect(try await system.queueDepth("whsync.dead-letters") == 0)
            let duplicatesDropped = try await system.metric(.inventory, "whsync_duplicates_total")
                + system.metric(.shipment, "whsync_duplicates_total") + system.metric(.receipt, "whsync_duplicates_total")
            #expect(duplicatesDropped > 0, "the day's duplicates were not recognised as such")
            // The same by warehouse (the shipment worker ran throughout: its counters are whole).
            let postedByWarehouse = try await system.metricSum(.shipment, "whsync_events_total", #"outcome="posted""#)
            #expect(postedByWarehouse > 0)
            #expect(postedByWarehouse == (try await system.metric(.shipment, "whsync_posted_total")))
            #expect(try await system.metricSum(.shipment, "whsync_events_total", #"warehouse="WH1""#, #"outcome="duplicate""#) > 0)
            #expect(try await system.metricSum(.shipment, "whsync_publish_to_posted_seconds_count") == postedByWarehouse)
            #expect(try await system.metricSum(.shipment, "whsync_publish_to_posted_seconds_count", #"warehouse="WH4""#) > 0)

            // A graceful stop exits 0.
            for worker in system.workers.values {
                worker.signal(SIGTERM)
                #expect(await worker.waitForExit(timeout: .seconds(20)) == 0, "\(worker.name) did not exit 0:\n\(worker.log.suffix(2000))")
            }
        }
    }

    /// While the ERP is down for 20 seconds nothing is dead-lettered; everything posts afterwards.
    @Test func aTwentySecondERPOutageDeadLettersNothing() async throws {
        let day = try SimulatedDay(options: SimulationOptions(seed: 12, warehouses: 2, skus: 20, events: 900))
        let inventory = day.messages.filter { $0.routingKey.hasPrefix("inventory.") }
        let expected = day.manifest.counts.byStream["inventory"]!.posted
        try await WorkerSystem.with(masterData: day.catalogue) { system in
            try await system.startWorker(.inventory)

            let half = inventory.count / 2
            try await system.publish(Array(inventory[..<half]))
            try await system.waitUntil("the first half to post", timeout: .seconds(60)) {
                try await system.erpDocumentCount() >= half
            }
            #expect(try await system.metricSample(.inventory, "whsync_erp_circuit_open") == 0)
            _ = try await postJSON(system.erpURL + "/admin/faults", #"{"outage": {"seconds": 20}}"#)
            let outageStarted = ContinuousClock.now
            try await system.publish(Array(inventory[half...]))
            try await system.waitUntil("the circuit-open gauge at 1 during the outage", timeout: .seconds(20)) {
                try await system.metricSample(.inventory, "whsync_erp_circuit_open") == 1
            }
            try await system.waitUntil("every event to post after the outage", timeout: .seconds(150)) {
                // The ERP answers 503 to everything during its outage, /stats included.
                (try? await system.erpDocumentCount()) ?? 0 >= expected
            }
            #expect(ContinuousClock.now - outageStarted >= .seconds(19), "the outage did not hold postings back")
            #expect(try await system.erpDocumentCount() == expected)
            #expect(try await system.queueDepth("whsync.dead-letters") == 0)
            #expect(try await system.metric(.inventory, "whsync_dead_lettered_total", labels: #"reason="retries-exhausted""#) == 0)
            // The line says what failed: the outage's 503s.
            #expect(try await system.workers[.inventory]!.awaitLog(#"circuit open.*erp\.lastFailure=(HTTP [0-9]+)"#) == "HTTP 503")
            #expect(try await system.metricSample(.inventory, "whsync_erp_circuit_open") == 0)
        }
    }

    /// A token the ERP refuses stops postings like an outage (nothing is dead-lettered), but
    /// the worker says what to fix; after the token file is mended and the worker restarted,
    /// everything posts.
    @Test func aRefusedTokenOpensTheCircuitAndSaysSo() async throws {
        let directory = try TestBroker.temporaryDirectory("token")
        defer { try? FileManager.default.removeItem(at: directory) }
        let erpToken = directory.appendingPathComponent("erp-token")
        let workerToken = directory.appendingPathComponent("worker-token")
        try Data("the-right-token\n".utf8).write(to: erpToken)
        try Data("a-rotated-away-token\n".utf8).write(to: workerToken)

        let day = try SimulatedDay(options: SimulationOptions(seed: 21, warehouses: 1, skus: 10, events: 120))
        let inventory = day.messages.filter { $0.routingKey.hasPrefix("inventory.") }
        let expected = day.manifest.counts.byStream["inventory"]!.posted
        try await WorkerSystem.with(
            masterData: day.catalogue, erpArguments: ["--token-file", erpToken.path],
            workerEnvironment: ["ERP_TOKEN_FILE": workerToken.path]
        ) { system in
            system.erpToken = "the-right-token"
            let worker = try await system.startWorker(.inventory)
            try await system.publish(inventory)
            #expect(try await worker.awaitLog(#"ERP refuses the worker's token.*erp\.lastFailure=(HTTP [0-9]+)"#) == "HTTP 401")
            try await system.waitUntil("the circuit-open gauge at 1", timeout: .seconds(20)) {
                try await system.metricSample(.inventory, "whsync_erp_circuit_open") == 1
            }
            #expect(try await system.queueDepth("whsync.dead-letters") == 0)

            // What it holds waits unacked; a graceful stop hands it back.
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: .seconds(30)) == 0)
            try Data("the-right-token\n".utf8).write(to: workerToken)
            try await system.startWorker(.inventory)
            try await system.waitUntil("every event to post with the mended token", timeout: .seconds(60)) {
                try await system.erpDocumentCount() >= expected
            }
            #expect(try await system.erpDocumentCount() == expected)
            #expect(try await system.queueDepth("whsync.dead-letters") == 0)
        }
    }

    /// A store that stays unavailable (here: another connection holds SQLite's write lock) for
    /// longer than the 30 s a failed publish is retried: the messages wait in hand, readiness
    /// names the store, nothing is handed back or dead-lettered, and everything posts once the
    /// store answers again.
    @Test func anUnavailableStoreIsWaitedOutNotHandedBack() async throws {
        let day = try SimulatedDay(options: SimulationOptions(seed: 23, warehouses: 1, skus: 10, events: 200))
        let inventory = day.messages.filter { $0.routingKey.hasPrefix("inventory.") }
        let expected = day.manifest.counts.byStream["inventory"]!.posted
        try await WorkerSystem.with(masterData: day.catalogue) { system in
            let worker = try await system.startWorker(.inventory)
            let locker = try await SQLiteDatabase(path: try system.storePath())
            do {
                try await locker.withConnection { try $0.executeScript("BEGIN EXCLUSIVE") }
                try await system.publish(inventory)
                try await system.waitUntil("readiness to name the store", timeout: .seconds(30)) {
                    try await system.readiness(.inventory).failing.contains("store")
                }
                _ = try await worker.awaitLog("store unavailable: messages wait in hand")
                #expect(try await system.metricSample(.inventory, "whsync_store_unavailable") == 1)
                try await Task.sleep(for: .seconds(32))
                #expect(try await system.readiness(.inventory).status == 503)
                #expect(try await system.erpDocumentCount() == 0)
                try await locker.withConnection { try $0.executeScript("COMMIT") }
            } catch {
                await locker.close()
                throw error
            }
            await locker.close()
            try await system.waitUntil("every event to post once the store answers", timeout: .seconds(60)) {
                try await system.erpDocumentCount() >= expected
            }
            #expect(try await system.erpDocumentCount() == expected)
            #expect(try await system.readiness(.inventory).status == 200)
            #expect(try await system.metricSample(.inventory, "whsync_store_unavailable") == 0)
            #expect(try await system.queueDepth("whsync.dead-letters") == 0)
            #expect(!worker.log.contains("handed back"), "\(worker.log.suffix(2000))")
            _ = try await worker.awaitLog("store available again")
        }
    }

    /// Without the topology on the broker a worker refuses to start (exit 1), its last line saying
    /// how to apply it, here and in Kubernetes.
    @Test func withoutTheTopologyAWorkerRefusesToStartSayingHowToApplyIt() async throws {
        let vhost = try await TestBroker.makeVirtualHost()
        defer { Task { await TestBroker.deleteVirtualHost(vhost.name) } }
        let directory = try TestBroker.temporaryDirectory("no-topology")
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try await TestBroker.run(
            try TestBroker.executablePath("inventory-worker"), [],
            environment: [
                "AMQP_URL": vhost.url, "STORE_URL": "sqlite:" + directory.appendingPathComponent("store.db").path,
                "ERP_BASE_URL": "http://127.0.0.1:1", "METRICS_PORT": "0", "LOG_LEVEL": "critical", "PATH": "/usr/bin:/bin",
                "TOPOLOGY_FILE": TestBroker.repoRoot().appendingPathComponent("topology/topology.json").path,
            ])
        #expect(result.status == 1)
        // The log's critical line, then the plain one for whoever reads the container's exit.
        let last = result.stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("inventory-worker: the broker lacks the topology ("), "\(result.stderr)")
        #expect(last.contains("apply it first: `whsync topology apply`, or in Kubernetes deploy/k8s/topology.yaml"), "\(result.stderr)")
    }

    /// Malformed events are dead-lettered with reason `invalid` and the field at fault; the
    /// good events around them post.
    @Test func malformedEventsAreDeadLetteredWithTheFieldWhileGoodOnesPost() async throws {
        let day = try SimulatedDay(options: SimulationOptions(seed: 13, warehouses: 3, skus: 30, events: 600, invalid: 0.05))
        try await WorkerSystem.with(masterData: day.catalogue) { system in
            for stream in EventStream.allCases { try await system.startWorker(stream) }
            try await system.publish(day.messages)

            let routable = day.manifest.expected.invalid.filter {
                $0.routingKey.range(of: #"^(inventory|shipment|receipt)\.[^.]+$"#, options: .regularExpression) != nil
            }
            #expect(routable.count >= 10)
            let letters = try await system.deadLetters(count: routable.count, timeout: .seconds(60))
            #expect(letters.count == routable.count)
            let expectedDocuments = day.manifest.expected.documents.values.reduce(0, +)
            try await system.waitUntil("the good events to post", timeout: .seconds(120)) {
                try await system.erpDocumentCount() >= expectedDocuments
            }
            #expect(try await system.erpDocumentCount() == expectedDocuments)

            let byBody = Dictionary(routable.map { ($0.line, $0) }, uniquingKeysWith: { first, _ in first })
            for letter in letters {
                let headers = letter.properties.headers
                #expect(headers["whsync-reason"]?.stringValue == "invalid")
                let expected = try #require(byBody[String(decoding: letter.body, as: UTF8.self)], "an unexpected dead letter")
                let error = headers["whsync-error"]?.stringValue ?? ""
                #expect(error.contains(expected.field), "\(expected.kind): whsync-error '\(error)' does not name \(expected.field)")
                #expect(headers["whsync-original-routing-key"]?.stringValue == expected.routingKey)
                #expect(headers["whsync-original-exchange"]?.stringValue == "wms.events")
                #expect(headers["whsync-worker"]?.stringValue?.contains("-worker@") == true)
                #expect(headers["whsync-failed-at"]?.stringValue.flatMap(Timestamp.init(parsing:)) != nil)
                #expect(headers["whsync-attempt"]?.stringValue == "1")
            }
        }
    }

    /// A business rejection (422: unknown SKU) dead-letters that event alone; its key moves on.
    /// On the single routes and the batch route: a batch item refused alone.
    @Test(arguments: [0, 10])
    func aBusinessRejectionDeadLettersOnlyThatEvent(erpBatchMax: Int) async throws {
        let catalogue = Catalogue(warehouses: 1, skus: 5)
        try await WorkerSystem.with(masterData: catalogue) { system in
            try await system.startWorker(.shipment, environment: ["ERP_BATCH_MAX": "\(erpBatchMax)"])
            let sku = catalogue.skus[0]
            let shipment = "SHP-REJ-1"
            func event(_ sequence: Int, _ status: String, lineSKU: String) -> RawMessage {
                shipmentMessage(
                    eventId: "rej-\(sequence)", warehouse: "WH1", shipmentId: shipment, sequence: sequence, status: status,
                    sku: lineSKU, uom: sku.uom)
            }
            try await system.publish([
                event(1, "packed", lineSKU: sku.sku), event(2, "shipped", lineSKU: "SKU-NOT-IN-ERP"), event(3, "delivered", lineSKU: sku.sku),
            ])
            let letters = try await system.deadLetters(count: 1)
            try #require(letters.count == 1)
            let headers = letters[0].properties.headers
            #expect(headers["whsync-reason"]?.stringValue == "erp-rejected")
            #expect(headers["whsync-error"]?.stringValue?.hasPrefix("HTTP 422") == true)
            #expect(letters[0].properties.messageId == "rej-2")
            try await system.waitUntil("the key to move on past the rejection", timeout: .seconds(30)) {
                try await system.erpDocumentCount() >= 2
            }
            let documents = try await system.erpJSON("/documents?key=WH1/\(shipment)")["documents"] as? [[String: Any]] ?? []
            #expect(documents.compactMap { $0["eventId"] as? String } == ["rej-1", "rej-3"])
        }
    }

    /// A gap that never fills parks its key after GAP_TIMEOUT while other keys flow.
    @Test func aGapThatNeverFillsParksItsKeyWhileOtherKeysFlow() async throws {
        let catalogue = Catalogue(warehouses: 1, skus: 5)
        try await WorkerSystem.with(masterData: catalogue, workerEnvironment: ["GAP_TIMEOUT": "2s"]) { system in
            let worker = try await system.startWorker(.inventory)
            let gapped = catalogue.skus[0]
            let flowing = catalogue.skus[1]
            func delta(_ sku: Catalogue.SKU, _ sequence: Int) -> RawMessage {
                inventoryMessage(eventId: "\(sku.sku)-\(sequence)", warehouse: "WH1", sku: sku.sku, uom: sku.uom, sequence: sequence)
            }
            try await system.publish([delta(gapped, 1), delta(gapped, 3), delta(gapped, 4), delta(flowing, 1), delta(flowing, 2)])
            let parkedKey = try await worker.awaitLog(#"key parked.*whsync\.key=(WH1/SKU-[0-9]+)"#, timeout: .seconds(30))
            #expect(parkedKey == "WH1/\(gapped.sku)")
            #expect(try await system.metric(.inventory, "whsync_parked_total") == 1)

            // The other key keeps flowing after the park.
            try await system.publish([delta(flowing, 3)])
            try await system.waitUntil("the other key's events to post", timeout: .seconds(30)) {
                try await system.erpDocumentCount() >= 4
            }
            let posted = try await system.erpJSON("/documents")["documents"] as? [[String: Any]] ?? []
            #expect(Set(posted.compactMap { $0["eventId"] as? String }) == ["\(gapped.sku)-1", "\(flowing.sku)-1", "\(flowing.sku)-2", "\(flowing.sku)-3"])
            #expect(try await system.metric(.inventory, "whsync_held_total") == 2)
            // By warehouse: the counters at once, the gauges once the sampler has looked at the store.
            #expect(try await system.metricSum(.inventory, "whsync_keys_parked_total", #"warehouse="WH1""#) == 1)
            #expect(try await system.metricSum(.inventory, "whsync_events_total", #"warehouse="WH1""#, #"outcome="held""#) == 2)
            try await system.waitUntil("the parked key in the warehouse gauges", timeout: .seconds(60)) {
                try await system.metricSum(.inventory, "whsync_parked_keys", #"warehouse="WH1""#) == 1
            }
            #expect(try await system.metricSum(.inventory, "whsync_held_keys", #"warehouse="WH1""#) == 1)
            #expect(try await system.metricSum(.inventory, "whsync_unposted_events", #"warehouse="WH1""#, #"state="held""#) == 2)
            #expect(try await system.metricSum(.inventory, "whsync_oldest_unposted_age_seconds", #"warehouse="WH1""#) > 0)

            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: .seconds(20)) == 0)
        }
    }
}

func inventoryMessage(eventId: String, warehouse: String, sku: String, uom: String, sequence: Int, quantity: String = "5") -> RawMessage {
    let body = """
        {"schema":"inventory.delta/1","eventId":"\(eventId)","occurredAt":"2026-11-22T10:00:00Z","warehouse":"\(warehouse)",\
        "sequence":\(sequence),"sku":"\(sku)","quantity":\(quantity),"uom":"\(uom)","status":"available","reason":"receipt"}
        """
    return RawMessage(routingKey: "inventory.\(warehouse)", body: Array(body.utf8))
}

func shipmentMessage(
    eventId: String, warehouse: String, shipmentId: String, sequence: Int, status: String, sku: String, uom: String
) -> RawMessage {
    let body = """
        {"schema":"shipment.event/1","eventId":"\(eventId)","occurredAt":"2026-11-22T10:00:00Z","warehouse":"\(warehouse)",\
        "sequence":\(sequence),"shipmentId":"\(shipmentId)","orderRef":"SO-\(shipmentId)","status":"\(status)",\
        "lines":[{"sku":"\(sku)","quantity":2,"uom":"\(uom)"}]}
        """
    return RawMessage(routingKey: "shipment.\(warehouse)", body: Array(body.utf8))
}

@discardableResult
func postJSON(_ url: String, _ body: String) async throws -> Data {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = "POST"
    request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    request.httpBody = Data(body.utf8)
    let (data, response) = try await URLSession.shared.data(for: request)
    let status = (response as! HTTPURLResponse).statusCode
    guard (200..<300).contains(status) else {
        throw TestBroker.ProcessFailure(description: "POST \(url) answered HTTP \(status)")
    }
    return data
}
