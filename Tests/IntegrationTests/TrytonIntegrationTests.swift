import AMQPClient
import Foundation
import Logging
import Testing
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncSimulation
import WarehouseSyncTesting

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The workers with `ERP_KIND=tryton` against the real trytond that `./scripts/test` starts
/// (scripts/tryton, master data = ``catalogue``). The server is shared: each test uses its own
/// seed (so its own eventIds, shipment and receipt ids) and compares Tryton's stock before and
/// after, never absolute balances.
@Suite(.serialized) struct TrytonIntegrationTests {
    /// The master data scripts/test loads into Tryton (`wms-simulator day --warehouses 3 --skus 20`).
    static let catalogue = Catalogue(warehouses: 3, skus: 20)

    /// A disturbed day (out of order, duplicates) posts exactly: Tryton's stock per warehouse,
    /// product and status moves by the simulator's ledger, one internal shipment per posted
    /// inventory event and one document per shipment and receipt id, although the inventory
    /// worker is SIGKILLed mid-day; posting one by one, and in batches (`ERP_BATCH_MAX`), each
    /// with its own seed.
    @Test(arguments: [(0, 301), (50, 302)])
    func aDisturbedDayPostsExactlyThoughAWorkerIsKilled(erpBatchMax: Int, seed: UInt64) async throws {
        let tryton = try TrytonServer()
        let day = try SimulatedDay(options: SimulationOptions(
            seed: seed, warehouses: 3, skus: 20, events: 240, outOfOrder: 0.06, duplicates: 0.04))
        let manifest = day.manifest
        let client = try tryton.client()
        defer { Task { try? await client.shutdown() } }
        let before = try await tryton.balances(client)

        var expected: [String: Quantity] = before
        for row in manifest.expected.ledger.balances {
            let key = "\(row.warehouse)/\(row.sku)/\(row.status)"
            expected[key, default: .zero] += try Quantity.parse(row.quantity)
        }
        expected = expected.filter { !$0.value.isZero }

        let environment = tryton.workerEnvironment.merging(["ERP_BATCH_MAX": "\(erpBatchMax)"]) { _, new in new }
        try await WorkerSystem.with(workerEnvironment: environment) { system in
            for stream in EventStream.allCases { try await system.startWorker(stream) }
            try await system.publish(day.messages)

            try await system.waitUntil("inventory postings to begin before the kill", timeout: .seconds(300)) {
                try await system.metric(.inventory, "whsync_posted_total") >= 40
            }
            let worker = try #require(system.workers[.inventory])
            worker.signal(SIGKILL)
            #expect(await worker.waitForExit(timeout: .seconds(30)) != nil)
            try await system.startWorker(.inventory)

            try await system.waitUntil("Tryton's stock to reach the simulator's ledger", timeout: .seconds(900)) {
                try await tryton.balances(client) == expected
            }
            try await system.waitUntil("the work queues to drain", timeout: .seconds(120)) {
                var total: UInt32 = 0
                for stream in EventStream.allCases { total += try await system.queueDepth("erp.\(stream)") }
                return total == 0
            }
            #expect(try await tryton.balances(client) == expected)

            // One done internal shipment per posted inventory event, none twice. (A create repeated
            // after a timeout leaves a draft the adapter cancels: never a second live document. A
            // create the killed worker left running inside trytond may commit after the restarted
            // worker posted the same event: the restarted one cancels that draft once such calls
            // have ended, 65 s after its start.)
            try await system.waitUntil("one live internal shipment per reference", timeout: .seconds(150)) {
                let live = try await tryton.probe.references("stock.shipment.internal", prefix: "evt-\(seed)-").filter { $0.state != "cancelled" }
                return live.count == Set(live.map(\.reference)).count
            }
            let inventoryIds = Set(manifest.expected.postedEventIds.filter { !$0.isEmpty })
            let internalShipments = try await tryton.probe.references("stock.shipment.internal", prefix: "evt-\(seed)-")
            let live = internalShipments.filter { $0.state != "cancelled" }
            #expect(live.count == Set(live.map(\.reference)).count, "an eventId was booked twice")
            #expect(live.allSatisfy { $0.state == "done" })
            #expect(Set(internalShipments.map(\.reference)).isSubset(of: inventoryIds))
            #expect(live.count == manifest.counts.byStream["inventory"]?.posted)
            for (model, prefix) in [("stock.shipment.out", "SHP-\(seed)-"), ("stock.shipment.in", "RCV-\(seed)-")] {
                let documents = try await tryton.probe.references(model, prefix: prefix)
                #expect(!documents.isEmpty)
                // A shipment the WMS cancelled is cancelled in Tryton too: count the references.
                let references = Dictionary(grouping: documents, by: \.reference)
                let twice = references.filter { $0.value.filter { $0.state != "cancelled" }.count > 1 }
                #expect(twice.isEmpty, "\(model): a document was created twice: \(twice.keys.sorted())")
            }
            #expect(try await system.queueDepth("whsync.dead-letters") == 0)
        }
    }

