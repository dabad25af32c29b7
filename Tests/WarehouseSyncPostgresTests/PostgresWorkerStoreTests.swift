import Foundation
import PostgresNIO
import Testing
import WarehouseSyncCore
import WarehouseSyncPostgres
import WarehouseSyncStore
import WarehouseSyncStoreConformance

private let t0 = Date(timeIntervalSince1970: 1_800_000_000)

private func fingerprint(_ n: Int64) -> EventFingerprint {
    let digits = String(UInt64(bitPattern: n), radix: 16)
    return EventFingerprint(hex: String(repeating: "0", count: 64 - digits.count) + digits)!
}

/// Runs `body` with a fixture on a fresh database, dropped afterwards (also when `body` throws).
private func withFixture(_ body: (PostgresStoreFixture) async throws -> Void) async throws {
    let fixture = try await PostgresStoreFixture.make()
    do {
        try await body(fixture)
    } catch {
        await fixture.remove()
        throw error
    }
    await fixture.remove()
}

// Serialized: with these tests all in parallel (beside the others) the test process was seen to
// stall now and then (about 1 run in 5, every task suspended, no connection open; cause not found
// yet); one at a time it did not. The time limit turns a hang into a failure where it can.
@Suite("PostgresWorkerStore", .serialized, .timeLimit(.minutes(2)))
struct PostgresWorkerStoreTests {
    @Test("the test server is configured (WHSYNC_TEST_POSTGRES_URL)")
    func serverIsConfigured() async throws {
        let version = try await TestServer.withMaintenanceConnection { connection in
            try await connection.query("SHOW server_version_num", logger: TestServer.logger).collect().first?
                .decode(String.self)
        }
        #expect((Int(version ?? "") ?? 0) >= 130_000, "server_version_num \(version ?? "?"): DROP DATABASE … WITH (FORCE) needs 13+")
    }

    @Test("conformance", arguments: WorkerStoreConformance.Case.allCases)
    func conformance(_ check: WorkerStoreConformance.Case) async throws {
        try await withFixture { fixture in
            try await WorkerStoreConformance.run(check, fixture: fixture)
        }
    }

    @Test("two replicas racing read-decide-commit on one key lose no update")
    func twoReplicasLoseNoUpdate() async throws {
        try await withFixture { fixture in
            let replicas = [try await fixture.openPostgres(), try await fixture.openPostgres()]
            let tasksPerReplica = 4
            let incrementsPerTask = 10
            let key = "WH1/HOT"
            let conflicts = await withTaskGroup(of: Int.self) { group in
                for (r, store) in replicas.enumerated() {
                    for task in 0..<tasksPerReplica {
                        group.addTask {
                            var conflicts = 0
                            for increment in 0..<incrementsPerTask {
                                conflicts += await WorkerStoreConformance.incrementUntilCommitted(
                                    store, key: key, eventId: "r\(r)-t\(task)-\(increment)")
                            }
                            return conflicts
                        }
                    }
                }
                return await group.reduce(0, +)
            }
            let total = Int64(replicas.count * tasksPerReplica * incrementsPerTask)
            let final = try await replicas[1].snapshot(stream: .inventory, key: key, eventId: "r0-t0-0")
            #expect(final.state == KeyState(nextExpected: total), "after \(conflicts) conflicts")
            #expect(final.version == total)
            // Each commit saw a distinct value: the fingerprints are 1...total, each once.
            var seen = Set<EventFingerprint>()
            for r in replicas.indices {
                for task in 0..<tasksPerReplica {
                    for increment in 0..<incrementsPerTask {
                        let snapshot = try await replicas[0].snapshot(stream: .inventory, key: key, eventId: "r\(r)-t\(task)-\(increment)")
                        if case .posted(let fingerprint) = snapshot.record { seen.insert(fingerprint) }
                    }
                }
            }
            #expect(seen == Set((1...total).map(fingerprint)))
            for store in replicas { await store.close() }
        }
    }

