import Foundation
import Synchronization
import Testing
import WarehouseSyncCore
import WarehouseSyncSQLite
@testable import WarehouseSyncSQLiteStore
import WarehouseSyncStore
import WarehouseSyncStoreConformance

/// A fresh SQLite file in its own temp directory.
struct SQLiteStoreFixture: WorkerStoreFixture {
    let directory: String
    var path: String { (directory as NSString).appendingPathComponent("store.db") }

    init() throws {
        directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("whsync-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func open() async throws -> any WorkerStore {
        try await SQLiteWorkerStore(path: path)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("SQLiteWorkerStore")
struct SQLiteWorkerStoreTests {
    @Test("a dead letter's identity covers reason, eventId, origin and body, not error, headers or time")
    func letterIdentity() {
        let letter = NewDeadLetter(
            stream: nil, reason: .invalid, error: "e", originalExchange: "x", originalRoutingKey: "r", body: [1],
            failedAt: Date(timeIntervalSince1970: 0)
        )
        var other = letter
        other.error = "another error"
        other.headers = ["x-death": "2"]
        other.failedAt = Date()
        #expect(letter.identity == other.identity, "error, headers and time are not part of it")
        // Length-prefixed: moving bytes between fields changes it.
        var shifted = letter
        shifted.originalExchange = "xr"
        shifted.originalRoutingKey = ""
        #expect(letter.identity != shifted.identity)
    }

    @Test("conformance", arguments: WorkerStoreConformance.Case.allCases)
    func conformance(_ check: WorkerStoreConformance.Case) async throws {
        let fixture = try SQLiteStoreFixture()
        defer { fixture.remove() }
        try await WorkerStoreConformance.run(check, fixture: fixture)
    }

    @Test("two stores on one file (two processes) serialise a key through the version")
    func twoConnections() async throws {
        let fixture = try SQLiteStoreFixture()
        defer { fixture.remove() }
        let first = try await SQLiteWorkerStore(path: fixture.path)
        let second = try await SQLiteWorkerStore(path: fixture.path)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        try await first.commit(KeyChange(stream: .inventory, key: "K", expectedVersion: 0, newState: KeyState(nextExpected: 1), now: now))
        let seen = try await second.snapshot(stream: .inventory, key: "K", eventId: "e")
        #expect(seen.version == 1)
        try await first.commit(KeyChange(stream: .inventory, key: "K", expectedVersion: 1, newState: KeyState(nextExpected: 2), now: now))
        await #expect(throws: StoreError.self) {
            try await second.commit(KeyChange(stream: .inventory, key: "K", expectedVersion: 1, newState: KeyState(nextExpected: 9), now: now))
        }
        #expect(try await second.snapshot(stream: .inventory, key: "K", eventId: "e").state == KeyState(nextExpected: 2))

        // Decisions racing from both: each decides on what the other committed.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, store) in [first, second].enumerated() {
                group.addTask {
                    for round in 0..<25 {
                        let eventId = "s\(index)-\(round)"
                        try await store.commitDecision(stream: .inventory, key: "K", eventId: eventId) { snapshot in
                            let next = (snapshot.state?.nextExpected ?? 0) + 1
                            return (KeyChange(
                                stream: .inventory, key: "K", expectedVersion: snapshot.version, newState: KeyState(nextExpected: next),
                                records: [DedupWrite(eventId: eventId, record: .posting(EventFingerprint(hex: String(repeating: "0", count: 64))!), sequence: next)],
                                now: now), ())
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let after = try await first.snapshot(stream: .inventory, key: "K", eventId: "s1-24")
        #expect(after.state == KeyState(nextExpected: 52))
        #expect(after.version == 52)
        await first.close()
        await second.close()
    }

    @Test("the schema's CHECK constraints refuse what the code would never write")
    func constraints() async throws {
        let fixture = try SQLiteStoreFixture()
        defer { fixture.remove() }
        let store = try await SQLiteWorkerStore(path: fixture.path)
        await store.close()
        let database = try await SQLiteDatabase(path: fixture.path)
        let bad = [
            "INSERT INTO keys VALUES ('orders', 'K', 1, 1, NULL, NULL, 0)",
            "INSERT INTO keys VALUES ('inventory', 'K', 1, 1, 5, NULL, 0)",
            "INSERT INTO dedup_records VALUES ('e', 'lost', '\(String(repeating: "a", count: 64))', NULL, 'inventory', 'K', 1, 0, 0)",
            "INSERT INTO dedup_records VALUES ('e', 'posting', 'abc', NULL, 'inventory', 'K', 1, 0, 0)",
            "INSERT INTO dedup_records VALUES ('e', 'held', '\(String(repeating: "a", count: 64))', 'DOC', 'inventory', 'K', 1, 0, 0)",
            "INSERT INTO held_messages VALUES ('inventory', 'nokey', 1, 'e', 0, 'inventory.WH1', '{}', x'00')",
        ]
        for sql in bad {
            await #expect(throws: SQLiteError.self, "\(sql)") {
                try await database.write { db in try db.execute(sql) }
            }
        }
        await database.close()
    }

    @Test("dead_letters' CHECK and UNIQUE constraints refuse what the code would never write")
    func deadLetterConstraints() async throws {
        let fixture = try SQLiteStoreFixture()
        defer { fixture.remove() }
        let store = try await SQLiteWorkerStore(path: fixture.path)
        await store.close()
        let database = try await SQLiteDatabase(path: fixture.path)
        let identity = String(repeating: "a", count: 64)
        func insert(
            identity: String = identity, stream: String = "'inventory'", eventId: String = "'e'", status: String = "'pending'",
            replayCount: Int = 0, replayedAt: String = "NULL", replayedBy: String = "NULL", headers: String = "'{}'",
            firstFailed: Int = 0, lastFailed: Int = 0
        ) -> String {
            """
            INSERT INTO dead_letters (identity, stream, reason, error, event_id, key, sequence, warehouse, original_exchange,
                original_routing_key, headers, body, first_failed_at_us, last_failed_at_us, failure_count, replay_count,
                last_replayed_at_us, last_replayed_by, status, status_changed_at_us)
            VALUES ('\(identity)', \(stream), 'invalid', 'x', \(eventId), NULL, NULL, NULL, 'wms.events', 'inventory.WH1',
                \(headers), x'00', \(firstFailed), \(lastFailed), 1, \(replayCount), \(replayedAt), \(replayedBy), \(status), 0)
            """
        }
        let valid = insert(stream: "NULL", eventId: "NULL")
        try await database.write { db in try db.execute(valid) }
        let bad = [
            insert(identity: String(repeating: "b", count: 64), stream: "'orders'"),
            insert(identity: "short"),
            insert(identity: identity),
            insert(identity: String(repeating: "c", count: 64), eventId: "''"),
            insert(identity: String(repeating: "d", count: 64), status: "'lost'"),
            insert(identity: String(repeating: "e", count: 64), status: "'replayed'"),
            insert(identity: String(repeating: "f", count: 64), replayCount: 1),
            insert(identity: String(repeating: "0", count: 64), replayCount: 1, replayedAt: "5"),
            insert(identity: String(repeating: "1", count: 64), headers: "'[]'"),
            insert(identity: String(repeating: "2", count: 64), firstFailed: 5, lastFailed: 4),
        ]
        for sql in bad {
            await #expect(throws: SQLiteError.self, "\(sql)") {
                try await database.write { db in try db.execute(sql) }
            }
        }
        await database.close()
    }

    @Test("a store made before the dead-letter table gets it on open, its data kept")
    func deadLetterMigration() async throws {
        let fixture = try SQLiteStoreFixture()
        defer { fixture.remove() }
        let old = try await SQLiteDatabase(path: fixture.path)
        try await old.migrate(Array(SQLiteWorkerStore.migrations.prefix(1)))
        try await old.write { db in try db.execute("INSERT INTO keys VALUES ('inventory', 'K', 1, 3, NULL, NULL, 0)") }
        await old.close()

        let store = try await SQLiteWorkerStore(path: fixture.path)
        let key = try await store.snapshot(stream: .inventory, key: "K", eventId: "e")
        #expect(key.version == 1)
        #expect(key.state == KeyState(nextExpected: 3), "a key from before store-4 has no skipped gaps")
        let letter = NewDeadLetter(
            stream: .inventory, reason: .deliveryLimit, error: "delivery limit", originalExchange: "wms.events",
            originalRoutingKey: "inventory.WH1", body: [1], failedAt: Date(timeIntervalSince1970: 1_800_000_000)
        )
        #expect(try await store.recordDeadLetter(letter).failureCount == 1)
        await store.close()
    }

    
    @Test("skipped gaps the code would never write read back as corrupt, naming the key")
    func corruptSkippedGaps() async throws {
        let fixture = try SQLiteStoreFixture()
        defer { fixture.remove() }
        let store = try await SQLiteWorkerStore(path: fixture.path)
        try await store.commit(KeyChange(stream: .receipt, key: "WH1/R-1", expectedVersion: 0, newState: KeyState(nextExpected: 4, skipped: [1...3]), now: Date()))
        #expect(try await store.snapshot(stream: .receipt, key: "WH1/R-1", eventId: "e").state?.skipped == [1...3])
        await store.close()
        for garbage in ["3:1", "1-3", "1:3,", "x:2", "1:2:3"] {
            let database = try await SQLiteDatabase(path: fixture.path)
            try await database.write { db in try db.execute("UPDATE keys SET skipped = ?", [.text(garbage)]) }
            await database.close()
            let reopened = try await SQLiteWorkerStore(path: fixture.path)
            let error = await #expect(throws: StoreError.self, "'\(garbage)'") {
                try await reopened.snapshot(stream: .receipt, key: "WH1/R-1", eventId: "e")
            }
            #expect(error?.code == .corrupt)
            #expect(error?.message.contains("WH1/R-1") == true, "\(error?.message ?? "")")
            await reopened.close()
        }
    }

    @Test("a locked, busy or full database is an outage to wait out; a read-only or refused one is not")
    func outages() {
        for (resultCode, isOutage) in [(5, true), (6, true), (13, true), (10 | (3 << 8), true), (8, false), (3, false), (1, false)] {
            let error = SQLiteWorkerStore.storeError(SQLiteError(code: .step, resultCode: Int32(resultCode), message: "result \(resultCode)"))
            #expect(error.code == .unavailable)
            #expect(error.isOutage == isOutage, "result code \(resultCode)")
        }
        #expect(!SQLiteWorkerStore.storeError(SQLiteError(code: .step, resultCode: 19, message: "constraint")).isOutage)
        #expect(!StoreError(code: .corrupt, message: "unreadable", isOutage: true).isOutage, "an outage is an unavailability")
    }

    @Test("a store that cannot be opened is unavailable")
    func unavailable() async throws {
        await #expect {
            _ = try await SQLiteWorkerStore(path: "/nonexistent-dir-\(UUID().uuidString)/store.db")
        } throws: { error in
            (error as? StoreError)?.code == .unavailable
        }
    }
}

/// A store that forgets optimistic concurrency: it commits against whatever version is current.
/// The suite must catch it, or its concurrency cases prove nothing.
func versionIgnoringStore(_ base: any WorkerStore) -> InterceptingStore {
    InterceptingStore(base: base, commit: { change in
        var change = change
        change.expectedVersion = try await base.snapshot(stream: change.stream, key: change.key, eventId: "").version
        try await base.commit(change)
    })
}

struct VersionIgnoringFixture: WorkerStoreFixture {
    let base: SQLiteStoreFixture