    /// An unknown SKU, a unit other than the product's and a quantity finer than the unit are
    /// dead-lettered at once with Tryton's (or the adapter's) message; a good event posts.
    @Test func businessRejectionsAreDeadLetteredWithTheirMessage() async throws {
        let tryton = try TrytonServer()
        let sku = Self.catalogue.skus.first { $0.uom == "EA" }!
        try await WorkerSystem.with(workerEnvironment: tryton.workerEnvironment) { system in
            try await system.startWorker(.inventory)
            try await system.publish([
                inventoryMessage(eventId: "tr-rej-1", warehouse: "WH1", sku: "SKU-9999", uom: "EA", sequence: 1),
                inventoryMessage(eventId: "tr-rej-2", warehouse: "WH2", sku: sku.sku, uom: "KG", sequence: 1),
                inventoryMessage(eventId: "tr-rej-3", warehouse: "WH3", sku: sku.sku, uom: "EA", sequence: 1, quantity: "1.5"),
                inventoryMessage(eventId: "tr-ok-4", warehouse: "WH3", sku: sku.sku, uom: "EA", sequence: 2, quantity: "3"),
            ])
            let letters = try await system.deadLetters(count: 3, timeout: .seconds(120))
            try #require(letters.count == 3)
            var errors: [String: String] = [:]
            for letter in letters {
                #expect(letter.properties.headers["whsync-reason"]?.stringValue == "erp-rejected")
                errors[letter.properties.messageId ?? ""] = letter.properties.headers["whsync-error"]?.stringValue ?? ""
            }
            #expect(errors["tr-rej-1"]?.contains("unknown SKU 'SKU-9999'") == true, "\(errors)")
            #expect(errors["tr-rej-2"]?.contains("'KG' is not the unit of SKU '\(sku.sku)'") == true, "\(errors)")
            #expect(errors["tr-rej-3"]?.contains("1.5 has more decimals than unit EA keeps") == true, "\(errors)")
            try await system.waitUntil("the good event to post", timeout: .seconds(60)) {
                try await tryton.probe.references("stock.shipment.internal", prefix: "tr-ok-4").first?.state == "done"
            }
            #expect(try await tryton.probe.references("stock.shipment.internal", prefix: "tr-rej-").isEmpty)
        }
    }

    /// A shipment shipped with other quantities than it was packed with is refused plainly, not
    /// booked with the packed ones; the Tryton shipment stays packed, its stock in place.
    @Test func aShipmentShippedShortIsRefusedNotBookedAsPacked() async throws {
        let tryton = try TrytonServer()
        let sku = Self.catalogue.skus.first { $0.uom == "EA" }!
        let shipment = "SHP-TR-SHORT-\(UUID().uuidString.prefix(8))"
        func event(_ sequence: Int, _ status: String, quantity: Int) -> RawMessage {
            let body = """
                {"schema":"shipment.event/1","eventId":"\(shipment)-\(sequence)","occurredAt":"2026-11-22T10:00:00Z",\
                "warehouse":"WH1","sequence":\(sequence),"shipmentId":"\(shipment)","orderRef":"SO-1","status":"\(status)",\
                "lines":[{"sku":"\(sku.sku)","quantity":\(quantity),"uom":"EA"}]}
                """
            return RawMessage(routingKey: "shipment.WH1", body: Array(body.utf8))
        }
        try await WorkerSystem.with(workerEnvironment: tryton.workerEnvironment) { system in
            try await system.startWorker(.shipment)
            try await system.publish([event(1, "packed", quantity: 2), event(2, "shipped", quantity: 1)])
            let letters = try await system.deadLetters(count: 1, timeout: .seconds(120))
            try #require(letters.count == 1)
            #expect(letters[0].properties.messageId == "\(shipment)-2")
            let error = letters[0].properties.headers["whsync-error"]?.stringValue ?? ""
            #expect(error.contains("ships other quantities than Tryton's shipment"), "\(error)")
            #expect(try await tryton.probe.references("stock.shipment.out", prefix: shipment).map(\.state) == ["packed"])
        }
    }

