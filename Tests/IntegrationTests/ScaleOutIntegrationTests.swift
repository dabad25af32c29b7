import AMQPClient
import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSimulation

/// Three `inventory-worker` processes on one PostgreSQL store, competing on one queue or sharing
/// partitions with single active consumers: the store serialises each key, so the ledger is exact
/// and ordered either way, also when one replica is killed mid-run.
@Suite(.serialized) struct ScaleOutIntegrationTests {
    @Test(arguments: [0, 3])
    func threeReplicasOnPostgresGiveAnExactOrderedLedger(partitions: Int) async throws {
        let day = try SimulatedDay(options: SimulationOptions(
            seed: 21, warehouses: 4, skus: 60, events: 3000, outOfOrder: 0.08, duplicates: 0.05))
        let inventory = day.messages.filter { $0.routingKey.hasPrefix("inventory.") }
        let expected = try #require(day.manifest.counts.byStream["inventory"]).posted
        let storeURL = try await WorkerSystem.makePostgresDatabase()
        try await WorkerSystem.with(masterData: day.catalogue, inventoryPartitions: partitions, storeURL: storeURL) { system in
            let replicas = [
                try await system.startReplica(.inventory), try await system.startReplica(.inventory),
                try await system.startReplica(.inventory),
            ]
            try await system.publish(inventory)
            try await system.waitUntil("the replicas to get going", timeout: .seconds(120)) {
                try await system.erpDocumentCount() >= expected / 3
            }
            replicas[0].signal(SIGKILL)
            #expect(await replicas[0].waitForExit(timeout: .seconds(30)) != nil, "a SIGKILLed replica was not seen exiting")

            try await system.waitUntil("every inventory movement to be booked", timeout: .seconds(300)) {
                try await system.erpDocumentCount() >= expected
            }
            let queues = partitions == 0 ? ["erp.inventory"] : (0..<partitions).map { "erp.inventory.p\($0)" }
            try await system.waitUntil("the work queues to drain", timeout: .seconds(60)) {
                var total: UInt32 = 0
                for queue in queues { total += try await system.queueDepth(queue) }
                return total == 0
            }
            #expect(try await system.erpDocumentCount() == expected)

            var expectedBalances: [String: String] = [:]
            for balance in day.manifest.expected.ledger.inventoryMovements {
                expectedBalances["\(balance.warehouse)/\(balance.sku)/\(balance.status)"] = balance.quantity
            }
            #expect(try await system.erpBalances() == expectedBalances)

            var eventIds: [String] = []
            var lastSequence: [String: Int] = [:]
            var outOfOrder: [String] = []
            for row in try await system.erpDocuments() {
                eventIds.append(row["eventId"] as? String ?? "")
                let key = "\(row["key"]!)"
                let sequence = row["sequence"] as? Int ?? 0
                if let last = lastSequence[key], sequence <= last { outOfOrder.append("\(key)#\(sequence) after #\(last)") }
                lastSequence[key] = sequence
            }
            #expect(eventIds.count == Set(eventIds).count, "an eventId was booked twice")
            #expect(lastSequence.count >= 200, "hundreds of keys")
            #expect(outOfOrder.isEmpty, "postings out of sequence order: \(outOfOrder.prefix(5))")
            #expect(try await system.queueDepth("whsync.dead-letters") == 0)
        }
    }

    /// A worker on PostgreSQL stops cleanly on SIGTERM: the store's connection pool runs as a
    /// service in the worker's ServiceGroup and stops after the worker, so nothing is left to a
    /// timeout (no pool shutdown race, no connection close given up) and nothing leases a
    /// connection from a pool nobody runs yet.
    @Test func aWorkerOnPostgresStopsCleanlyOnSIGTERM() async throws {
        let day = try SimulatedDay(options: SimulationOptions(seed: 7, warehouses: 2, skus: 10, events: 200))
        let inventory = day.messages.filter { $0.routingKey.hasPrefix("inventory.") }
        let expected = try #require(day.manifest.counts.byStream["inventory"]).posted
        let storeURL = try await WorkerSystem.makePostgresDatabase()
        try await WorkerSystem.with(masterData: day.catalogue, storeURL: storeURL) { system in
            let worker = try await system.startWorker(.inventory)
            try await system.publish(inventory)
            try await system.waitUntil("every inventory movement to be booked", timeout: .seconds(120)) {
                try await system.erpDocumentCount() >= expected
            }
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: .seconds(30)) == 0, "did not exit 0 on SIGTERM:\n\(worker.log.suffix(2000))")
            let log = worker.log
            #expect(log.contains("worker stopped"))
            for warning in [
                "did not stop within",  // the pool's old 5 s close race
                "did not close within",  // an AMQP connection's close given up
                "hasn't been called yet",  // postgres-nio: a lease before the client runs
                "the store is closed",  // the store closed while the worker still used it
            ] {
                #expect(!log.contains(warning), "the log says '\(warning)':\n\(log.suffix(2000))")
            }
            #expect(try await system.erpDocumentCount() == expected)
        }
    }
}
