import WarehouseSyncSQLite

extension SQLiteWorkerStore {
    /// The schema's history: append, never edit (``SQLiteMigration``). Described in docs/store.md.
    static let migrations: [SQLiteMigration] = [
        SQLiteMigration(
            id: "store-1-keys-dedup-held",
            sql: """
                CREATE TABLE keys (
                    stream TEXT NOT NULL CHECK (stream IN ('inventory', 'shipment', 'receipt')),
                    key TEXT NOT NULL CHECK (length(key) > 0),
                    version INTEGER NOT NULL CHECK (version >= 1),
                    next_expected INTEGER NOT NULL,
                    parked_since_us INTEGER,
                    park_reason TEXT CHECK (park_reason IN ('gap-timeout')),
                    updated_at_us INTEGER NOT NULL,
                    CHECK ((parked_since_us IS NULL) = (park_reason IS NULL)),
                    PRIMARY KEY (stream, key)
                ) WITHOUT ROWID;

                CREATE INDEX keys_parked ON keys (stream, key) WHERE parked_since_us IS NOT NULL;

                CREATE TABLE dedup_records (
                    event_id TEXT NOT NULL PRIMARY KEY CHECK (length(event_id) > 0),
                    state TEXT NOT NULL CHECK (state IN ('posting', 'held', 'posted', 'dead-lettered')),
                    fingerprint TEXT NOT NULL CHECK (length(fingerprint) = 64),
                    document_id TEXT CHECK (document_id IS NULL OR state = 'posted'),
                    stream TEXT NOT NULL CHECK (stream IN ('inventory', 'shipment', 'receipt')),
                    key TEXT NOT NULL,
                    sequence INTEGER NOT NULL,
                    created_at_us INTEGER NOT NULL,
                    updated_at_us INTEGER NOT NULL
                ) WITHOUT ROWID;

                CREATE INDEX dedup_records_posted ON dedup_records (updated_at_us) WHERE state = 'posted';

                CREATE TABLE held_messages (
                    stream TEXT NOT NULL,
                    key TEXT NOT NULL,
                    sequence INTEGER NOT NULL,
                    event_id TEXT NOT NULL CHECK (length(event_id) > 0),
                    held_at_us INTEGER NOT NULL,
                    routing_key TEXT NOT NULL,
                    headers TEXT NOT NULL CHECK (json_valid(headers) AND json_type(headers) = 'object'),
                    body BLOB NOT NULL,
                    PRIMARY KEY (stream, key, sequence),
                    FOREIGN KEY (stream, key) REFERENCES keys (stream, key)
                ) WITHOUT ROWID;
                """
        ),
    ]
}