    /// `whsync reconcile` with `--erp-kind tryton` reads Tryton's stock through the port: the
    /// WMS's balances agree (exit 0); a movement booked in Tryton behind the workers' back is
    /// reported on its row (exit 1); once the WMS counts it too, they agree again.
    @Test func reconcileFindsADriftBookedBehindTheWorkersBack() async throws {
        let tryton = try TrytonServer()
        let client = try tryton.client()
        defer { Task { try? await client.shutdown() } }
        let sku = Self.catalogue.skus[1]
        func lines(_ rows: [StockBalance]) -> Data {
            Data(rows.map { #"{"warehouse":"\#($0.warehouse)","sku":"\#($0.sku)","status":"\#($0.status)","quantity":"\#($0.quantity)"}"# }
                .joined(separator: "\n").utf8)
        }
        func reconcile(_ rows: [StockBalance]) async throws -> TestBroker.ProcessResult {
            try await TestBroker.run(
                try TestBroker.executablePath("whsync"),
                ["reconcile", "-", "--warehouse", "WH2", "--json", "--erp-kind", "tryton", "--erp-base-url", tryton.url,
                 "--erp-user", tryton.user, "--erp-password-file", tryton.passwordFile],
                environment: ["PATH": "/usr/bin:/bin"], stdin: lines(rows))
        }
        // Stock the workers posted, as the WMS counts it: 4 available.
        let message = inventoryMessage(
            eventId: "tr-recon-\(UUID().uuidString.prefix(8))", warehouse: "WH2", sku: sku.sku, uom: sku.uom, sequence: 1, quantity: "4")
        let event = try EventDecoder().decode(message.body, routingKey: message.routingKey)
        #expect(await isPosted(client.post(PostingDocument(event: event))))
        let wms = try await client.balances(warehouse: "WH2")
        let agreeing = try await reconcile(wms)
        #expect(agreeing.status == 0, "\(agreeing.stderr)")

        // Behind the workers' back: 2 more booked in Tryton.
        let drift = inventoryMessage(
            eventId: "tr-drift-\(UUID().uuidString.prefix(8))", warehouse: "WH2", sku: sku.sku, uom: sku.uom, sequence: 1, quantity: "2")
        #expect(try await isPosted(client.post(PostingDocument(event: EventDecoder().decode(drift.body, routingKey: drift.routingKey)))))
        let differing = try await reconcile(wms)
        #expect(differing.status == 1, "\(differing.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(differing.stdout.utf8)) as? [String: Any]
        let found = report?["differences"] as? [[String: Any]] ?? []
        #expect(found.count == 1, "\(found)")
        #expect(found.first?["sku"] as? String == sku.sku && found.first?["status"] as? String == "available")
        #expect(found.first?["difference"] as? String == "2", "\(found)")

        // The WMS counts the drift too: no difference.
        let again = try await reconcile(try await client.balances(warehouse: "WH2"))
        #expect(again.status == 0, "\(again.stderr)")
    }

    /// The documents `whsync reconcile` compares, read off Tryton through the port: a packed
    /// shipment is `packed`, a received receipt `received` (Tryton finishes it), in our words.
    @Test func documentStatusesReadShipmentsAndReceiptsInOurWords() async throws {
        let tryton = try TrytonServer()
        let client = try tryton.client()
        defer { Task { try? await client.shutdown() } }
        let sku = Self.catalogue.skus.first { $0.uom == "EA" }!
        let id = "TR-DOC-\(UUID().uuidString.prefix(8))"
        let shipment = """
            {"schema":"shipment.event/1","eventId":"\(id)-s1","occurredAt":"2026-11-22T10:00:00Z","warehouse":"WH1","sequence":1,\
            "shipmentId":"SHP-\(id)","orderRef":"SO-1","status":"packed","lines":[{"sku":"\(sku.sku)","quantity":1,"uom":"EA"}]}
            """
        let receipt = """
            {"schema":"receipt.event/1","eventId":"\(id)-r1","occurredAt":"2026-11-22T10:00:00Z","warehouse":"WH1","sequence":1,\
            "receiptId":"RCV-\(id)","purchaseOrderRef":"PO-1","supplier":"ACME","status":"received",\
            "lines":[{"sku":"\(sku.sku)","quantityExpected":1,"quantityReceived":1,"uom":"EA"}]}
            """
        for (body, routingKey) in [(shipment, "shipment.WH1"), (receipt, "receipt.WH1")] {
            let event = try EventDecoder().decode(Array(body.utf8), routingKey: routingKey)
            #expect(await isPosted(client.post(PostingDocument(event: event))), "\(routingKey)")
        }
        let documents = try await client.documentStatuses(warehouse: "WH1", kinds: [.shipment, .receipt])
        #expect(documents.first { $0.kind == .shipment && $0.id == "SHP-\(id)" }?.status == "packed", "\(documents.suffix(5))")
        #expect(documents.first { $0.kind == .receipt && $0.id == "RCV-\(id)" }?.status == "received", "\(documents.suffix(5))")
        #expect(client.documentStatusesAgree(.receipt, wms: "putaway-complete", erp: "received"))
        #expect(!client.documentStatusesAgree(.shipment, wms: "packed", erp: "shipped"))
    }

    /// A document a crash left half-way (a draft internal shipment carrying the eventId) is
    /// resumed from its state when the event is posted again: done once, never created twice, the
    /// stock moved once; a further repeat answers already posted.
    @Test func aDocumentLeftHalfWayIsResumedNotCreatedTwice() async throws {
        let tryton = try TrytonServer()
        let client = try tryton.client()
        defer { Task { try? await client.shutdown() } }
        let sku = Self.catalogue.skus[2]
        let run = UUID().uuidString.prefix(8)
        func document(_ eventId: String) throws -> PostingDocument {
            let message = inventoryMessage(eventId: eventId, warehouse: "WH1", sku: sku.sku, uom: sku.uom, sequence: 1, quantity: "3")
            return PostingDocument(event: try EventDecoder().decode(message.body, routingKey: message.routingKey))
        }
        #expect(await isPosted(client.post(try document("tr-half-a-\(run)"))))
        // What a crash between `create` and `do` leaves: a draft shipment with the eventId.
        try await tryton.probe.copy("stock.shipment.internal", reference: "tr-half-a-\(run)", as: "tr-half-b-\(run)")
        let draft = try await tryton.probe.references("stock.shipment.internal", prefix: "tr-half-b-\(run)")
        #expect(draft.map(\.state) == ["draft"])
        let before = try await tryton.balances(client)["WH1/\(sku.sku)/available"] ?? .zero

        #expect(await isPosted(client.post(try document("tr-half-b-\(run)"))))
        let resumed = try await tryton.probe.references("stock.shipment.internal", prefix: "tr-half-b-\(run)")
        #expect(resumed.map(\.state) == ["done"])
        #expect(try await tryton.balances(client)["WH1/\(sku.sku)/available"] == before + 3)
        #expect(await client.post(try document("tr-half-b-\(run)")) == .alreadyPosted)
        #expect(try await tryton.balances(client)["WH1/\(sku.sku)/available"] == before + 3)
    }

    /// A create a killed predecessor left running inside trytond commits after this process
    /// posted the same event: the draft it leaves beside the done document is cancelled once
    /// every such call has ended (the request timeout and 5 s after the client's start; 1 s
    /// here), and the stock moves once.
    @Test func aDraftAKilledPredecessorLeftIsCancelledOnceItsCallsEnded() async throws {
        let tryton = try TrytonServer()
        let client = try tryton.client(requestTimeout: .seconds(1))
        defer { Task { try? await client.shutdown() } }
        let sku = Self.catalogue.skus[3]
        let eventId = "tr-late-\(UUID().uuidString.prefix(8))"
        let message = inventoryMessage(eventId: eventId, warehouse: "WH2", sku: sku.sku, uom: sku.uom, sequence: 1, quantity: "2")
        let before = try await tryton.balances(client)["WH2/\(sku.sku)/available"] ?? .zero
        #expect(await isPosted(client.post(PostingDocument(event: try EventDecoder().decode(message.body, routingKey: message.routingKey)))))
        // The predecessor's create, committed late: a second live document with the reference.
        try await tryton.probe.copy("stock.shipment.internal", reference: eventId, as: eventId)
        #expect(try await tryton.probe.references("stock.shipment.internal", prefix: eventId).map(\.state).sorted() == ["done", "draft"])
        try await TestBroker.waitUntil("the late draft cancelled beside the done document", timeout: .seconds(30)) {
            try await tryton.probe.references("stock.shipment.internal", prefix: eventId).map(\.state).sorted() == ["cancelled", "done"]
        }
        #expect(try await tryton.balances(client)["WH2/\(sku.sku)/available"] == before + 2)
    }

    /// A batch (ERP_BATCH_MAX): its inventory deltas become one `create` and one of each step in
    /// Tryton, each item answered as on its own: posted, already posted (an item posted before),
    /// rejected (an unknown SKU) while the others post; the stock moves by exactly their sum.
    @Test func aBatchPostsItsInventoryDeltasTogetherEachAnsweredOnItsOwn() async throws {
        let tryton = try TrytonServer()
        let client = try tryton.client()
        defer { Task { try? await client.shutdown() } }
        let run = UUID().uuidString.prefix(8)
        let skus = Self.catalogue.skus.filter { $0.uom == "EA" }.prefix(4)
        func document(_ eventId: String, sku: String, quantity: String) throws -> PostingDocument {
            let message = inventoryMessage(eventId: eventId, warehouse: "WH3", sku: sku, uom: "EA", sequence: 1, quantity: quantity)
            return PostingDocument(event: try EventDecoder().decode(message.body, routingKey: message.routingKey))
        }
        let early = try document("tr-batch-\(run)-early", sku: skus.first!.sku, quantity: "1")
        #expect(await isPosted(client.post(early)))
        let before = try await tryton.balances(client)

        var documents = [early, try document("tr-batch-\(run)-unknown", sku: "SKU-9999", quantity: "1")]
        for (index, sku) in skus.enumerated() {
            documents.append(try document("tr-batch-\(run)-\(index)", sku: sku.sku, quantity: "\(index + 2)"))
        }
        let answers = await client.post(batch: PostingBatch(documents))
        #expect(answers.count == documents.count)
        #expect(answers[0] == .alreadyPosted)
        if case .rejected(_, let message) = answers[1] {
            #expect(message.contains("unknown SKU 'SKU-9999'"), "\(message)")
        } else {
            Issue.record("the unknown SKU was not rejected: \(answers[1])")
        }
        #expect(answers[2...].allSatisfy { isPosted($0) }, "\(answers)")

        let after = try await tryton.balances(client)
        for (index, sku) in skus.enumerated() {
            let key = "WH3/\(sku.sku)/available"
            #expect(after[key] ?? .zero == (before[key] ?? .zero) + Quantity(units: Int64(index + 2))!, "\(key)")
        }
        let booked = try await tryton.probe.references("stock.shipment.internal", prefix: "tr-batch-\(run)-")
        #expect(booked.count == 1 + skus.count && Set(booked.map(\.reference)).count == booked.count)
        #expect(booked.allSatisfy { $0.state == "done" })
    }

    private func isPosted(_ answer: ERPResponseClass) -> Bool {
        if case .posted = answer { return true }
        return false
    }
}

/// The Tryton server of `./scripts/test` (scripts/tryton), found through its variables.
struct TrytonServer {
    let url: String
    let user: String
    let passwordFile: String
    let probe: TrytonProbe