    @Test("a held event is released by exactly one of two racing replicas")
    func heldEventReleasedOnce() async throws {
        try await withFixture { fixture in
            let replicas = [try await fixture.openPostgres(), try await fixture.openPostgres()]
            for round in 0..<10 {
                let key = "WH1/R\(round)"
                let held = HeldMessage(
                    sequence: 2, eventId: "\(key)-e2", heldAt: t0, routingKey: "inventory.WH1", headers: ["a": "b"], body: [1, 2, 3]
                )
                try await replicas[0].commit(KeyChange(
                    stream: .inventory, key: key, expectedVersion: 0,
                    newState: KeyState(nextExpected: 2, held: [2: held.heldEvent]),
                    records: [DedupWrite(eventId: held.eventId, record: .held(fingerprint(2)), sequence: 2)],
                    insertHeld: [held], now: t0
                ))
                let released = await withTaskGroup(of: Int.self) { group in
                    for store in replicas {
                        group.addTask {
                            do {
                                let snapshot = try await store.snapshot(stream: .inventory, key: key, eventId: held.eventId)
                                guard snapshot.state?.held[2] != nil else { return 0 }
                                try await store.commit(KeyChange(
                                    stream: .inventory, key: key, expectedVersion: snapshot.version,
                                    newState: KeyState(nextExpected: 3),
                                    records: [DedupWrite(eventId: held.eventId, record: .posted(fingerprint(2)), sequence: 2)],
                                    deleteHeldSequence: 2, now: t0
                                ))
                                return 1
                            } catch let error as StoreError where error.code == .versionConflict {
                                return 0
                            } catch {
                                Issue.record("unexpected error \(error)")
                                return 0
                            }
                        }
                    }
                    return await group.reduce(0, +)
                }
                #expect(released == 1, "round \(round)")
                let after = try await replicas[1].snapshot(stream: .inventory, key: key, eventId: held.eventId)
                #expect(after.state == KeyState(nextExpected: 3))
                #expect(after.version == 2)
                #expect(after.record == .posted(fingerprint(2)))
                #expect(try await replicas[0].heldMessage(stream: .inventory, key: key, sequence: 2) == nil)
            }
            for store in replicas { await store.close() }
        }
    }

    @Test("replicas starting together on a fresh database all open and apply each migration once")
    func concurrentMigrations() async throws {
        try await withFixture { fixture in
            let replicas = 6
            let opened = try await withThrowingTaskGroup(of: PostgresWorkerStore.self) { group in
                for _ in 0..<replicas {
                    group.addTask { try await fixture.openPostgres() }
                }
                return try await group.reduce(into: [PostgresWorkerStore]()) { $0.append($1) }
            }
            #expect(opened.count == replicas)
            let applied = opened.flatMap(\.appliedMigrations)
            #expect(applied.sorted() == PostgresWorkerStore.migrationIds.sorted(), "applied by the replicas: \(applied)")
            // Every replica works on the migrated schema.
            for (index, store) in opened.enumerated() {
                try await store.commit(KeyChange(
                    stream: .shipment, key: "WH1/M\(index)", expectedVersion: 0, newState: KeyState(nextExpected: 1), now: t0
                ))
            }
            for store in opened { await store.close() }
            // Reopening applies nothing.
            let again = try await fixture.openPostgres()
            #expect(again.appliedMigrations.isEmpty)
            await again.close()
            let recorded = try await recordedMigrations(fixture.configuration)
            #expect(recorded.map(\.id) == PostgresWorkerStore.migrationIds)
            #expect(recorded.map(\.position) == Array(1...PostgresWorkerStore.migrationIds.count))
        }
    }

