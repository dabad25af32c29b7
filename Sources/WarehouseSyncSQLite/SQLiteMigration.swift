import Logging

/// One step of a database's schema history, identified by a stable id.
///
/// Migrations are registered in order and never edited or reordered once released: a change is
/// a new migration appended at the end. Each one runs in its own transaction together with the
/// row that records it in `schema_migrations`, so it is applied exactly once, even when two
/// processes start on the same file at the same time.
public struct SQLiteMigration: Sendable {
    public let id: String
    let apply: @Sendable (SQLiteConnection) throws -> Void

    /// A migration that runs `sql`, which may hold several `;`-separated statements.
    public init(id: String, sql: String) {
        self.id = id
        self.apply = { connection in try connection.executeScript(sql) }
    }

    /// A migration that runs `apply` (for data migrations that need code).
    public init(id: String, apply: @escaping @Sendable (SQLiteConnection) throws -> Void) {
        self.id = id
        self.apply = apply
    }
}

extension SQLiteDatabase {
    /// The table that records applied migrations: `id`, `position` (1-based, in registration
    /// order) and `applied_at` (UTC, ISO 8601).
    public static let migrationsTable = "schema_migrations"

    /// Applies, in order, the migrations not yet recorded in `schema_migrations` and returns
    /// their ids (empty when the schema was up to date).
    ///
    /// Throws ``SQLiteError/Code-swift.struct/migration`` when two migrations share an id, or
    /// when a migration is missing from the database although a later one was applied (a
    /// migration inserted into the history instead of appended). Migrations recorded in the
    /// database but unknown to `migrations` (written by a newer version) are left alone.
    @discardableResult
    public func migrate(_ migrations: [SQLiteMigration]) async throws -> [String] {
        var seen = Set<String>()
        for migration in migrations where !seen.insert(migration.id).inserted {
            throw SQLiteError(code: .migration, message: "migration id '\(migration.id)' is registered twice")
        }
        let ids = migrations.map(\.id)
        let applied: Set<String> = try await write { db in
            try db.execute("""
                CREATE TABLE IF NOT EXISTS \(Self.migrationsTable) (
                    id TEXT PRIMARY KEY NOT NULL,
                    position INTEGER NOT NULL,
                    applied_at TEXT NOT NULL
                )
                """)
            return Set(try db.query("SELECT id FROM \(Self.migrationsTable)").map { try $0.string("id") })
        }
        if let lastApplied = ids.lastIndex(where: applied.contains),
           let gap = ids[..<lastApplied].first(where: { !applied.contains($0) })
        {
            throw SQLiteError(
                code: .migration,
                message: "migration '\(gap)' is not applied but the later '\(ids[lastApplied])' is: append new migrations at the end"
            )
        }

        var newlyApplied: [String] = []
        for (offset, migration) in migrations.enumerated() where !applied.contains(migration.id) {
            // Checked again inside the transaction: another process may have applied it meanwhile.
            let ran = try await write { db in
                let recorded = try db.queryFirst("SELECT 1 FROM \(Self.migrationsTable) WHERE id = ?", [.text(migration.id)])
                guard recorded == nil else { return false }
                do {
                    try migration.apply(db)
                } catch let error as SQLiteError {
                    throw SQLiteError(
                        code: .migration,
                        resultCode: error.resultCode,
                        message: "migration '\(migration.id)': \(error.message)",
                        sql: error.sql
                    )
                }
                try db.execute(
                    """
                    INSERT INTO \(Self.migrationsTable) (id, position, applied_at)
                    VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                    """,
                    [.text(migration.id), .integer(Int64(offset + 1))]
                )
                return true
            }
            if ran {
                logger.info("applied migration", metadata: ["sqlite.migration": "\(migration.id)"])
                newlyApplied.append(migration.id)
            }
        }
        return newlyApplied
    }
}