    init() throws {
        let hint = "run the suite with ./scripts/test, which starts Tryton with scripts/tryton"
        url = try TestEnvironment.require("WHSYNC_TEST_TRYTON_URL", hint: hint)
        user = try TestEnvironment.require("WHSYNC_TEST_TRYTON_USER", hint: hint)
        passwordFile = try TestEnvironment.require("WHSYNC_TEST_TRYTON_PASSWORD_FILE", hint: hint)
        let password = try String(contentsOfFile: passwordFile, encoding: .utf8).trimmingCharacters(in: .newlines)
        probe = TrytonProbe(url: url, user: user, password: password)
    }

    var workerEnvironment: [String: String] {
        ["ERP_KIND": "tryton", "ERP_BASE_URL": url, "ERP_USER": user, "ERP_PASSWORD_FILE": passwordFile]
    }

    func client(requestTimeout: Duration = TrytonConfiguration.defaultRequestTimeout) throws -> TrytonERPClient {
        let password = try TrytonConfiguration.readPassword(path: passwordFile)
        return TrytonERPClient(configuration: try TrytonConfiguration(baseURL: url, user: user, password: password, requestTimeout: requestTimeout))
    }

    /// Tryton's stock of the catalogue's warehouses as `warehouse/sku/status → quantity`, zeros left out.
    func balances(_ client: TrytonERPClient) async throws -> [String: Quantity] {
        var balances: [String: Quantity] = [:]
        for warehouse in TrytonIntegrationTests.catalogue.warehouses {
            for row in try await client.balances(warehouse: warehouse) {
                balances["\(row.warehouse)/\(row.sku)/\(row.status)"] = row.quantity
            }
        }
        return balances
    }
}

/// Tryton's JSON-RPC from the test's side, independent of the adapter: documents by reference.
struct TrytonProbe: Sendable {
    let url: String
    let user: String
    let password: String

