import Foundation
import Testing
import WarehouseSyncSQLite

/// A fresh directory under the system's temp dir, removed after `body`.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("whsync-sqlite-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    return try await body(directory)
}

/// Opens a database file in a temp dir, runs `body`, closes it.
func withDatabase<T>(_ body: (SQLiteDatabase, String) async throws -> T) async throws -> T {
    try await withTemporaryDirectory { directory in
        let path = (directory as NSString).appendingPathComponent("test.db")
        let database = try await SQLiteDatabase(path: path)
        do {
            let value = try await body(database, path)
            await database.close()
            return value
        } catch {
            await database.close()
            throw error
        }
    }
}

struct TestFailure: Error, Equatable {}

@Suite("SQLiteDatabase")
struct SQLiteDatabaseTests {
    @Test("opens in WAL mode with foreign keys on")
    func setUp() async throws {
        try await withDatabase { database, _ in
            let (mode, foreignKeys) = try await database.read { db in
                (
                    try db.queryFirst("PRAGMA journal_mode")?[0].stringValue,
                    try db.queryFirst("PRAGMA foreign_keys")?[0].int64Value
                )
            }
            #expect(mode == "wal")
            #expect(foreignKeys == 1)
        }
    }

    @Test("runs the closures on its own thread, not on the cooperative pool")
    func ownThread() async throws {
        try await withDatabase { database, _ in
            // The OS thread's own name, as the kernel has it (Foundation's `Thread.current.name`
            // proved unreliable under load on Linux).
            let name = try await database.read { _ in
                (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
            }
            #expect(name.hasPrefix("sqlite"), "ran on thread '\(name)'")
        }
    }

    @Test("binds and reads back integers, text, blobs, reals and null")
    func roundTrip() async throws {
        try await withDatabase { database, _ in
            let values: [SQLiteValue] = [
                .integer(.max), .integer(.min), .integer(0), .text(""), .text("Grüße, 倉庫 🚚\u{0}end"),
                .blob([]), .blob([0, 1, 0, 255]), .real(0.5), .null,
            ]
            let rows = try await database.write { db in
                try db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v ANY) STRICT")
                for value in values {
                    try db.execute("INSERT INTO t (v) VALUES (?)", [value])
                }
                return try db.query("SELECT v FROM t ORDER BY id")
            }
            #expect(rows.map { $0[0] } == values)
        }
    }

