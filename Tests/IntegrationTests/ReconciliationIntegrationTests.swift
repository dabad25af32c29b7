import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSimulation
import WarehouseSyncSQLiteStore
import WarehouseSyncStore

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `whsync reconcile` as a standing control (docs/reconciliation.md) against the test broker, the
/// `reference-erp` executable, a real inventory worker and a SQLite store: a drift booked in the
/// ERP behind the workers' back is found, `--correct` repairs it through the worker, a repeat
/// corrects nothing twice, and the replay worker's schedule exports what it finds.
@Suite(.serialized) struct ReconciliationIntegrationTests {
    static let catalogue = Catalogue(warehouses: 1, skus: 3)
    static var sku: Catalogue.SKU { catalogue.skus[0] }
    static var other: Catalogue.SKU { catalogue.skus[1] }

    func whsync(_ system: WorkerSystem, _ arguments: [String]) async throws -> TestBroker.ProcessResult {
        try await TestBroker.run(
            try TestBroker.executablePath("whsync"), arguments + ["--erp-base-url", system.erpURL],
            environment: ["AMQP_URL": system.amqpURL, "STORE_URL": system.storeURL, "USER": "tester"])
    }

    func report(_ result: TestBroker.ProcessResult, exit: Int32) throws -> [String: Any] {
        #expect(result.status == exit, "exit \(result.status): \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
    }

    /// Two SKUs posted by the worker, one shipment packed; the WMS's snapshot of them.
    func postDay(_ system: WorkerSystem) async throws -> String {
        try await system.publish([
            inventoryMessage(eventId: "in-1", warehouse: "WH1", sku: Self.sku.sku, uom: Self.sku.uom, sequence: 1, quantity: "10"),
            inventoryMessage(eventId: "in-2", warehouse: "WH1", sku: Self.other.sku, uom: Self.other.uom, sequence: 1, quantity: "5"),
            shipmentMessage(eventId: "sh-1", warehouse: "WH1", shipmentId: "SHP-1", sequence: 1, status: "packed", sku: Self.other.sku, uom: Self.other.uom),
        ])
        try await system.waitUntil("the day to be booked", timeout: .seconds(60)) { try await system.erpDocumentCount() == 3 }
        let snapshot = system.directory.appendingPathComponent("snapshot.jsonl")
        let lines = [
            #"{"warehouse":"WH1","sku":"\#(Self.sku.sku)","quantity":"10","uom":"\#(Self.sku.uom)","sequence":1}"#,
            #"{"warehouse":"WH1","sku":"\#(Self.other.sku)","quantity":"5","uom":"\#(Self.other.uom)","sequence":1}"#,
            #"{"kind":"shipment","warehouse":"WH1","shipmentId":"SHP-1","status":"packed"}"#,
        ]
        try Data(lines.joined(separator: "\n").utf8).write(to: snapshot)
        return snapshot.path
    }