    @Test("an operation whose connection was lost is retried on a new one")
    func connectionLossIsRetried() async throws {
        try await withFixture { fixture in
            let store = try await fixture.openPostgres()
            try await store.commit(KeyChange(stream: .inventory, key: "K", expectedVersion: 0, newState: KeyState(nextExpected: 1), now: t0))
            // The pool holds an idle connection, which the server now ends.
            let terminated = try await TestServer.terminateStoreConnections(database: fixture.configuration.database)
            #expect(terminated >= 1)
            let snapshot = try await store.snapshot(stream: .inventory, key: "K", eventId: "e")
            #expect(snapshot.version == 1)
            try await TestServer.terminateStoreConnections(database: fixture.configuration.database)
            try await store.commit(KeyChange(stream: .inventory, key: "K", expectedVersion: 1, newState: KeyState(nextExpected: 2), now: t0))
            try await TestServer.terminateStoreConnections(database: fixture.configuration.database)
            let letter = try await store.recordDeadLetter(NewDeadLetter(
                stream: .inventory, reason: .invalid, error: "bad", originalExchange: "wms.events",
                originalRoutingKey: "inventory.WH1", body: [1], failedAt: t0
            ))
            #expect(letter.failureCount == 1)
            #expect(try await store.snapshot(stream: .inventory, key: "K", eventId: "e").state == KeyState(nextExpected: 2))
            await store.close()
        }
    }

