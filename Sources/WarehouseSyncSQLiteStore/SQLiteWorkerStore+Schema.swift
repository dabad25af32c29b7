import WarehouseSyncSQLite
import WarehouseSyncStore

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
        // `reason` has no CHECK list: a new DeadLetterReason must not need a table rebuild (an
        // unknown one reads back as corrupt). AUTOINCREMENT: ids are never reused after pruning,
        // as replays name them in `whsync-replay-of`.
        SQLiteMigration(
            id: "store-2-dead-letters",
            sql: """
                CREATE TABLE dead_letters (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    identity TEXT NOT NULL UNIQUE CHECK (length(identity) = 64),
                    stream TEXT CHECK (stream IN ('inventory', 'shipment', 'receipt')),
                    reason TEXT NOT NULL CHECK (length(reason) > 0),
                    error TEXT NOT NULL,
                    event_id TEXT CHECK (length(event_id) > 0),
                    key TEXT CHECK (length(key) > 0),
                    sequence INTEGER,
                    warehouse TEXT,
                    original_exchange TEXT NOT NULL,
                    original_routing_key TEXT NOT NULL,
                    headers TEXT NOT NULL CHECK (json_valid(headers) AND json_type(headers) = 'object'),
                    body BLOB NOT NULL,
                    first_failed_at_us INTEGER NOT NULL,
                    last_failed_at_us INTEGER NOT NULL CHECK (last_failed_at_us >= first_failed_at_us),
                    failure_count INTEGER NOT NULL CHECK (failure_count >= 1),
                    replay_count INTEGER NOT NULL CHECK (replay_count >= 0),
                    last_replayed_at_us INTEGER,
                    last_replayed_by TEXT,
                    body_edited_at_us INTEGER,
                    status TEXT NOT NULL CHECK (status IN ('pending', 'replayed', 'purged')),
                    status_changed_at_us INTEGER NOT NULL,
                    CHECK ((last_replayed_at_us IS NULL) = (last_replayed_by IS NULL)),
                    CHECK ((last_replayed_at_us IS NULL) = (replay_count = 0)),
                    CHECK (status <> 'replayed' OR replay_count > 0)
                );

                CREATE INDEX dead_letters_status ON dead_letters (status, id);
                CREATE INDEX dead_letters_retention ON dead_letters (status_changed_at_us) WHERE status <> 'pending';
                """
        ),
        SQLiteMigration(
            id: "store-3-audit",
            sql: """
                CREATE TABLE audit_log (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    at_us INTEGER NOT NULL,
                    actor TEXT NOT NULL CHECK (length(actor) > 0),
                    action TEXT NOT NULL CHECK (length(action) > 0),
                    dead_letter_id INTEGER,
                    stream TEXT CHECK (stream IN ('inventory', 'shipment', 'receipt')),
                    key TEXT,
                    detail TEXT NOT NULL,
                    previous_body BLOB
                );

                CREATE INDEX audit_log_letter ON audit_log (dead_letter_id, id) WHERE dead_letter_id IS NOT NULL;
                """
        ),
        // The gaps an operator skipped (KeyState.skipped, StoredSkippedGaps): a late event of one
        // is dead-lettered instead of dropped as stale.
        SQLiteMigration(id: "store-4-skipped-gaps", sql: "ALTER TABLE keys ADD COLUMN skipped TEXT;"),
        // The event let through for the key's turn (KeyState.claim): another eventId under the
        // same sequence is a conflict, whichever replica it reaches.
        SQLiteMigration(
            id: "store-5-turn-claims",
            sql: "ALTER TABLE keys ADD COLUMN claimed_by TEXT; ALTER TABLE keys ADD COLUMN claimed_sequence INTEGER;"),
        // The oldest held time of a key in one index probe (StoredHeldEvents): a key holding 10⁴
        // events must not cost a scan of them per decision.
        SQLiteMigration(
            id: "store-6-held-age", sql: "CREATE INDEX held_messages_age ON held_messages (stream, key, held_at_us);"),
    ]
}