    /// Books 2 more of the SKU in the ERP directly, as a person in the ERP would: no event, no worker.
    func injectDrift(_ system: WorkerSystem) async throws {
        var request = URLRequest(url: URL(string: system.erpURL + "/inventory-movements")!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("manual-1", forHTTPHeaderField: "Idempotency-Key")
        request.httpBody = Data("""
            {"eventId":"manual-1","sequence":1,"warehouse":"WH1","sku":"\(Self.sku.sku)","quantity":2,"uom":"\(Self.sku.uom)",\
            "status":"available","reason":"adjustment"}
            """.utf8)
        let (_, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 201)
    }

    func balance(_ system: WorkerSystem) async throws -> String? {
        try await system.erpBalances()["WH1/\(Self.sku.sku)/available"]
    }

    /// The bar of issue 18: found, corrected through the worker, then none; a correction in the
    /// queue is not published again by a second `--correct`, and after it is posted a third
    /// corrects nothing. The correction is audited and booked once, with its own eventId.
    @Test func aDriftBehindTheWorkersBackIsFoundCorrectedOnceAndThenGone() async throws {
        try await WorkerSystem.with(masterData: Self.catalogue) { system in
            try await system.startWorker(.inventory)
            try await system.startWorker(.shipment)
            let snapshot = try await postDay(system)
            let agreeing = try report(try await whsync(system, ["reconcile", snapshot, "--json"]), exit: 0)
            #expect((agreeing["differences"] as? [Any])?.isEmpty == true, "\(agreeing)")
            let documents = try #require(agreeing["documents"] as? [String: Any])
            #expect(documents["compared"] as? Int == 1)

            try await injectDrift(system)
            let found = try report(try await whsync(system, ["reconcile", snapshot, "--json"]), exit: 1)
            let rows = try #require(found["differences"] as? [[String: Any]])
            #expect(rows.count == 1)
            #expect(rows.first?["sku"] as? String == Self.sku.sku && rows.first?["wms"] as? String == "10"
                && rows.first?["erp"] as? String == "12" && rows.first?["difference"] as? String == "2", "\(rows)")

            // The worker is stopped: the correction waits in the queue, in flight.
            await system.workers[.inventory]?.stop()
            let corrected = try report(try await whsync(system, ["reconcile", snapshot, "--correct", "--json"]), exit: 1)
            let corrections = try #require(corrected["corrections"] as? [[String: Any]])
            #expect(corrections.count == 1)
            let eventId = try #require(corrections.first?["eventId"] as? String, "\(corrections)")
            #expect(corrections.first?["outcome"] as? String == "published" && corrections.first?["quantity"] as? String == "-2")
            #expect(eventId.hasPrefix("reconcile-"))

            let again = try report(try await whsync(system, ["reconcile", snapshot, "--correct", "--json"]), exit: 1)
            let second = try #require(again["corrections"] as? [[String: Any]])
            #expect(second.first?["outcome"] as? String == "refused", "\(second)")
            #expect((second.first?["reason"] as? String)?.contains("\(eventId) is not posted yet") == true, "\(second)")

            try await system.startWorker(.inventory)
            try await system.waitUntil("the correction to be booked", timeout: .seconds(60)) { try await balance(system) == "10" }
            let none = try await whsync(system, ["reconcile", snapshot])
            #expect(none.status == 0, "\(none.stdout)\(none.stderr)")
            #expect(none.stderr.contains("the ERP agrees with the WMS"), "\(none.stderr)")
            let third = try report(try await whsync(system, ["reconcile", snapshot, "--correct", "--json"]), exit: 0)
            #expect((third["corrections"] as? [Any])?.isEmpty == true)

            // Booked once, under its own eventId, at the key's position (below the WMS's next), as an adjustment.
            let booked = try await system.erpDocuments().filter { ($0["eventId"] as? String)?.hasPrefix("reconcile-") == true }
            #expect(booked.count == 1)
            #expect(booked.first?["eventId"] as? String == eventId && booked.first?["sequence"] as? Int == 1, "\(booked)")
            #expect((booked.first?["body"] as? [String: Any])?["reason"] as? String == "adjustment")
            // The worker's key was not moved by it: the WMS's next event is in turn.
            try await system.publish([
                inventoryMessage(eventId: "in-3", warehouse: "WH1", sku: Self.sku.sku, uom: Self.sku.uom, sequence: 2, quantity: "1")
            ])
            try await system.waitUntil("the WMS's next event to be booked", timeout: .seconds(30)) { try await balance(system) == "11" }

            let store = try await system.openStore()
            let trail = try await store.auditTrail(deadLetterId: nil, limit: 100)
            await store.close()
            let audited = trail.filter { $0.entry.action == .reconcileCorrection }
            #expect(audited.count == 1 && audited.first?.entry.actor == "tester@\(ProcessInfo.processInfo.hostName)", "\(trail)")
            #expect(audited.first?.entry.detail.contains(eventId) == true)
        }
    }

    /// A run that stored its correction and stopped before the broker confirmed it: the next run
    /// publishes that same correction (resumed), never a second one.
    @Test func aCorrectionAStoppedRunStoredIsResumedNotRepeated() async throws {
        try await WorkerSystem.with(masterData: Self.catalogue) { system in
            try await system.startWorker(.inventory)
            try await system.startWorker(.shipment)
            let snapshot = try await postDay(system)
            try await injectDrift(system)
            // What the stopped run left: the letter of its correction, never published.
            let difference = BalanceReconciliation.Difference(
                key: .init(warehouse: "WH1", sku: Self.sku.sku, status: "available"), expected: 10, actual: 12)
            let eventId = BalanceCorrection.eventId(for: difference, position: 1, generation: 0)
            let event = try #require(BalanceCorrection.event(
                for: difference.key, quantity: -2, uom: Self.sku.uom, eventId: eventId, sequence: 1,
                occurredAt: Timestamp(Date()), correlationId: eventId))
            let store = try await system.openStore()
            let letter = try await store.recordDeadLetter(NewDeadLetter(
                stream: .inventory, reason: .reconciliation, error: "correction", eventId: eventId, key: "WH1/\(Self.sku.sku)",
                sequence: 1, originalExchange: "wms.events", originalRoutingKey: "inventory.WH1",
                body: event.jsonValue.serializedBytes(), failedAt: Date()))
            await store.close()

