import AMQPClient
import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSimulation
import WarehouseSyncSQLiteStore
import WarehouseSyncStore

#if canImport(FoundationNetworking)
import FoundationNetworking
import WarehouseSyncProcessKit
import WarehouseSyncWorker
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncSettings
import WarehouseSyncOps
#endif

/// The `replay-worker` executable (DESIGN §6, docs/replay.md) beside real stream workers, the
/// test broker and the `reference-erp` executable, all on one store file. Serialized: each test
/// starts several processes, and the machine has two cores.
@Suite(.serialized) struct ReplayWorkerIntegrationTests {
    /// Short policy times so that a test sees several passes in a few seconds.
    static let fastPolicy = ["AUTO_REPLAY_DELAY": "1s", "AUTO_REPLAY_INTERVAL": "1s"]

    /// Events that ran out of attempts while the ERP was down are stored, wait while it is down,
    /// and are replayed by themselves once it is back: booked exactly once, each letter `replayed`
    /// once. An `invalid` letter beside them is stored with its error and waits for a person.
    /// SIGTERM then stops the replay worker with exit 0.
    @Test func retriesExhaustedLettersAreReplayedOnceTheERPIsBackWhileAnInvalidOneWaits() async throws {
        let catalogue = Catalogue(warehouses: 1, skus: 5)
        try await WorkerSystem.with(masterData: catalogue) { system in
            // An outage, not only an error rate: the error rate leaves /health up, and the replay
            // worker would replay into the failures at once.
            try await postJSON(system.erpURL + "/admin/faults", #"{"outage": true}"#)
            try await system.startWorker(.inventory, environment: ["RETRY_MAX_ATTEMPTS": "1"])
            try await system.withReplayWorker(environment: Self.fastPolicy) { replay in
                let store = try await system.openStore()
                do {
                    // Three keys, one event each: fewer than the five failures in a row that open
                    // the worker's circuit (an open circuit holds events instead of dead-lettering).
                    let events = (0..<3).map { index in
                        inventoryMessage(
                            eventId: "rx-\(index)", warehouse: "WH1", sku: catalogue.skus[index].sku,
                            uom: catalogue.skus[index].uom, sequence: 1)
                    }
                    let invalid = inventoryMessage(
                        eventId: "rx-invalid", warehouse: "WH1", sku: catalogue.skus[3].sku, uom: catalogue.skus[3].uom,
                        sequence: 1, quantity: "0")
                    try await system.publish(events + [invalid])

                    try await system.waitForReplay(replay, "the four letters to be stored", timeout: .seconds(60)) {
                        try await store.deadLetters(matching: .all, limit: 100).count == 4
                    }
                    let exhausted = try await store.deadLetters(matching: .init(reason: .retriesExhausted), limit: 100)
                    #expect(Set(exhausted.compactMap(\.eventId)) == ["rx-0", "rx-1", "rx-2"])
                    for letter in exhausted {
                        #expect(letter.originalRoutingKey == "inventory.WH1")
                        #expect(letter.originalExchange == "wms.events")
                        #expect(letter.stream == .inventory)
                        #expect(!letter.error.isEmpty)
                    }

                    // Several passes while the ERP is down: nothing is replayed.
                    try await Task.sleep(for: .seconds(3))
                    for letter in try await store.deadLetters(matching: .all, limit: 100) {
                        #expect(letter.status == .pending && letter.replayCount == 0, "letter \(letter.id) replayed while the ERP was down")
                    }
                    _ = try await replay.awaitLog("ERP not healthy: automatic replays wait")

                    try await deleteRequest(system.erpURL + "/admin/faults")
                    try await system.waitForReplay(replay, "the ERP to book the replayed events", timeout: .seconds(60)) {
                        try await system.erpDocumentCount() >= 3
                    }
                    try await system.waitForReplay(replay, "the letters to be marked replayed", timeout: .seconds(30)) {
                        try await store.deadLetters(matching: .init(reason: .retriesExhausted, status: .replayed), limit: 100).count == 3
                    }
                    // A few more passes: nothing is replayed twice, nothing booked twice.
                    try await Task.sleep(for: .seconds(3))
                    #expect(try await system.erpDocumentCount() == 3)
                    let booked = try await system.erpJSON("/documents")["documents"] as? [[String: Any]] ?? []
                    #expect(booked.compactMap { $0["eventId"] as? String }.sorted() == ["rx-0", "rx-1", "rx-2"])
                    for letter in try await store.deadLetters(matching: .init(reason: .retriesExhausted), limit: 100) {
                        #expect(letter.status == .replayed)
                        #expect(letter.replayCount == 1)
                        #expect(letter.failureCount == 1)
                        #expect(letter.lastReplayedBy?.hasPrefix("replay-worker@") == true)
                    }

                    // The invalid letter: stored with its reason and error, never replayed.
                    let invalidLetters = try await store.deadLetters(matching: .init(reason: .invalid), limit: 100)
                    try #require(invalidLetters.count == 1)
                    #expect(invalidLetters[0].error.contains("quantity"), "error '\(invalidLetters[0].error)' does not name the field")
                    #expect(invalidLetters[0].originalRoutingKey == "inventory.WH1")
                    #expect(invalidLetters[0].status == .pending)
                    #expect(invalidLetters[0].replayCount == 0)

                    // Operations endpoint and metrics.
                    let ops = "http://" + (try await replay.awaitLog(#"ops\.address=([0-9.]+:[0-9]+)"#))
                    _ = try await WorkerSystem.get(ops + "/healthz")
                    _ = try await WorkerSystem.get(ops + "/readyz")
                    let metrics = String(decoding: try await WorkerSystem.get(ops + "/metrics"), as: UTF8.self)
                    #expect(sample(metrics, #"whsync_dead_letters_drained_total{reason="retries-exhausted"}"#) == 3)
                    #expect(sample(metrics, #"whsync_dead_letters_drained_total{reason="invalid"}"#) == 1)
                    #expect(sample(metrics, "whsync_dead_letters_auto_replayed_total") == 3)
                    // Letter logs name the letter, never its body.
                    #expect(replay.log.contains("dead letter stored"))
                    #expect(!replay.log.contains(#""sku""#))
                } catch {
                    await store.close()
                    throw error
                }
                await store.close()

                replay.signal(SIGTERM)
                #expect(await replay.waitForExit(timeout: .seconds(20)) == 0, "replay-worker did not exit 0:\n\(replay.log.suffix(2000))")
            }
        }
    }

    /// With no stream worker, a consumer that hands a message back again and again (as a worker
    /// that crashes on it would) makes the broker dead-letter it past the queue's delivery limit;
    /// the replay worker stores it as `delivery-limit` with its origin and eventId, and leaves it
    /// for a person.
    @Test func aMessageTheBrokerDeadLettersPastItsDeliveryLimitIsStoredAsDeliveryLimit() async throws {
        try await WorkerSystem.with { system in
            try await system.withReplayWorker(environment: Self.fastPolicy) { replay in
                let store = try await system.openStore()
                do {
                    try await system.publish([
                        inventoryMessage(eventId: "poison-1", warehouse: "WH1", sku: "SKU-1", uom: "EA", sequence: 1)
                    ])
                    let connection = try await TestBroker.connect(system.amqp)
                    let consumer = try await connection.consume(queue: "erp.inventory", prefetch: 1)
                    let handBacks = Task {
                        var count = 0
                        for await delivery in consumer.deliveries {
                            delivery.nack(requeue: true)
                            count += 1
                        }
                        return count
                    }
                    do {
                        try await system.waitForReplay(replay, "the broker's dead letter to be stored", timeout: .seconds(60)) {
                            try await store.deadLetters(matching: .all, limit: 10).count == 1
                        }
                    } catch {
                        await consumer.cancel()
                        await connection.close()
                        _ = await handBacks.value
                        throw error
                    }
                    await consumer.cancel()
                    await connection.close()
                    // The topology's x-delivery-limit is 20.
                    #expect(await handBacks.value >= 20)

                    let letters = try await store.deadLetters(matching: .all, limit: 10)
                    try #require(letters.count == 1)
                    let letter = letters[0]
                    #expect(letter.reason == .deliveryLimit)
                    #expect(letter.eventId == "poison-1")
                    #expect(letter.originalRoutingKey == "inventory.WH1")
                    #expect(letter.originalExchange == "wms.events")
                    #expect(letter.stream == .inventory)
                    #expect(letter.key == "WH1/SKU-1")
                    #expect(letter.error.contains("broker"))
                    #expect(try await system.queueDepth("erp.inventory") == 0)

                    // Not replayed by itself: a message that crashed workers waits for a person.
                    try await Task.sleep(for: .seconds(3))
                    let later = try #require(try await store.deadLetter(id: letter.id))
                    #expect(later.status == .pending && later.replayCount == 0)
                } catch {
                    await store.close()
                    throw error
                }
                await store.close()
            }
        }
    }

    /// Letters replayed or purged longer than `DEAD_LETTER_RETENTION` ago are deleted from the
    /// store; pending ones stay however old they are.
    @Test func lettersPastTheirRetentionAreDeletedWhilePendingOnesStay() async throws {
        try await WorkerSystem.with { system in
            let store = try await system.openStore()
            do {
                func letter(_ body: String) -> NewDeadLetter {
                    NewDeadLetter(
                        stream: .inventory, reason: .invalid, error: "eventId: is required", originalExchange: "wms.events",
                        originalRoutingKey: "inventory.WH1", body: Array(body.utf8), failedAt: Date(timeIntervalSinceNow: -3600))
                }
                let purged = try await store.recordDeadLetter(letter("purged"))
                let pending = try await store.recordDeadLetter(letter("pending"))
                // Purged two hours ago, past the shortest retention there is.
                #expect(try await store.purgeDeadLetters(ids: [purged.id], by: "test", at: Date(timeIntervalSinceNow: -7200)) == 1)
                let policy = Self.fastPolicy.merging(["DEAD_LETTER_RETENTION": "1h"]) { $1 }
                try await system.withReplayWorker(environment: policy) { replay in
                    try await system.waitForReplay(replay, "the purged letter to be deleted", timeout: .seconds(30)) {
                        try await store.deadLetter(id: purged.id) == nil
                    }
                    #expect(try await store.deadLetter(id: pending.id)?.status == .pending)
                    #expect(try await replay.awaitLog(#"deleted replayed and purged letters past DEAD_LETTER_RETENTION.*pruned=([0-9]+)"#) == "1")
                }
            } catch {
                await store.close()
                throw error
            }
            await store.close()
        }
    }

    /// A bad policy setting stops the start with one line naming it; a flag overrides its variable.
    @Test func aBadPolicySettingFailsTheStartWithOneLineNamingIt() async throws {
        let environment = [
            "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/", "STORE_URL": "sqlite:/tmp/replay-worker-unused.db",
            "ERP_BASE_URL": "http://127.0.0.1:1", "PATH": "/usr/bin:/bin",
        ]
        let executable = try TestBroker.executablePath("replay-worker")
        let badMax = try await TestBroker.run(executable, [], environment: environment.merging(["AUTO_REPLAY_MAX": "0"]) { $1 })
        #expect(badMax.status == 1)
        let lines = badMax.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.hasPrefix("replay-worker: AUTO_REPLAY_MAX: '0'") == true, "stderr: \(badMax.stderr)")

        let badRate = try await TestBroker.run(
            executable, ["--auto-replay-rate", "fast"], environment: environment.merging(["AUTO_REPLAY_RATE": "5"]) { $1 })
        #expect(badRate.status == 1)
        #expect(badRate.stderr.contains("AUTO_REPLAY_RATE: 'fast'"), "stderr: \(badRate.stderr)")

        let shortRetention = try await TestBroker.run(
            executable, [], environment: environment.merging(["DEAD_LETTER_RETENTION": "10m"]) { $1 })
        #expect(shortRetention.status == 1)
        #expect(shortRetention.stderr.contains("DEAD_LETTER_RETENTION: '10m' is not at least 1h"), "stderr: \(shortRetention.stderr)")
    }
}

extension WorkerSystem {
    /// The store every process shares, opened by the test (SQLite: several processes on one file).
    func openStore() async throws -> SQLiteWorkerStore {
        try await SQLiteWorkerStore(path: try storePath())
    }

    /// ``waitUntil`` with the replay worker's log in the failure.
    func waitForReplay(
        _ replay: ChildProcess, _ explanation: String, timeout: Duration, _ condition: () async throws -> Bool
    ) async throws {
        do {
            try await waitUntil(explanation, timeout: timeout, condition)
        } catch {
            throw TestBroker.ProcessFailure(description: "\(error)\n--- replay-worker:\n\(replay.log.suffix(4000))")
        }
    }
}

/// The value of the series `series` (name and labels as printed) in a Prometheus text page.
private func sample(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

func deleteRequest(_ url: String) async throws {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = "DELETE"
    let (_, response) = try await URLSession.shared.data(for: request)
    let status = (response as! HTTPURLResponse).statusCode
    guard (200..<300).contains(status) else {
        throw TestBroker.ProcessFailure(description: "DELETE \(url) answered HTTP \(status)")
    }
}