    @Test("typed accessors name the column at fault")
    func accessors() async throws {
        try await withDatabase { database, _ in
            let row = try #require(try await database.read { db in
                try db.queryFirst("SELECT 42 AS n, 'x' AS s, NULL AS z, x'00ff' AS b")
            })
            #expect(try row.int64("n") == 42)
            #expect(try row.string("s") == "x")
            #expect(try row.optionalString("z") == nil)
            #expect(try row.optionalInt64("z") == nil)
            #expect(try row.blob("b") == [0, 255])
            let wrongType = #expect(throws: SQLiteError.self) { try row.int64("s") }
            #expect(wrongType?.code == .decoding)
            #expect(wrongType?.description.contains("'s'") == true)
            let missing = #expect(throws: SQLiteError.self) { try row.string("nope") }
            #expect(missing?.description.contains("no column 'nope'") == true)
        }
    }

    @Test("a write that throws is rolled back and its error rethrown")
    func rollback() async throws {
        try await withDatabase { database, _ in
            try await database.write { db in try db.execute("CREATE TABLE t (v TEXT)") }
            await #expect(throws: TestFailure.self) {
                try await database.write { db in
                    try db.execute("INSERT INTO t (v) VALUES ('lost')")
                    throw TestFailure()
                }
            }
            // A constraint violation halfway through also undoes the statements before it.
            try await database.write { db in try db.execute("CREATE UNIQUE INDEX t_v ON t (v)") }
            let error = await #expect(throws: SQLiteError.self) {
                try await database.write { db in
                    try db.execute("INSERT INTO t (v) VALUES ('a')")
                    try db.execute("INSERT INTO t (v) VALUES ('a')")
                }
            }
            #expect(error?.isConstraintViolation == true)
            #expect(error?.description.contains("UNIQUE constraint failed: t.v") == true)
            #expect(error?.description.contains("INSERT INTO t (v) VALUES ('a')") == true)
            let count = try await database.read { db in try db.queryFirst("SELECT count(*) AS n FROM t")?.int64("n") }
            #expect(count == 0)
            // The connection is usable afterwards: no transaction was left open.
            try await database.write { db in try db.execute("INSERT INTO t (v) VALUES ('kept')") }
            let kept = try await database.read { db in try db.query("SELECT v FROM t").map { try $0.string("v") } }
            #expect(kept == ["kept"])
        }
    }

    @Test("errors name the SQL and SQLite's message")
    func errorMessages() async throws {
        try await withDatabase { database, _ in
            let prepare = await #expect(throws: SQLiteError.self) {
                try await database.read { db in try db.query("SELECT * FROM missing_table") }
            }
            #expect(prepare?.code == .prepare)
            #expect(prepare?.message.contains("no such table: missing_table") == true)
            #expect(prepare?.sql == "SELECT * FROM missing_table")

            let bind = await #expect(throws: SQLiteError.self) {
                try await database.read { db in try db.query("SELECT ?", []) }
            }
            #expect(bind?.code == .bind)

            let misuse = await #expect(throws: SQLiteError.self) {
                try await database.write { db in try db.execute("CREATE TABLE a (x); CREATE TABLE b (y)") }
            }
            #expect(misuse?.code == .misuse)
        }
    }

    @Test("concurrent writers in one process serialise: no lost update")
    func concurrentWriters() async throws {
        try await withDatabase { database, _ in
            try await database.write { db in
                try db.execute("CREATE TABLE counter (n INTEGER NOT NULL)")
                try db.execute("INSERT INTO counter VALUES (0)")
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<200 {
                    group.addTask {
                        try await database.write { db in
                            let n = try db.queryFirst("SELECT n FROM counter")?.int64("n") ?? -1
                            try db.execute("UPDATE counter SET n = ?", [.integer(n + 1)])
                        }
                    }
                }
                try await group.waitForAll()
            }
            let n = try await database.read { db in try db.queryFirst("SELECT n FROM counter")?.int64("n") }
            #expect(n == 200)
        }
    }

    @Test("two connections on one file serialise through BEGIN IMMEDIATE and the busy timeout")
    func concurrentConnections() async throws {
        try await withDatabase { first, path in
            let second = try await SQLiteDatabase(path: path)
            try await first.write { db in
                try db.execute("CREATE TABLE counter (n INTEGER NOT NULL)")
                try db.execute("INSERT INTO counter VALUES (0)")
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<100 {
                    let database = index.isMultiple(of: 2) ? first : second
                    group.addTask {
                        try await database.write { db in
                            let n = try db.queryFirst("SELECT n FROM counter")?.int64("n") ?? -1
                            try db.execute("UPDATE counter SET n = ?", [.integer(n + 1)])
                        }
                    }
                }
                try await group.waitForAll()
            }
            let n = try await second.read { db in try db.queryFirst("SELECT n FROM counter")?.int64("n") }
            #expect(n == 100)
            await second.close()
        }
    }

    @Test("after close, work fails with .closed; closing twice is fine")
    func close() async throws {
        try await withTemporaryDirectory { directory in
            let database = try await SQLiteDatabase(path: (directory as NSString).appendingPathComponent("c.db"))
            await database.close()
            await database.close()
            let error = await #expect(throws: SQLiteError.self) {
                try await database.read { db in try db.query("SELECT 1") }
            }
            #expect(error?.code == .closed)
        }
    }

    @Test("a file that cannot be opened fails with .open naming the path")
    func openFailure() async throws {
        let error = await #expect(throws: SQLiteError.self) {
            _ = try await SQLiteDatabase(path: "/nonexistent-directory/x.db")
        }
        #expect(error?.code == .open)
        #expect(error?.description.contains("/nonexistent-directory/x.db") == true)
    }
}

