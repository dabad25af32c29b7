import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSQLite
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
struct VersionIgnoringStore: WorkerStore {
    let base: any WorkerStore

    func snapshot(stream: EventStream, key: String, eventId: String) async throws -> KeySnapshot {
        try await base.snapshot(stream: stream, key: key, eventId: eventId)
    }

    func commit(_ change: KeyChange) async throws {
        var change = change
        change.expectedVersion = try await base.snapshot(stream: change.stream, key: change.key, eventId: "").version
        try await base.commit(change)
    }

    func heldMessage(stream: EventStream, key: String, sequence: Int64) async throws -> HeldMessage? {
        try await base.heldMessage(stream: stream, key: key, sequence: sequence)
    }

    func keysWithHeldEvents(stream: EventStream) async throws -> [String] { try await base.keysWithHeldEvents(stream: stream) }
    func parkedKeys(stream: EventStream) async throws -> [String] { try await base.parkedKeys(stream: stream) }
    func pruneProcessed(olderThan: Date) async throws -> Int { try await base.pruneProcessed(olderThan: olderThan) }
    func close() async { await base.close() }
}

struct VersionIgnoringFixture: WorkerStoreFixture {
    let base: SQLiteStoreFixture

    func open() async throws -> any WorkerStore {
        VersionIgnoringStore(base: try await base.open())
    }
}

@Suite("WorkerStoreConformance")
struct WorkerStoreConformanceSelfTests {
    @Test(
        "catches a store that ignores the expected version",
        arguments: [WorkerStoreConformance.Case.versionConflict, .concurrentReadDecideCommit]
    )
    func catchesLostUpdates(_ check: WorkerStoreConformance.Case) async throws {
        let base = try SQLiteStoreFixture()
        defer { base.remove() }
        // A lost update in the concurrent case depends on the interleaving: almost always, not surely.
        await withKnownIssue("the version is not checked", isIntermittent: check == .concurrentReadDecideCommit) {
            try await WorkerStoreConformance.run(check, fixture: VersionIgnoringFixture(base: base))
        }
    }
}
