import Foundation
import Logging
import PostgresNIO
import WarehouseSyncStore

/// One step of the PostgreSQL schema's history: append, never edit (as ``SQLiteMigration``).
struct PostgresMigration: Sendable {
    let id: String
    /// Run in order, each one statement (the extended protocol takes one at a time).
    let statements: [String]
}

extension PostgresWorkerStore {
    /// The schema's history, equivalent to the SQLite store's (docs/store.md): µs `BIGINT`
    /// times, `BYTEA` bodies, `JSONB` headers, an identity column for dead-letter ids.
    static let migrations: [PostgresMigration] = [
        PostgresMigration(id: "store-1-keys-dedup-held", statements: [
            """
            CREATE TABLE keys (
                stream TEXT NOT NULL CHECK (stream IN ('inventory', 'shipment', 'receipt')),
                key TEXT NOT NULL CHECK (length(key) > 0),
                version BIGINT NOT NULL CHECK (version >= 1),
                next_expected BIGINT NOT NULL,
                parked_since_us BIGINT,
                park_reason TEXT CHECK (park_reason IN ('gap-timeout')),
                updated_at_us BIGINT NOT NULL,
                CHECK ((parked_since_us IS NULL) = (park_reason IS NULL)),
                PRIMARY KEY (stream, key)
            )
            """,
            "CREATE INDEX keys_parked ON keys (stream, key) WHERE parked_since_us IS NOT NULL",
            """
            CREATE TABLE dedup_records (
                event_id TEXT NOT NULL PRIMARY KEY CHECK (length(event_id) > 0),
                state TEXT NOT NULL CHECK (state IN ('posting', 'held', 'posted', 'dead-lettered')),
                fingerprint TEXT NOT NULL CHECK (length(fingerprint) = 64),
                document_id TEXT CHECK (document_id IS NULL OR state = 'posted'),
                stream TEXT NOT NULL CHECK (stream IN ('inventory', 'shipment', 'receipt')),
                key TEXT NOT NULL,
                sequence BIGINT NOT NULL,
                created_at_us BIGINT NOT NULL,
                updated_at_us BIGINT NOT NULL
            )
            """,
            "CREATE INDEX dedup_records_posted ON dedup_records (updated_at_us) WHERE state = 'posted'",
            """
            CREATE TABLE held_messages (
                stream TEXT NOT NULL,
                key TEXT NOT NULL,
                sequence BIGINT NOT NULL,
                event_id TEXT NOT NULL CHECK (length(event_id) > 0),
                held_at_us BIGINT NOT NULL,
                routing_key TEXT NOT NULL,
                headers JSONB NOT NULL CHECK (jsonb_typeof(headers) = 'object'),
                body BYTEA NOT NULL,
                PRIMARY KEY (stream, key, sequence),
                FOREIGN KEY (stream, key) REFERENCES keys (stream, key)
            )
            """,
        ]),
        // `reason` has no CHECK list (a new DeadLetterReason needs no migration; an unknown one
        // reads back as corrupt). Identity ids are never reused, also after pruning.
        PostgresMigration(id: "store-2-dead-letters", statements: [
            """
            CREATE TABLE dead_letters (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                identity TEXT NOT NULL UNIQUE CHECK (length(identity) = 64),
                stream TEXT CHECK (stream IN ('inventory', 'shipment', 'receipt')),
                reason TEXT NOT NULL CHECK (length(reason) > 0),
                error TEXT NOT NULL,
                event_id TEXT CHECK (length(event_id) > 0),
                key TEXT CHECK (length(key) > 0),
                sequence BIGINT,
                warehouse TEXT,
                original_exchange TEXT NOT NULL,
                original_routing_key TEXT NOT NULL,
                headers JSONB NOT NULL CHECK (jsonb_typeof(headers) = 'object'),
                body BYTEA NOT NULL,
                first_failed_at_us BIGINT NOT NULL,
                last_failed_at_us BIGINT NOT NULL CHECK (last_failed_at_us >= first_failed_at_us),
                failure_count BIGINT NOT NULL CHECK (failure_count >= 1),
                replay_count BIGINT NOT NULL CHECK (replay_count >= 0),
                last_replayed_at_us BIGINT,
                last_replayed_by TEXT,
                body_edited_at_us BIGINT,
                status TEXT NOT NULL CHECK (status IN ('pending', 'replayed', 'purged')),
                status_changed_at_us BIGINT NOT NULL,
                CHECK ((last_replayed_at_us IS NULL) = (last_replayed_by IS NULL)),
                CHECK ((last_replayed_at_us IS NULL) = (replay_count = 0)),
                CHECK (status <> 'replayed' OR replay_count > 0)
            )
            """,
            "CREATE INDEX dead_letters_status ON dead_letters (status, id)",
            "CREATE INDEX dead_letters_retention ON dead_letters (status_changed_at_us) WHERE status <> 'pending'",
        ]),
        // Who replayed, edited, purged or skipped what; entries outlive pruned letters.
        PostgresMigration(id: "store-3-audit", statements: [
            """
            CREATE TABLE audit_log (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                at_us BIGINT NOT NULL,
                actor TEXT NOT NULL CHECK (length(actor) > 0),
                action TEXT NOT NULL CHECK (length(action) > 0),
                dead_letter_id BIGINT,
                stream TEXT CHECK (stream IN ('inventory', 'shipment', 'receipt')),
                key TEXT,
                detail TEXT NOT NULL,
                previous_body BYTEA
            )
            """,
            "CREATE INDEX audit_log_letter ON audit_log (dead_letter_id, id) WHERE dead_letter_id IS NOT NULL",
        ]),
        // The gaps an operator skipped (KeyState.skipped, StoredSkippedGaps): a late event of one
        // is dead-lettered instead of dropped as stale.
        PostgresMigration(id: "store-4-skipped-gaps", statements: ["ALTER TABLE keys ADD COLUMN skipped TEXT"]),
        // The event let through for the key's turn (KeyState.claim): another eventId under the
        // same sequence is a conflict, whichever replica it reaches.
        PostgresMigration(
            id: "store-5-turn-claims",
            statements: ["ALTER TABLE keys ADD COLUMN claimed_by TEXT", "ALTER TABLE keys ADD COLUMN claimed_sequence BIGINT"]),
        // The oldest held time of a key in one index probe (StoredHeldEvents): a key holding 10⁴
        // events must not cost a scan of them per decision.
        PostgresMigration(
            id: "store-6-held-age", statements: ["CREATE INDEX held_messages_age ON held_messages (stream, key, held_at_us)"]),
    ]

