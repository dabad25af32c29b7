import Dispatch
import Foundation
import Synchronization
import Testing
import WarehouseSyncTesting
@testable import WarehouseSyncSQLite

/// Group commit (docs/store.md): writes queued together share one transaction, each in its own
/// savepoint, and every caller is resumed only after the shared COMMIT.
@Suite("SQLiteDatabase group commit")
struct GroupCommitTests {
    @Test("many concurrent writes, some throwing: exactly the others are applied")
    func concurrentSomeThrow() async throws {
        try await withDatabase { database, _ in
            try await database.write { db in try db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)") }
            let count = 600
            // Every 5th throws after its insert; every 7th breaks the UNIQUE constraint halfway.
            @Sendable func throwsAfterInsert(_ i: Int) -> Bool { i % 5 == 2 }
            @Sendable func violatesUnique(_ i: Int) -> Bool { i % 7 == 3 && !throwsAfterInsert(i) }
            let outcomes = await withTaskGroup(of: (Int, Result<Int, any Error>).self) { group in
                for i in 0..<count {
                    group.addTask {
                        let result = await outcome { () async throws -> Int in
                            try await database.write { db -> Int in
                                try db.execute("INSERT INTO t (k, v) VALUES (?, ?)", [.integer(Int64(i)), .text("v\(i)")])
                                if throwsAfterInsert(i) { throw TestFailure() }
                                if violatesUnique(i) {
                                    try db.execute("INSERT INTO t (k, v) VALUES (?, ?)", [.integer(Int64(i + 100_000)), .text("v\(i)")])
                                }
                                return i
                            }
                        }
                        return (i, result)
                    }
                }
                return await group.reduce(into: [Int: Result<Int, any Error>]()) { $0[$1.0] = $1.1 }
            }
            var expected = Set<Int64>()
            for i in 0..<count {
                switch outcomes[i] {
                case .success(let value)?:
                    #expect(value == i)
                    #expect(!throwsAfterInsert(i) && !violatesUnique(i), "write \(i) succeeded")
                    expected.insert(Int64(i))
                case .failure(let error)?:
                    if throwsAfterInsert(i) {
                        #expect(error is TestFailure, "write \(i): \(error)")
                    } else {
                        #expect((error as? SQLiteError)?.isConstraintViolation == true, "write \(i): \(error)")
                        #expect(violatesUnique(i), "write \(i) failed: \(error)")
                    }
                case nil:
                    Issue.record("write \(i) has no outcome")
                }
            }
            let stored = try await database.read { db in try db.query("SELECT k FROM t").map { try $0.int64("k") } }
            #expect(Set(stored) == expected)
            #expect(stored.count == expected.count)
        }
    }

    @Test("a failing write in the middle of a group rolls back only itself, in one COMMIT")
    func failingWriteMidGroup() async throws {
        try await withDatabase { database, _ in
            try await database.write { db in try db.execute("CREATE TABLE t (v TEXT NOT NULL UNIQUE)") }
            try await database.write { db in try db.execute("INSERT INTO t (v) VALUES ('taken')") }
            let gate = try await ThreadGate(database, beforeBlocking: { db in
                _ = try db.query("PRAGMA wal_checkpoint(TRUNCATE)")
            })
            let bodies: [@Sendable (SQLiteConnection) throws -> Void] = [
                { db in try db.execute("INSERT INTO t (v) VALUES ('a')") },
                { db in
                    try db.execute("INSERT INTO t (v) VALUES ('b')")
                    throw TestFailure()
                },
                { db in try db.execute("INSERT INTO t (v) VALUES ('c')") },
                { db in
                    try db.execute("INSERT INTO t (v) VALUES ('d')")
                    try db.execute("INSERT INTO t (v) VALUES ('taken')")
                },
                { db in try db.execute("INSERT INTO t (v) VALUES ('e')") },
            ]
            var tasks: [Task<Result<Void, any Error>, Never>] = []
            for (offset, body) in bodies.enumerated() {
                tasks.append(Task { await outcome { try await database.write(body) } })
                try await waitUntil { database.queuedJobCount == offset + 1 }
            }
            gate.open()
            var results: [Result<Void, any Error>] = []
            for task in tasks { results.append(await task.value) }
            try await gate.finished()

            #expect((try? results[0].get()) != nil)
            #expect(throws: TestFailure.self) { try results[1].get() }
            #expect((try? results[2].get()) != nil)
            let unique = #expect(throws: SQLiteError.self) { try results[3].get() }
            #expect(unique?.isConstraintViolation == true)
            #expect((try? results[4].get()) != nil)
            let stored = try await database.read { db in try db.query("SELECT v FROM t ORDER BY v").map { try $0.string("v") } }
            #expect(stored == ["a", "c", "e", "taken"])

            // One COMMIT: the table's and the index's page each went to the WAL once (separate
            // commits would have appended them three times).
            let walFrames = try await database.withConnection { db in
                try db.queryFirst("PRAGMA wal_checkpoint(PASSIVE)")?[1].int64Value
            }
            #expect(walFrames == 2)
        }
    }