    func open() async throws -> any WorkerStore {
        versionIgnoringStore(try await base.open())
    }
}

@Suite("WorkerStoreConformance")
struct WorkerStoreConformanceSelfTests {
    @Test(
        "catches a store that ignores the expected version",
        arguments: [WorkerStoreConformance.Case.versionConflict, .concurrentReadDecideCommit, .commitDecision]
    )
    func catchesLostUpdates(_ check: WorkerStoreConformance.Case) async throws {
        // A lost update in the concurrent cases depends on the interleaving: almost always, not
        // surely. So a few tries, of which at least one must catch it.
        let caught = Mutex(0)
        for _ in 0..<(check == .versionConflict ? 1 : 5) where caught.withLock({ $0 }) == 0 {
            let base = try SQLiteStoreFixture()
            defer { base.remove() }
            try await withKnownIssue("the version is not checked", isIntermittent: true) {
                try await WorkerStoreConformance.run(check, fixture: VersionIgnoringFixture(base: base))
            } matching: { issue in
                // A failed expectation or a recorded issue is the suite catching the store; a
                // thrown error (a busy database, a fixture failing) is not.
                if case .errorCaught = issue.kind { return false }
                caught.withLock { $0 += 1 }
                return true
            }
        }
        #expect(caught.withLock { $0 } > 0, "the suite never caught the store that ignores the version")
    }
}