    @Test("a server that does not answer makes open fail as unavailable, in bounded time")
    func unreachableServer() async throws {
        var configuration = try TestServer.configuration()
        configuration.port = 1 // nothing listens there: connection refused
        configuration.openTimeout = .seconds(1)
        configuration.retryDelay = .milliseconds(50)
        let started = ContinuousClock.now
        do {
            let store = try await PostgresWorkerStore(configuration: configuration, logger: TestServer.logger)
            await store.close()
            Issue.record("opened a store on port 1")
        } catch {
            #expect(error.code == .unavailable, "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test("a wrong password fails at once as unavailable, and the error does not show it")
    func wrongPassword() async throws {
        var configuration = try TestServer.configuration()
        configuration.password = "not-the-password-Zq8"
        let started = ContinuousClock.now
        do {
            let store = try await PostgresWorkerStore(configuration: configuration, logger: TestServer.logger)
            await store.close()
            Issue.record("opened a store with a wrong password")
        } catch {
            #expect(error.code == .unavailable, "\(error)")
            #expect(error.message.contains("28P01"), "\(error)")
            #expect(!error.description.contains("not-the-password-Zq8"))
        }
        #expect(ContinuousClock.now - started < .seconds(5), "not retried")
    }

    @Test("a pool that cannot reconnect fails operations as unavailable after the lease timeout")
    func leaseTimeout() async throws {
        try await withFixture { fixture in
            var configuration = fixture.configuration
            configuration.leaseTimeout = .milliseconds(500)
            let store = try await PostgresWorkerStore(configuration: configuration, logger: TestServer.logger)
            // Forbid new connections to this database, then end the open ones.
            let database = configuration.database
            try await TestServer.withMaintenanceConnection { connection in
                _ = try await connection.query(
                    PostgresQuery(unsafeSQL: "ALTER DATABASE \(database) ALLOW_CONNECTIONS false"),
                    logger: TestServer.logger
                ).collect()
            }
            try await TestServer.terminateStoreConnections(database: configuration.database)
            let started = ContinuousClock.now
            do {
                _ = try await store.snapshot(stream: .inventory, key: "K", eventId: "e")
                Issue.record("read from a database that takes no connections")
            } catch let error as StoreError {
                #expect(error.code == .unavailable, "\(error)")
            }
            #expect(ContinuousClock.now - started < .seconds(10))
            await store.close()
        }
    }

    @Test("errors name ids and SQLSTATEs, never payloads")
    func errorsHoldNoPayloads() async throws {
        try await withFixture { fixture in
            let store = try await fixture.openPostgres()
            let secret = "SECRET-PAYLOAD-4711"
            // An empty eventId breaks a CHECK constraint inside the transaction.
            do {
                try await store.commit(KeyChange(
                    stream: .inventory, key: "K", expectedVersion: 0, newState: KeyState(nextExpected: 1),
                    records: [DedupWrite(eventId: "", record: .posting(fingerprint(1)), sequence: 1, documentId: nil)],
                    now: t0
                ))
                Issue.record("stored a record without an eventId")
            } catch let error as StoreError {
                #expect(error.code == .invalidChange, "\(error)")
                #expect(error.message.contains("23514"), "\(error)")
            }
            // A NUL in a text column is refused by PostgreSQL (22021): the message does not quote it.
            do {
                _ = try await store.recordDeadLetter(NewDeadLetter(
                    stream: .inventory, reason: .invalid, error: "\(secret)\u{0}", originalExchange: "wms.events",
                    originalRoutingKey: "inventory.WH1", body: Array(secret.utf8), failedAt: t0
                ))
                Issue.record("stored an error text with a NUL")
            } catch let error as StoreError {
                #expect(error.code == .invalidChange, "\(error)")
                #expect(!error.description.contains(secret), "\(error)")
            }
            // Nothing of the failed commit was written.
            #expect(try await store.snapshot(stream: .inventory, key: "K", eventId: "").version == 0)
            await store.close()
        }
    }

    @Test("the schema's CHECK constraints refuse what the code would never write")
    func constraints() async throws {
        try await withFixture { fixture in
            let store = try await fixture.openPostgres()
            await store.close()
            let bad = [
                "INSERT INTO keys VALUES ('orders', 'K', 1, 1, NULL, NULL, 0)",
                "INSERT INTO keys VALUES ('inventory', '', 1, 1, NULL, NULL, 0)",
                "INSERT INTO keys VALUES ('inventory', 'K', 0, 1, NULL, NULL, 0)",
                "INSERT INTO keys VALUES ('inventory', 'K', 1, 1, 5, NULL, 0)",
                "INSERT INTO keys VALUES ('inventory', 'K', 1, 1, 5, 'other', 0)",
                "INSERT INTO dedup_records VALUES ('e', 'done', repeat('0', 64), NULL, 'inventory', 'K', 1, 0, 0)",
                "INSERT INTO dedup_records VALUES ('e', 'posting', 'abc', NULL, 'inventory', 'K', 1, 0, 0)",
                "INSERT INTO dedup_records VALUES ('e', 'posting', repeat('0', 64), 'D1', 'inventory', 'K', 1, 0, 0)",
                "INSERT INTO held_messages VALUES ('inventory', 'nokey', 1, 'e', 0, 'r', '{}', '\\x00')",
                "INSERT INTO dead_letters (identity, reason, error, original_exchange, original_routing_key, headers, body, "
                    + "first_failed_at_us, last_failed_at_us, failure_count, replay_count, status, status_changed_at_us) "
                    + "VALUES (repeat('a', 64), 'invalid', 'e', 'x', 'r', '[]', '\\x00', 0, 0, 1, 0, 'pending', 0)",
                "INSERT INTO dead_letters (identity, reason, error, original_exchange, original_routing_key, headers, body, "
                    + "first_failed_at_us, last_failed_at_us, failure_count, replay_count, status, status_changed_at_us) "
                    + "VALUES (repeat('a', 64), 'invalid', 'e', 'x', 'r', '{}', '\\x00', 0, 0, 1, 0, 'replayed', 0)",
            ]
            let database = fixture.configuration
            let connection = try await PostgresConnection.connect(
                configuration: PostgresConnection.Configuration(
                    host: database.host, port: database.port, username: database.username, password: database.password,
                    database: database.database, tls: .disable
                ),
                id: 9, logger: TestServer.logger
            )
            for sql in bad {
                await #expect(throws: PSQLError.self, "\(sql)") {
                    _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: TestServer.logger).collect()
                }
            }
            try? await connection.close()
        }
    }

    private func recordedMigrations(_ configuration: PostgresStoreConfiguration) async throws -> [(id: String, position: Int)] {
        let connection = try await PostgresConnection.connect(
            configuration: PostgresConnection.Configuration(
                host: configuration.host, port: configuration.port, username: configuration.username,
                password: configuration.password, database: configuration.database, tls: .disable
            ),
            id: 8, logger: TestServer.logger
        )
        defer { Task { try? await connection.close() } }
        return try await connection.query("SELECT id, position FROM schema_migrations ORDER BY position", logger: TestServer.logger)
            .collect()
            .map { row in
                let (id, position) = try row.decode((String, Int32).self)
                return (id, Int(position))
            }
    }
}