    struct Document: Sendable {
        let reference: String
        let state: String
    }

    /// The documents of `model` whose reference starts with `prefix`.
    func references(_ model: String, prefix: String) async throws -> [Document] {
        let (session, context) = try await login()
        let rows = try await call(
            "model.\(model).search_read",
            [[["reference", "like", prefix + "%"]], 0, NSNull(), NSNull(), ["reference", "state"], context], session: session)
        return try #require(rows as? [[String: Any]]).map {
            Document(reference: $0["reference"] as? String ?? "", state: $0["state"] as? String ?? "")
        }
    }

    /// Copies the document of `model` whose reference is `reference` under the reference `new`:
    /// Tryton's copy is a draft with draft moves.
    func copy(_ model: String, reference: String, as new: String) async throws {
        let session = try await login()
        let rows = try #require(try await call(
            "model.\(model).search", [[["reference", "=", reference]], 0, 1, NSNull(), session.context], session: session.credentials)
            as? [Int])
        _ = try await call("model.\(model).copy", [rows, ["reference": new], session.context], session: session.credentials)
    }

    private func login() async throws -> (credentials: String, context: [String: Any]) {
        let login = try await call("common.db.login", [user, ["password": password], "en"], session: nil)
        let values = try #require(login as? [Any])
        let credentials = "\(user):\(values[0]):\(values[1])"
        let preferences = try #require(
            try await call("model.res.user.get_preferences", [true, [:] as [String: Any]], session: credentials) as? [String: Any])
        return (credentials, ["company": preferences["company"] ?? NSNull()])
    }

    private func call(_ method: String, _ params: [Any], session: String?) async throws -> Any {
        var request = URLRequest(url: URL(string: url + "rpc/")!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let session {
            request.setValue("Session " + Data(session.utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        }
        request.httpBody = try JSONSerialization.data(withJSONObject: ["id": 1, "method": method, "params": params])
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        guard status == 200, let result = object?["result"] else {
            throw TestBroker.ProcessFailure(description: "Tryton \(method) answered HTTP \(status): \(String(decoding: data.prefix(500), as: UTF8.self))")
        }
        return result
    }
}
