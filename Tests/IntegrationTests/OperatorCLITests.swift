import AMQPClient
import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncOps
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncSimulation
import WarehouseSyncSQLiteStore
import WarehouseSyncStore
import WarehouseSyncWorker

/// `whsync gaps`, `whsync dlq` and `whsync status` as an operator runs them, against a running
/// worker, the reference ERP and the store they share.
@Suite(.serialized) struct OperatorCLITests {
    static let topologyFile = TestBroker.repoRoot().appendingPathComponent("topology/topology.json").path

    func whsync(_ system: WorkerSystem, _ arguments: [String], stdin: Data? = nil) async throws -> TestBroker.ProcessResult {
        try await TestBroker.run(
            try TestBroker.executablePath("whsync"), arguments,
            environment: ["AMQP_URL": system.amqpURL, "STORE_URL": system.storeURL], stdin: stdin)
    }

    func json(_ result: TestBroker.ProcessResult) throws -> Any {
        try #require(result.status == 0, "exit \(result.status): \(result.stderr)")
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    }

    /// A parked key shows in `gaps list` and `status`; `gaps skip` resumes it, the worker
    /// releases the held events in order; the skipped event arriving late is dead-lettered
    /// (`gap-timeout`), and its replay is posted.
    @Test func gapsListAndSkipResumeAParkedKey() async throws {
        let catalogue = Catalogue(warehouses: 1, skus: 3)
        let sku = catalogue.skus[0]
        func delta(_ sequence: Int) -> RawMessage {
            inventoryMessage(eventId: "gap-\(sequence)", warehouse: "WH1", sku: sku.sku, uom: sku.uom, sequence: sequence)
        }
        try await WorkerSystem.with(masterData: catalogue, workerEnvironment: ["GAP_TIMEOUT": "1s"]) { system in
            let worker = try await system.startWorker(.inventory)
            try await system.publish([delta(1), delta(3), delta(4)])
            _ = try await worker.awaitLog("key parked", timeout: .seconds(30))

            let gaps = try #require(try json(await whsync(system, ["gaps", "list", "--json"])) as? [[String: Any]])
            try #require(gaps.count == 1)
            #expect(gaps[0]["stream"] as? String == "inventory")
            #expect(gaps[0]["key"] as? String == "WH1/\(sku.sku)")
            #expect(gaps[0]["parked"] as? Bool == true)
            #expect(gaps[0]["reason"] as? String == "gap-timeout")
            #expect(gaps[0]["missingFrom"] as? Int == 2 && gaps[0]["missingTo"] as? Int == 2)
            #expect(gaps[0]["heldSequences"] as? [Int] == [3, 4])

            let status = try #require(
                try json(await whsync(system, ["status", "--json", "--file", Self.topologyFile, "--erp-base-url", system.erpURL]))
                    as? [String: Any])
            #expect(status["erp"] as? String == "up")
            // The workers' probe, with their token: a token file they could not read is an error.
            let unreadable = try await whsync(
                system, ["status", "--file", Self.topologyFile, "--erp-base-url", system.erpURL, "--erp-token-file", "/nonexistent/erp-token"])
            #expect(unreadable.status != 0)
            #expect(unreadable.stderr.contains("ERP_TOKEN_FILE: cannot read '/nonexistent/erp-token'"), "\(unreadable.stderr)")
            let streams = try #require(status["streams"] as? [[String: Any]])
            let inventory = try #require(streams.first { $0["stream"] as? String == "inventory" })
            #expect(inventory["parkedKeys"] as? Int == 1)
            #expect(inventory["heldEvents"] as? Int == 2)
            #expect(inventory["oldestHeldSince"] is String)
            let workQueues = try #require(inventory["workQueues"] as? [[String: Any]])
            #expect(workQueues.first?["consumers"] as? Int == 1)

            // The warehouse's view: what waits, why, and what was posted last.
            let byWarehouse = try #require(
                try json(await whsync(system, ["status", "--warehouse", "WH1", "--json", "--file", Self.topologyFile])) as? [String: Any])
            let warehouses = try #require(byWarehouse["warehouses"] as? [[String: Any]])
            try #require(warehouses.count == 1)
            #expect(warehouses[0]["warehouse"] as? String == "WH1")
            let wh1 = try #require((warehouses[0]["streams"] as? [[String: Any]])?.first { $0["stream"] as? String == "inventory" })
            #expect(wh1["heldEvents"] as? Int == 2)
            #expect(wh1["heldKeys"] as? Int == 1)
            #expect(wh1["parkedKeys"] as? [String] == ["WH1/\(sku.sku)"])
            #expect(wh1["oldestHeldSince"] is String)
            #expect((wh1["delaySeconds"] as? Double ?? -1) >= 0)
            #expect(wh1["pendingDeadLetters"] as? Int == 0)
            let lastPosted = try #require(wh1["lastPosted"] as? [String: Any])
            #expect(lastPosted["eventId"] as? String == "gap-1")
            #expect(lastPosted["sequence"] as? Int == 1)
            let wh1Shipment = try #require((warehouses[0]["streams"] as? [[String: Any]])?.first { $0["stream"] as? String == "shipment" })
            #expect(wh1Shipment["lastPosted"] is NSNull)
            #expect((byWarehouse["queues"] as? [[String: Any]])?.count == 3)
            let allWarehouses = try #require(
                try json(await whsync(system, ["status", "--warehouse", "all", "--json", "--file", Self.topologyFile])) as? [String: Any])
            #expect((allWarehouses["warehouses"] as? [[String: Any]])?.compactMap { $0["warehouse"] as? String } == ["WH1"])
            let text = try await whsync(system, ["status", "--warehouse", "WH1", "--file", Self.topologyFile])
            #expect(text.status == 0, "\(text.stderr)")
            #expect(text.stdout.contains("warehouse WH1"), "\(text.stdout)")
            #expect(text.stdout.contains("2 events held on 1 key"), "\(text.stdout)")
            #expect(text.stdout.contains("1 key parked: WH1/\(sku.sku)"), "\(text.stdout)")
            #expect(text.stdout.contains("last posted"), "\(text.stdout)")
            let badName = try await whsync(system, ["status", "--warehouse", "WH 1", "--file", Self.topologyFile])
            #expect(badName.status != 0 && badName.stderr.contains("--warehouse"), "\(badName.stderr)")

            let skip = try #require(
                try json(await whsync(system, ["gaps", "skip", "--stream", "inventory", "WH1/\(sku.sku)", "--json"])) as? [String: Any])
            #expect(skip["skippedFrom"] as? Int == 2 && skip["resumedAt"] as? Int == 3)
            try await system.waitUntil("the worker to release the held events", timeout: .seconds(30)) {
                try await system.erpDocumentCount() == 3
            }
            let documents = try await system.erpJSON("/documents")["documents"] as? [[String: Any]] ?? []
            #expect(documents.compactMap { $0["eventId"] as? String } == ["gap-1", "gap-3", "gap-4"])

            let after = try #require(try json(await whsync(system, ["gaps", "list", "--json"])) as? [[String: Any]])
            #expect(after.isEmpty)

            // The skipped event turns up after all: not dropped as stale, but dead-lettered for a
            // person, who replays it; the replay is posted behind the key.
            try await system.withReplayWorker { _ in
                try await system.publish([delta(2)])
                var letters: [[String: Any]] = []
                try await system.waitUntil("the late event among the dead letters", timeout: .seconds(30)) {
                    letters = try #require(
                        try json(await whsync(system, ["dlq", "list", "--reason", "gap-timeout", "--json"])) as? [[String: Any]])
                    return !letters.isEmpty
                }
                try #require(letters.count == 1)
                #expect(letters[0]["eventId"] as? String == "gap-2")
                let error = letters[0]["error"] as? String ?? ""
                #expect(error.contains("sequence 2 arrived after `whsync gaps skip` gave up on it"), "\(error)")
                #expect(try await system.metricSample(.inventory, "whsync_stale_total") == 0)
                let id = try #require(letters[0]["id"] as? Int)
                _ = try json(await whsync(system, ["dlq", "replay", "\(id)", "--json"]))
                try await system.waitUntil("the replay to post", timeout: .seconds(30)) {
                    try await system.erpDocumentCount() == 4
                }
            }
            let posted = try await system.erpJSON("/documents")["documents"] as? [[String: Any]] ?? []
            #expect(posted.compactMap { $0["eventId"] as? String } == ["gap-1", "gap-3", "gap-4", "gap-2"])

            // The late event's story, oldest first: its key's gap skipped, then it is published,
            // dead-lettered, replayed and posted; somewhere after the dead letter a worker
            // recorded it (as dead-lettered, or at the replay: the two race here).
            var trace: [String: Any] = [:]
            try await system.waitUntil("the replay to be recorded posted", timeout: .seconds(30)) {
                trace = try #require(try json(await whsync(system, ["trace", "gap-2", "--json"])) as? [String: Any])
                return trace["state"] as? String == "posted"
            }
            #expect(trace["key"] as? String == "WH1/\(sku.sku)")
            #expect(trace["sequence"] as? Int == 2)
            #expect(trace["documentId"] is String)
            #expect((trace["deadLetterIds"] as? [Int])?.count == 1)
            let steps = try #require(trace["steps"] as? [[String: Any]])
            let what = steps.compactMap { $0["what"] as? String }
            let order = ["gap skipped by ", "published", "dead-lettered", "replay by ", "posted"]
            let ordered = what.filter { $0 != "recorded" }
            #expect(ordered.count == order.count && zip(ordered, order).allSatisfy { $0.hasPrefix($1) }, "\(what)")
            let recordedAfterLetter = what.firstIndex(of: "recorded").flatMap { recorded in
                what.firstIndex(of: "dead-lettered").map { recorded > $0 }
            }
            #expect(recordedAfterLetter == true, "\(what)")
            let times = steps.compactMap { $0["at"] as? String }
            #expect(times == times.sorted())
            #expect(steps.contains { ($0["detail"] as? String)?.contains("gap-timeout") == true }, "\(steps)")
            // An event that waited on the parked key: held, the operator's skip, posted.
            let held = try #require(try json(await whsync(system, ["trace", "gap-3", "--json"])) as? [String: Any])
            let heldSteps = (held["steps"] as? [[String: Any]] ?? []).compactMap { $0["what"] as? String }
            #expect(heldSteps.contains { $0.hasPrefix("gap skipped by ") } && held["state"] as? String == "posted", "\(heldSteps)")
            let story = try await whsync(system, ["trace", "gap-2"])
            #expect(story.status == 0 && story.stdout.hasPrefix("event gap-2: inventory WH1/\(sku.sku) #2"), "\(story.stdout)")
            #expect(story.stdout.contains("now: posted, ERP document"), "\(story.stdout)")
            let unknown = try await whsync(system, ["trace", "never-published"])
            #expect(unknown.status == 1 && unknown.stdout.contains("no record of it"), "\(unknown.stdout)")
        }
    }

    /// A letter the worker dead-lettered, drained into the store, is listed, shown, fixed with
    /// `dlq edit`, replayed (posted by the worker as a replay), exported, and purged.
    @Test func dlqListShowEditReplayExportPurge() async throws {
        let catalogue = Catalogue(warehouses: 1, skus: 3)
        let sku = catalogue.skus[0]
        try await WorkerSystem.with(masterData: catalogue) { system in
            try await system.startWorker(.inventory)
            // Quantity 0 breaks the schema; a second, malformed body has no eventId at all.
            let bad = inventoryMessage(eventId: "dlq-1", warehouse: "WH1", sku: sku.sku, uom: sku.uom, sequence: 1, quantity: "0")
            try await system.publish([bad, RawMessage(routingKey: "inventory.WH1", body: Array("{not json".utf8))])

            // What the replay worker does with each letter: read it in, store it, ack.
            let letters = try await system.deadLetters(count: 2)
            try #require(letters.count == 2)
            let topology = try Topology.load(contentsOf: URL(fileURLWithPath: Self.topologyFile))
            let storePath = try system.storePath()
            let store = try await SQLiteWorkerStore(path: storePath)
            for letter in letters {
                _ = try await store.recordDeadLetter(DeadLetterIntake.letter(
                    body: letter.body, properties: letter.properties, routingKey: letter.routingKey, receivedAt: Date(),
                    topology: topology))
            }
            await store.close()

            let listed = try #require(try json(await whsync(system, ["dlq", "list", "--json"])) as? [[String: Any]])
            try #require(listed.count == 2)
            // A list cut short says so (on stderr: stdout stays one JSON document).
            let cut = try await whsync(system, ["dlq", "list", "--json", "--limit", "1"])
            #expect((try json(cut) as? [[String: Any]])?.count == 1)
            #expect(cut.stderr.contains("more than 1 letter match; these are the oldest 1"), "\(cut.stderr)")
            let whole = try await whsync(system, ["dlq", "list", "--json", "--limit", "2"])
            #expect(!whole.stderr.contains("more than"), "\(whole.stderr)")
            for row in listed {
                for field in ["id", "stream", "reason", "eventId", "routingKey", "error", "failedAt", "replayCount"] {
                    #expect(row.keys.contains(field), "dlq list --json lacks \(field)")
                }
                #expect(row["reason"] as? String == "invalid")
                #expect(row["stream"] as? String == "inventory")
                #expect(row["routingKey"] as? String == "inventory.WH1")
            }
            let fixable = try #require(listed.first { $0["eventId"] as? String == "dlq-1" })
            #expect((fixable["error"] as? String)?.contains("quantity") == true)
            #expect(listed.contains { $0["eventId"] is NSNull }, "the malformed body has no eventId: null")
            let id = try #require(fixable["id"] as? Int)

            let shown = try #require(try json(await whsync(system, ["dlq", "show", "\(id)", "--json"])) as? [String: Any])
            #expect(shown["body"] as? String == String(decoding: bad.body, as: UTF8.self))
            #expect(shown["originalExchange"] as? String == "wms.events")

            // An edit that is still invalid is refused; a fixed body is stored.
            let stillBad = try await whsync(system, ["dlq", "edit", "\(id)", "--body-file", "-"], stdin: Data(bad.body))
            #expect(stillBad.status != 0 && stillBad.stderr.contains("quantity"))
            let fixed = inventoryMessage(eventId: "dlq-1", warehouse: "WH1", sku: sku.sku, uom: sku.uom, sequence: 1, quantity: "7")
            let edit = try await whsync(system, ["dlq", "edit", "\(id)", "--body-file", "-"], stdin: Data(fixed.body))
            #expect(edit.status == 0, "\(edit.stderr)")

            let dryRun = try #require(try json(await whsync(system, ["dlq", "replay", "\(id)", "--dry-run", "--json"])) as? [[String: Any]])
            #expect(dryRun.first?["outcome"] as? String == "would-replay")
            #expect(try await system.erpDocumentCount() == 0)

            let replay = try #require(try json(await whsync(system, ["dlq", "replay", "\(id)", "--json"])) as? [[String: Any]])
            #expect(replay.first?["outcome"] as? String == "replayed")
            try await system.waitUntil("the replayed event to post", timeout: .seconds(30)) {
                try await system.erpDocumentCount() == 1
            }
            let balances = try await system.erpBalances()
            #expect(balances["WH1/\(sku.sku)/available"] == "7")
            // Replaying the same letter again posts nothing twice: the eventId is posted now.
            let again = try await whsync(system, ["dlq", "replay", "\(id)", "--actor", "carol"])
            #expect(again.status == 0, "\(again.stderr)")
            try await system.waitUntil("the second replay to be dropped as a duplicate", timeout: .seconds(30)) {
                try await system.metric(.inventory, "whsync_duplicates_total") == 1
            }
            #expect(try await system.erpDocumentCount() == 1)

            let after = try #require(try json(await whsync(system, ["dlq", "show", "\(id)", "--json"])) as? [String: Any])
            #expect(after["status"] as? String == "replayed")
            #expect(after["replayCount"] as? Int == 2)
            #expect(after["lastReplayedBy"] as? String == "carol")
            // The history keeps who did what, and the body the edit replaced.
            let history = try #require(after["history"] as? [[String: Any]])
            #expect(history.compactMap { $0["action"] as? String } == ["edit", "replay", "replay"])
            #expect(history.first?["previousBody"] as? String == String(decoding: bad.body, as: UTF8.self))
            #expect((history.first?["actor"] as? String)?.contains("@") == true)

            let export = try await whsync(system, ["dlq", "export"])
            #expect(export.status == 0)
            #expect(export.stdout.split(separator: "\n").count == 2)

            let unconfirmed = try await whsync(system, ["dlq", "purge", "--reason", "invalid"])
            #expect(unconfirmed.status != 0 && unconfirmed.stderr.contains("--yes"), "\(unconfirmed.stderr)")
            let purge = try await whsync(system, ["dlq", "purge", "--reason", "invalid", "--yes"])
            #expect(purge.status == 0 && purge.stderr.contains("purged 1 dead letter"), "\(purge.stderr)")
            let pending = try #require(try json(await whsync(system, ["dlq", "list", "--status", "pending", "--json"])) as? [[String: Any]])
            #expect(pending.isEmpty)
            let refused = try await whsync(system, ["dlq", "replay"])
            #expect(refused.status != 0 && refused.stderr.contains("exactly one"))
            let unknown = try await whsync(system, ["dlq", "show", "999999"])
            #expect(unknown.status != 0 && unknown.stderr.contains("no dead letter 999999"))
            let badFilter = try await whsync(system, ["dlq", "list", "--reason", "late"])
            #expect(badFilter.status != 0 && badFilter.stderr.contains("late"))
        }
    }

    /// An unreachable store gives one line naming STORE_URL, never the password, and exit 1.
    @Test func anUnreachableStoreIsOneClearLine() async throws {
        let whsync = try TestBroker.executablePath("whsync")
        for url in ["sqlite:/nonexistent/dir/store.db", "postgres://ops:s3cret-pw@127.0.0.1:1/whsync"] {
            let result = try await TestBroker.run(whsync, ["dlq", "list", "--store-url", url])
            #expect(result.status == 1)
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].contains("STORE_URL"), "\(result.stderr)")
            #expect(!result.stderr.contains("s3cret-pw"))
        }
    }

    /// `whsync reconcile` against the ERP the workers posted a day to: the WMS's balances (the
    /// simulator's expected ledger) agree, exit 0; a count that differs and a row the ERP lacks
    /// are reported, exit 1; a malformed line names its line.
    @Test func reconcileComparesTheWMSBalancesWithTheERPs() async throws {
        let day = try SimulatedDay(options: SimulationOptions(seed: 31, warehouses: 2, skus: 8, events: 300))
        let expectedDocuments = day.manifest.expected.documents.values.reduce(0, +)
        try await WorkerSystem.with(masterData: day.catalogue) { system in
            for stream in EventStream.allCases { try await system.startWorker(stream) }
            try await system.publish(day.messages)
            try await system.waitUntil("every expected document to be booked", timeout: .seconds(120)) {
                try await system.erpDocumentCount() >= expectedDocuments
            }
            let balances = day.manifest.expected.ledger.balances
            func lines(_ rows: [(String, String, String, String)]) -> Data {
                Data(rows.map { #"{"warehouse":"\#($0.0)","sku":"\#($0.1)","status":"\#($0.2)","quantity":"\#($0.3)"}"# }
                    .joined(separator: "\n").utf8)
            }
            let agreeing = lines(balances.map { ($0.warehouse, $0.sku, $0.status, $0.quantity) })
            let reconcile = ["reconcile", "-", "--erp-base-url", system.erpURL]
            let report = try #require(try json(await whsync(system, reconcile + ["--json"], stdin: agreeing)) as? [String: Any])
            #expect((report["differences"] as? [Any])?.isEmpty == true, "\(report)")
            #expect(report["compared"] as? Int == balances.count)
            #expect(report["warehouses"] as? [String] == Array(Set(balances.map(\.warehouse))).sorted())
            // The simulator's snapshot of the day (shipments and receipts too) agrees as well.
            let snapshot = try json(await whsync(system, reconcile + ["--json"], stdin: Data(day.snapshot()))) as? [String: Any]
            let documents = try #require(snapshot?["documents"] as? [String: Any], "\(snapshot ?? [:])")
            #expect((documents["differences"] as? [Any])?.isEmpty == true, "\(documents)")
            #expect((documents["compared"] as? Int ?? 0) > 0)

            // The WMS counts one more of the first row, and stock the ERP never heard of.
            var rows = balances.map { ($0.warehouse, $0.sku, $0.status, $0.quantity) }
            let first = rows[0]
            rows[0].3 = (Quantity(parsing: first.3)! + 1).description
            rows.append((first.0, "SKU-NOT-POSTED", "damaged", "2.5"))
            let differing = try await whsync(system, reconcile + ["--json"], stdin: lines(rows))
            #expect(differing.status == 1, "\(differing.stderr)")
            let found = try #require(
                try JSONSerialization.jsonObject(with: Data(differing.stdout.utf8)) as? [String: Any])["differences"] as? [[String: String]]
            #expect(found?.count == 2)
            let changed = found?.first { $0["sku"] == first.1 }
            #expect(changed?["wms"] == rows[0].3 && changed?["erp"] == first.3 && changed?["difference"] == "-1", "\(found ?? [])")
            let missing = found?.first { $0["sku"] == "SKU-NOT-POSTED" }
            #expect(missing?["wms"] == "2.5" && missing?["erp"] == "0" && missing?["difference"] == "-2.5", "\(found ?? [])")
            let text = try await whsync(system, reconcile, stdin: lines(rows))
            #expect(text.status == 1)
            #expect(text.stdout.contains("SKU-NOT-POSTED") && text.stdout.contains("ERP-WMS -2.5"), "\(text.stdout)")
            #expect(text.stderr.contains("2 differ"), "\(text.stderr)")

            let malformed = try await whsync(system, reconcile, stdin: Data("\n{\"warehouse\":\"WH1\",\"sku\":\"A\",\"quantity\":\"1.2345678\"}".utf8))
            #expect(malformed.status == 64)
            #expect(malformed.stderr.contains("stdin line 2: quantity must be a decimal"), "\(malformed.stderr)")
            let wmsCode = try await whsync(system, reconcile, stdin: Data(#"{"warehouse":"WH1","sku":"A","status":"QC","quantity":"1"}"#.utf8))
            #expect(wmsCode.status == 64)
            #expect(wmsCode.stderr.contains("stdin line 1: status 'QC' is not one of available,"), "\(wmsCode.stderr)")
            // No answer is not a difference: exit 2, not 1.
            let unreachable = try await whsync(
                system, ["reconcile", "-", "--erp-base-url", "http://127.0.0.1:1", "--timeout", "3"], stdin: agreeing)
            #expect(unreachable.status == 2, "\(unreachable.stderr)")
            #expect(unreachable.stderr.contains("whsync reconcile: GET /balances?warehouse="), "\(unreachable.stderr)")
        }
    }
}