            let resumed = try report(try await whsync(system, ["reconcile", snapshot, "--correct", "--json"]), exit: 1)
            let corrections = try #require(resumed["corrections"] as? [[String: Any]])
            #expect(corrections.first?["outcome"] as? String == "resumed", "\(corrections)")
            #expect(corrections.first?["eventId"] as? String == eventId && corrections.first?["deadLetterId"] as? Int == Int(letter.id))
            try await system.waitUntil("the correction to be booked", timeout: .seconds(60)) { try await balance(system) == "10" }
            _ = try report(try await whsync(system, ["reconcile", snapshot, "--correct", "--json"]), exit: 0)
            let booked = try await system.erpDocuments().filter { ($0["eventId"] as? String)?.hasPrefix("reconcile-") == true }
            #expect(booked.count == 1)
        }
    }

    /// `RECONCILE_INTERVAL` on the replay worker, the snapshot served over HTTP: each run exports
    /// the differences per warehouse and kind; with `RECONCILE_CORRECT=true` the balance is
    /// repaired and its gauge goes back to 0, while a receipt the ERP never booked stays reported.
    @Test func theScheduleExportsTheDifferencesAndCorrectsWhenAskedTo() async throws {
        try await WorkerSystem.with(masterData: Self.catalogue) { system in
            try await system.startWorker(.inventory)
            try await system.startWorker(.shipment)
            let snapshot = try await postDay(system)
            // The WMS knows a receipt the ERP never booked.
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: snapshot))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data("\n{\"kind\":\"receipt\",\"warehouse\":\"WH1\",\"receiptId\":\"RCV-9\"}\n".utf8))
            try handle.close()
            try await injectDrift(system)
            // The WMS's export over HTTP: a plain file server on a free loopback port.
            let port = try freeLoopbackPort()
            let server = try ChildProcess(
                name: "snapshot server", executable: "/usr/bin/python3",
                arguments: ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", system.directory.path],
                environment: ["PATH": "/usr/bin:/bin"], logFile: system.directory.appendingPathComponent("snapshot-server.log"))
            // Stopped in every case (stop() falls back to SIGKILL: Python may inherit SIGTERM blocked).
            do {
                let url = "http://127.0.0.1:\(port)/" + URL(fileURLWithPath: snapshot).lastPathComponent
                try await system.waitUntil("the snapshot to be served", timeout: .seconds(20)) { (try? await WorkerSystem.get(url)) != nil }
                let environment = [
                    "RECONCILE_INTERVAL": "1s", "RECONCILE_SOURCE": url, "RECONCILE_CORRECT": "true", "AUTO_REPLAY_INTERVAL": "1s",
                ]
                try await system.withReplayWorker(environment: environment) { replay in
                    let ops = "http://" + (try await replay.awaitLog(#"ops\.address=([0-9.]+:[0-9]+)"#))
                    func metrics() async throws -> String { String(decoding: try await WorkerSystem.get(ops + "/metrics"), as: UTF8.self) }
                    func value(_ text: String, _ series: String) -> Double? {
                        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.dropFirst(series.count + 1)) }
                    }
                    try await system.waitUntil("the balance to be corrected and its gauge to go back to 0", timeout: .seconds(60)) {
                        let text = try await metrics()
                        return try await balance(system) == "10"
                            && value(text, #"whsync_reconcile_differences{warehouse="WH1",kind="balance"}"#) == 0
                    }
                    let text = try await metrics()
                    #expect(value(text, #"whsync_reconcile_differences{warehouse="WH1",kind="receipt"}"#) == 1, "\(text)")
                    #expect(value(text, #"whsync_reconcile_differences{warehouse="WH1",kind="shipment"}"#) == 0)
                    #expect(value(text, #"whsync_reconcile_corrections_total{outcome="published"}"#) == 1, "\(text)")
                    #expect((value(text, #"whsync_reconcile_runs_total{outcome="differ"}"#) ?? 0) >= 2)
                    #expect((value(text, "whsync_reconcile_last_success_timestamp_seconds") ?? 0) > Date().timeIntervalSince1970 - 30)
                    #expect(value(text, "whsync_reconcile_interval_seconds") == 1)
                    #expect(replay.log.contains("balance differs"))
                    #expect(replay.log.contains("correction published"))
                }
            } catch {
                await server.stop(grace: .seconds(1))
                throw error
            }
            await server.stop(grace: .seconds(1))
            let booked = try await system.erpDocuments().filter { ($0["eventId"] as? String)?.hasPrefix("reconcile-") == true }
            #expect(booked.count == 1)
        }
    }
}