    /// The table of applied migrations: `id`, `position` (1-based), `applied_at_us`.
    static let migrationsTable = "schema_migrations"

    /// The transaction-level advisory lock every replica takes before it looks at
    /// `schema_migrations` ("whsync" and 1 in a `bigint`); advisory locks are per database.
    static let migrationLock: Int64 = 0x7768_7379_6E63_0001

    /// Applies, in one transaction under ``migrationLock``, the migrations not yet recorded and
    /// returns their ids. Replicas starting together queue on the lock; each one after the first
    /// finds everything applied. Migrations recorded but unknown here (a newer version's) are
    /// left alone; a known one missing before a later applied one is an error.
    static func migrate(_ connection: PostgresConnection, _ migrations: [PostgresMigration], logger: Logger) async throws -> [String] {
        var seen = Set<String>()
        for migration in migrations where !seen.insert(migration.id).inserted {
            throw StoreError(code: .migration, message: "migration id '\(migration.id)' is registered twice")
        }
        let ids = migrations.map(\.id)
        return try await connection.transaction("BEGIN ISOLATION LEVEL READ COMMITTED", logger) { connection in
            try await connection.execute("SELECT pg_advisory_xact_lock(\(migrationLock))", logger)
            try await connection.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    id TEXT PRIMARY KEY,
                    position INTEGER NOT NULL,
                    applied_at_us BIGINT NOT NULL
                )
                """,
                logger
            )
            let applied = Set(try await connection.rows("SELECT id FROM schema_migrations", logger).map { try $0.value("id", as: String.self) })
            if let lastApplied = ids.lastIndex(where: applied.contains),
               let gap = ids[..<lastApplied].first(where: { !applied.contains($0) })
            {
                throw StoreError(
                    code: .migration,
                    message: "migration '\(gap)' is not applied but the later '\(ids[lastApplied])' is: append new migrations at the end"
                )
            }
            var newlyApplied: [String] = []
            for (offset, migration) in migrations.enumerated() where !applied.contains(migration.id) {
                for statement in migration.statements {
                    do {
                        try await connection.execute(PostgresQuery(unsafeSQL: statement), logger)
                    } catch {
                        // A lost connection is the caller's to retry; anything else is the migration's fault.
                        let failure = PostgresPool.classify(error, operation: "migration '\(migration.id)'", transientCode: .migration)
                        if failure.retryable { throw error }
                        throw StoreError(code: .migration, message: failure.error.message)
                    }
                }
                let position = offset + 1
                let now = StoreTime.microseconds(Date())
                try await connection.execute(
                    "INSERT INTO schema_migrations (id, position, applied_at_us) VALUES (\(migration.id), \(position), \(now))",
                    logger
                )
                newlyApplied.append(migration.id)
            }
            return newlyApplied
        }
    }
}