@Suite("SQLite migrations")
struct SQLiteMigrationTests {
    static let first = SQLiteMigration(id: "1-items", sql: "CREATE TABLE items (name TEXT NOT NULL UNIQUE);")
    static let second = SQLiteMigration(id: "2-items-count", sql: """
        ALTER TABLE items ADD COLUMN count INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX items_count ON items (count);
        """)

    @Test("run once, in order, recorded in schema_migrations")
    func runOnce() async throws {
        try await withDatabase { database, path in
            #expect(try await database.migrate([Self.first, Self.second]) == ["1-items", "2-items-count"])
            #expect(try await database.migrate([Self.first, Self.second]) == [])
            let recorded = try await database.read { db in
                try db.query("SELECT id, position FROM schema_migrations ORDER BY position").map {
                    "\(try $0.string("id"))@\(try $0.int64("position"))"
                }
            }
            #expect(recorded == ["1-items@1", "2-items-count@2"])

            // A second process (connection) on the same file finds nothing to do.
            let other = try await SQLiteDatabase(path: path)
            #expect(try await other.migrate([Self.first, Self.second]) == [])
            await other.close()
        }
    }

    @Test("a new migration appended later is applied alone")
    func appended() async throws {
        try await withDatabase { database, _ in
            #expect(try await database.migrate([Self.first]) == ["1-items"])
            #expect(try await database.migrate([Self.first, Self.second]) == ["2-items-count"])
            try await database.write { db in try db.execute("INSERT INTO items (name, count) VALUES ('a', 1)") }
        }
    }

    @Test("a migration inserted before an applied one is refused")
    func inserted() async throws {
        try await withDatabase { database, _ in
            try await database.migrate([Self.first, Self.second])
            let late = SQLiteMigration(id: "1b-late", sql: "CREATE TABLE late (x);")
            let error = await #expect(throws: SQLiteError.self) {
                try await database.migrate([Self.first, late, Self.second])
            }
            #expect(error?.code == .migration)
            #expect(error?.message.contains("'1b-late'") == true)
        }
    }

    @Test("duplicate ids are refused")
    func duplicateIds() async throws {
        try await withDatabase { database, _ in
            let error = await #expect(throws: SQLiteError.self) {
                try await database.migrate([Self.first, Self.first])
            }
            #expect(error?.code == .migration)
        }
    }

    @Test("a failing migration leaves nothing behind and is retried next time")
    func failing() async throws {
        try await withDatabase { database, _ in
            let broken = SQLiteMigration(id: "2-broken", sql: "CREATE TABLE half (x); CREATE TABLE oops (;")
            let error = await #expect(throws: SQLiteError.self) {
                try await database.migrate([Self.first, broken])
            }
            #expect(error?.code == .migration)
            #expect(error?.message.contains("2-broken") == true)
            let tables = try await database.read { db in
                try db.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").map { try $0.string("name") }
            }
            #expect(tables == ["items", "schema_migrations"])
            let fixed = SQLiteMigration(id: "2-broken", sql: "CREATE TABLE half (x);")
            #expect(try await database.migrate([Self.first, fixed]) == ["2-broken"])
        }
    }

    @Test("code migrations run with the connection")
    func codeMigration() async throws {
        try await withDatabase { database, _ in
            let seed = SQLiteMigration(id: "2-seed") { db in
                for name in ["a", "b", "c"] {
                    try db.execute("INSERT INTO items (name) VALUES (?)", [.text(name)])
                }
            }
            try await database.migrate([Self.first, seed])
            let count = try await database.read { db in try db.queryFirst("SELECT count(*) AS n FROM items")?.int64("n") }
            #expect(count == 3)
        }
    }
}