    @Test("a write leaving a deferred foreign key open fails alone, not the group's COMMIT")
    func deferredForeignKey() async throws {
        try await withDatabase { database, _ in
            try await database.write { db in
                try db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
                try db.execute(
                    "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
                )
            }
            let gate = try await ThreadGate(database)
            let bodies: [@Sendable (SQLiteConnection) throws -> Void] = [
                { db in try db.execute("INSERT INTO parent (id) VALUES (1)") },
                { db in try db.execute("INSERT INTO child (id, parent) VALUES (10, 99)") },
                { db in try db.execute("INSERT INTO child (id, parent) VALUES (11, 1)") },
            ]
            var tasks: [Task<Result<Void, any Error>, Never>] = []
            for (offset, body) in bodies.enumerated() {
                tasks.append(Task { await outcome { try await database.write(body) } })
                try await waitUntil { database.queuedJobCount == offset + 1 }
            }
            gate.open()
            var results: [Result<Void, any Error>] = []
            for task in tasks { results.append(await task.value) }
            try await gate.finished()

            #expect((try? results[0].get()) != nil)
            let foreignKey = #expect(throws: SQLiteError.self) { try results[1].get() }
            #expect(foreignKey?.isConstraintViolation == true)
            #expect((try? results[2].get()) != nil)
            let children = try await database.read { db in try db.query("SELECT id FROM child").map { try $0.int64("id") } }
            #expect(children == [11])
        }
    }

    @Test("a read between writes ends the group: it sees the writes before it, committed")
    func readBreaksGroup() async throws {
        try await withDatabase { database, _ in
            try await database.write { db in try db.execute("CREATE TABLE t (v TEXT NOT NULL)") }
            let gate = try await ThreadGate(database)
            let first = Task { try await database.write { db in try db.execute("INSERT INTO t (v) VALUES ('first')") } }
            try await waitUntil { database.queuedJobCount == 1 }
            let read = Task { try await database.read { db in try db.query("SELECT v FROM t").map { try $0.string("v") } } }
            try await waitUntil { database.queuedJobCount == 2 }
            let second = Task { try await database.write { db in try db.execute("INSERT INTO t (v) VALUES ('second')") } }
            try await waitUntil { database.queuedJobCount == 3 }
            gate.open()
            _ = try await first.value
            let seen = try await read.value
            _ = try await second.value
            try await gate.finished()
            #expect(seen == ["first"])
        }
    }

    @Test("a write is durable when it returns: another connection sees it at once, and after reopening")
    func durableOnReturn() async throws {
        try await withDatabase { database, path in
            try await database.write { db in try db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)") }
            let reader = try await SQLiteDatabase(path: path)
            let count = 300
            let invisible = try await withThrowingTaskGroup(of: Int?.self) { group in
                for i in 0..<count {
                    group.addTask {
                        try await database.write { db in try db.execute("INSERT INTO t (k) VALUES (?)", [.integer(Int64(i))]) }
                        // Another connection sees only committed rows.
                        let seen = try await reader.read { db in
                            try db.queryFirst("SELECT k FROM t WHERE k = ?", [.integer(Int64(i))]) != nil
                        }
                        return seen ? nil : i
                    }
                }
                return try await group.reduce(into: [Int]()) { if let i = $1 { $0.append(i) } }
            }
            #expect(invisible == [], "rows not committed when their write returned")
            await reader.close()
            await database.close()

            let reopened = try await SQLiteDatabase(path: path)
            let stored = try await reopened.read { db in try db.queryFirst("SELECT count(*) AS n FROM t")?.int64("n") }
            await reopened.close()
            #expect(stored == Int64(count))
        }
    }

    @Test("writes queued before close run; the group is not cut by it")
    func closeAfterWrites() async throws {
        try await withTemporaryDirectory { directory in
            let path = (directory as NSString).appendingPathComponent("close.db")
            let database = try await SQLiteDatabase(path: path)
            try await database.write { db in try db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)") }
            let gate = try await ThreadGate(database)
            var tasks: [Task<Void, any Error>] = []
            for i in 0..<3 {
                tasks.append(Task {
                    try await database.write { db in _ = try db.execute("INSERT INTO t (k) VALUES (?)", [.integer(Int64(i))]) }
                })
                try await waitUntil { database.queuedJobCount == i + 1 }
            }
            let closing = Task { await database.close() }
            try await waitUntil { database.queuedJobCount == 4 }
            gate.open()
            for task in tasks { try await task.value }
            await closing.value
            try await gate.finished()
            let late = await #expect(throws: SQLiteError.self) {
                try await database.write { db in try db.execute("INSERT INTO t (k) VALUES (9)") }
            }
            #expect(late?.code == .closed)

            let reopened = try await SQLiteDatabase(path: path)
            let stored = try await reopened.read { db in try db.query("SELECT k FROM t ORDER BY k").map { try $0.int64("k") } }
            await reopened.close()
            #expect(stored == [0, 1, 2])
        }
    }
}

/// Holds the database's thread in a `withConnection` job until ``open()``, so that the jobs
/// queued meanwhile are taken as one batch.
private final class ThreadGate: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let job: Task<Void, any Error>

    init(
        _ database: SQLiteDatabase,
        beforeBlocking: @escaping @Sendable (SQLiteConnection) throws -> Void = { _ in }
    ) async throws {
        let semaphore = semaphore
        let running = Flag()
        job = Task {
            try await database.withConnection { db in
                try beforeBlocking(db)
                running.set()
                // Blocks the database's own thread, never the cooperative pool.
                semaphore.wait()
            }
        }
        // The thread runs it: jobs queued from now on wait behind it, in the next batch.
        try await waitUntil { running.isSet }
    }

    func open() { semaphore.signal() }

    func finished() async throws { try await job.value }
}

private final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}


/// `body`'s value or error.
private func outcome<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do {
        return .success(try await body())
    } catch {
        return .failure(error)
    }
}
