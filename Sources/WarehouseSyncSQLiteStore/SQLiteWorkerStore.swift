import Foundation
import Logging
import WarehouseSyncCore
import WarehouseSyncSQLite
import WarehouseSyncStore

/// The ``WorkerStore`` on one SQLite file (WAL, `BEGIN IMMEDIATE` writes through
/// ``SQLiteDatabase``). Several processes may share the file: the version check runs inside the
/// write transaction, which SQLite serialises across connections.
///
/// `KeyState.held` is not stored in the `keys` row: it is read from the `held_messages` rows, so
/// that a held entry and its message cannot diverge, as a bounded view (``StoredHeldEvents``);
/// ``commit(_:)`` checks that a new state's view agrees with the rows after the change.
public final class SQLiteWorkerStore: WorkerStore {
    public let path: String
    let database: SQLiteDatabase
    let logger: Logger

    /// Opens (creating when missing) the store at `path` and brings its schema up to date.
    public init(
        path: String,
        configuration: SQLiteDatabase.Configuration = SQLiteDatabase.Configuration(),
        logger: Logger = Logger(label: "whsync.store")
    ) async throws(StoreError) {
        self.path = path
        self.logger = logger
        do {
            database = try await SQLiteDatabase(path: path, configuration: configuration, logger: logger)
        } catch {
            throw Self.storeError(error)
        }
        do {
            try await database.migrate(Self.migrations)
        } catch {
            await database.close()
            let mapped = Self.storeError(error)
            throw StoreError(code: .migration, message: mapped.message)
        }
    }

    public func close() async {
        await database.close()
    }

    // MARK: Reads

    public func snapshot(stream: EventStream, key: String, eventId: String, sequence: Int64?) async throws -> KeySnapshot {
        try await mapped {
            try await database.read { db in try Self.snapshot(db, stream: stream, key: key, eventId: eventId, sequence: sequence) }
        }
    }

    public func heldSequences(stream: EventStream, key: String) async throws -> [Int64] {
        try await mapped {
            try await database.read { db in
                try db.query(
                    "SELECT sequence FROM held_messages WHERE stream = ? AND key = ? ORDER BY sequence",
                    [.text(stream.rawValue), .text(key)]
                ).map { try $0.int64("sequence") }
            }
        }
    }

    public func heldMessage(stream: EventStream, key: String, sequence: Int64) async throws -> HeldMessage? {
        try await mapped {
            try await database.read { db in
                guard let row = try db.queryFirst(
                    """
                    SELECT sequence, event_id, held_at_us, routing_key, headers, body FROM held_messages
                    WHERE stream = ? AND key = ? AND sequence = ?
                    """,
                    [.text(stream.rawValue), .text(key), .integer(sequence)]
                ) else { return nil }
                let headersText = try row.string("headers")
                guard let headers = StoredHeaders.headers(json: headersText) else {
                    throw StoreError(code: .corrupt, message: "held message \(key.prefix(128))#\(sequence) has malformed headers")
                }
                return HeldMessage(
                    sequence: try row.int64("sequence"),
                    eventId: try row.string("event_id"),
                    heldAt: StoreTime.date(microseconds: try row.int64("held_at_us")),
                    routingKey: try row.string("routing_key"),
                    headers: headers,
                    body: try row.blob("body")
                )
            }
        }
    }

    public func keysWithHeldEvents(stream: EventStream) async throws -> [String] {
        try await mapped {
            try await database.read { db in
                try db.query("SELECT DISTINCT key FROM held_messages WHERE stream = ? ORDER BY key", [.text(stream.rawValue)])
                    .map { try $0.string("key") }
            }
        }
    }

    public func parkedKeys(stream: EventStream) async throws -> [String] {
        try await mapped {
            try await database.read { db in
                try db.query(
                    "SELECT key FROM keys WHERE stream = ? AND parked_since_us IS NOT NULL ORDER BY key", [.text(stream.rawValue)]
                ).map { try $0.string("key") }
            }
        }
    }

    public func lastPosted(stream: EventStream, warehouse: String) async throws -> PostedEvent? {
        let (lower, upper) = PostedEvent.keyRange(warehouse: warehouse)
        return try await mapped {
            try await database.read { db in
                // Newest first along dedup_records_posted (updated_at_us WHERE state = 'posted').
                try db.query(
                    """
                    SELECT event_id, key, sequence, document_id, updated_at_us FROM dedup_records
                    WHERE state = 'posted' AND stream = ? AND key >= ? AND key < ?
                    ORDER BY updated_at_us DESC, event_id DESC LIMIT 1
                    """,
                    [.text(stream.rawValue), .text(lower), .text(upper)]
                ).first.map { row in
                    PostedEvent(
                        eventId: try row.string("event_id"), key: try row.string("key"), sequence: try row.int64("sequence"),
                        documentId: try row.optionalString("document_id"),
                        postedAt: StoreTime.date(microseconds: try row.int64("updated_at_us")))
                }
            }
        }
    }

    public func heldSummary(stream: EventStream) async throws -> [HeldKeySummary] {
        try await mapped {
            try await database.read { db in
                try db.query(
                    """
                    SELECT h.key, h.held, h.oldest, h.lowest, k.next_expected, k.parked_since_us FROM (
                        SELECT key, count(*) AS held, min(held_at_us) AS oldest, min(sequence) AS lowest FROM held_messages
                        WHERE stream = ? GROUP BY key) AS h
                    LEFT JOIN keys k ON k.stream = ? AND k.key = h.key
                    ORDER BY h.key
                    """,
                    [.text(stream.rawValue), .text(stream.rawValue)]
                ).map { row in
                    HeldKeySummary(
                        key: try row.string("key"), heldEvents: Int(try row.int64("held")),
                        oldestHeldAt: StoreTime.date(microseconds: try row.int64("oldest")), lowestHeld: try row.int64("lowest"),
                        nextExpected: try row.optionalInt64("next_expected"), isParked: try row.optionalInt64("parked_since_us") != nil)
                }
            }
        }
    }

    public func eventRecord(eventId: String) async throws -> EventRecord? {
        try await mapped {
            try await database.read { db in
                guard let row = try db.queryFirst(
                    """
                    SELECT state, fingerprint, document_id, stream, key, sequence, created_at_us, updated_at_us
                    FROM dedup_records WHERE event_id = ?
                    """,
                    [.text(eventId)]
                ) else { return nil }
                guard let stream = EventStream(rawValue: try row.string("stream")) else {
                    throw StoreError(code: .corrupt, message: "dedup record \(eventId.prefix(128)) names an unknown stream")
                }
                return EventRecord(
                    eventId: eventId, stream: stream, key: try row.string("key"), sequence: try row.int64("sequence"),
                    record: try StoredDedupState.record(
                        state: row.string("state"), fingerprintHex: row.string("fingerprint"), eventId: eventId),
                    documentId: try row.optionalString("document_id"),
                    firstRecordedAt: StoreTime.date(microseconds: try row.int64("created_at_us")),
                    lastRecordedAt: StoreTime.date(microseconds: try row.int64("updated_at_us")))
            }
        }
    }

    // MARK: Writes

    public func commit(_ change: KeyChange) async throws {
        try change.validate()
        try await mapped {
            try await database.write { db in try Self.apply(change, db) }
        }
    }

    /// Read, decision and write in one transaction: the database's one writer keeps the key
    /// where it was read, so the version check cannot fail (`decide` still runs again when the
    /// caller retries after the group's commit failed). Decisions that write nothing take the
    /// write lock too: with several processes on one file they wait for it like commits.
    public func commitDecision<Outcome: Sendable>(
        stream: EventStream, key: String, eventId: String, sequence: Int64?,
        _ decide: @escaping @Sendable (KeySnapshot) -> (change: KeyChange?, outcome: Outcome)
    ) async throws -> Outcome {
        try await mapped {
            try await database.write { db in
                let (change, outcome) = decide(try Self.snapshot(db, stream: stream, key: key, eventId: eventId, sequence: sequence))
                if let change {
                    try change.validate()
                    try Self.apply(change, db)
                }
                return outcome
            }
        }
    }

    /// The round in one write job and one transaction, read and decided under the database's
    /// write lock. Optimistic: the decisions run one after the other with no savepoint of their
    /// own; when one is refused, the job rolls back (the group commit's savepoint) and the round
    /// runs again with a savepoint per decision, so that the refused one fails alone.
    public func commitDecisions(_ round: [KeyDecision]) async throws -> [Result<any Sendable, any Error>] {
        try KeyDecision.requireDistinctKeys(round)
        guard !round.isEmpty else { return [] }
        do {
            return try await mapped { try await database.write { db in try Self.run(round, db, isolated: false) } }
        } catch {
            guard [.invalidChange, .versionConflict, .corrupt].contains(error.code) else { throw error }
        }
        return try await mapped { try await database.write { db in try Self.run(round, db, isolated: true) } }
    }

    /// Runs the round's decisions in order; `isolated`: each in a savepoint of its own, a refused
    /// one answered with its error instead of failing the round.
    private static func run(_ round: [KeyDecision], _ db: SQLiteConnection, isolated: Bool) throws -> [Result<any Sendable, any Error>] {
        var results: [Result<any Sendable, any Error>] = []
        results.reserveCapacity(round.count)
        for decision in round {
            guard isolated else {
                results.append(.success(try commit(decision, db)))
                continue
            }
            do {
                results.append(.success(try db.withSavepoint("whsync_decision") { try commit(decision, db) }))
            } catch {
                // The whole transaction went with it (I/O, disk full): the round fails.
                guard db.isInTransaction else { throw error }
                results.append(.failure(storeError(error)))
            }
        }
        return results
    }

    /// The decision's assumed snapshot when its version is still the key's, else a fresh read.
    private static func currentSnapshot(_ decision: KeyDecision, _ db: SQLiteConnection) throws -> KeySnapshot {
        if let assumed = decision.assumed {
            let row = try db.queryFirst(
                "SELECT version FROM keys WHERE stream = ? AND key = ?", [.text(decision.stream.rawValue), .text(decision.key)])
            let version = try row?.int64("version") ?? 0
            if version == assumed.version { return assumed }
        }
        return try snapshot(
            db, stream: decision.stream, key: decision.key, eventId: decision.eventId, sequence: decision.sequence, later: decision.laterEvents)
    }

    /// One decision of a round: on the assumed snapshot when its version is still the key's,
    /// else on a fresh read. Either way the version was just read inside this transaction, so
    /// the change is applied without reading it again.
    private static func commit(_ decision: KeyDecision, _ db: SQLiteConnection) throws -> any Sendable {
        let snapshot = try currentSnapshot(decision, db)
        let (change, outcome) = decision.decide(snapshot)
        if let change {
            try change.validate()
            guard change.expectedVersion == snapshot.version else {
                throw StoreError(
                    code: .versionConflict,
                    message: "key \(change.key.prefix(128)) is at version \(snapshot.version), not \(change.expectedVersion)")
            }
            try apply(change, db, versionChecked: true, heldAsRead: change.keepsHeld(asIn: snapshot))
        }
        return outcome
    }

    public func pruneProcessed(olderThan cutoff: Date) async throws -> Int {
        let pruned = try await StorePruning.inBatches { limit in
            try await mapped {
                try await database.write { db in
                    try db.execute(
                        """
                        DELETE FROM dedup_records WHERE event_id IN (
                            SELECT event_id FROM dedup_records WHERE state = 'posted' AND updated_at_us < ? LIMIT ?
                        )
                        """,
                        [.integer(StoreTime.microseconds(cutoff)), .integer(Int64(limit))]
                    )
                }
            }
        }
        if pruned > 0 {
            logger.debug("pruned posted dedup records", metadata: ["store.pruned": "\(pruned)"])
        }
        return pruned
    }

    // MARK: Internals


    /// `later`: the key's queued events decided after `eventId` in the same step (their
    /// records and held rows are read too).
    private static func snapshot(
        _ db: SQLiteConnection, stream: EventStream, key: String, eventId: String, sequence: Int64?,
        later: [(eventId: String, sequence: Int64)] = []
    ) throws -> KeySnapshot {
        let sequences = (sequence.map { [$0] } ?? []) + later.map(\.sequence)
        let (state, version) = try keyState(db, stream: stream, key: key, sequences: sequences)
        var snapshot = KeySnapshot(state: state, version: version, record: .notSeen)
        let record = { (eventId: String) -> (DedupRecord, String?)? in
            guard let row = try db.queryFirst(
                "SELECT state, fingerprint, document_id FROM dedup_records WHERE event_id = ?", [.text(eventId)]
            ) else { return nil }
            return (
                try StoredDedupState.record(state: row.string("state"), fingerprintHex: row.string("fingerprint"), eventId: eventId),
                try row.optionalString("document_id")
            )
        }
        if let (record, documentId) = try record(eventId) {
            snapshot.record = record
            snapshot.documentId = documentId
        }
        for event in later where event.eventId != eventId && snapshot.laterRecords[event.eventId] == nil {
            if let (record, _) = try record(event.eventId) { snapshot.laterRecords[event.eventId] = record }
        }
        return snapshot
    }

    /// Runs inside `BEGIN IMMEDIATE`: any throw rolls everything back.
    /// `versionChecked`: the caller read the key's version in this transaction and compared it.
    /// `heldAsRead`: the change keeps the held rows as the snapshot it was decided on knew them
    /// (``KeyChange/keepsHeld(asIn:)``), so its state's view needs no check against them.
    private static func apply(_ change: KeyChange, _ db: SQLiteConnection, versionChecked: Bool = false, heldAsRead: Bool = false) throws {
        let stream = SQLiteValue.text(change.stream.rawValue)
        let key = SQLiteValue.text(change.key)
        let now = SQLiteValue.integer(StoreTime.microseconds(change.now))
        let current = versionChecked
            ? change.expectedVersion
            : try db.queryFirst("SELECT version FROM keys WHERE stream = ? AND key = ?", [stream, key])?.int64("version") ?? 0
        guard current == change.expectedVersion else {
            throw StoreError(
                code: .versionConflict,
                message: "key \(change.key.prefix(128)) is at version \(current), not \(change.expectedVersion)"
            )
        }

        if let state = change.newState {
            let parkedSince = SQLiteValue(state.parked.map { StoreTime.microseconds($0.since) })
            let parkReason = SQLiteValue(state.parked?.reason.rawValue)
            let skipped = SQLiteValue(StoredSkippedGaps.text(state.skipped))
            let claimedBy = SQLiteValue(state.claim?.eventId)
            let claimedSequence = SQLiteValue(state.claim?.sequence)
            if change.expectedVersion == 0 {
                try db.execute(
                    """
                    INSERT INTO keys (stream, key, version, next_expected, parked_since_us, park_reason, skipped, claimed_by,
                        claimed_sequence, updated_at_us)
                    VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [stream, key, .integer(state.nextExpected), parkedSince, parkReason, skipped, claimedBy, claimedSequence, now]
                )
            } else {
                try db.execute(
                    """
                    UPDATE keys SET version = version + 1, next_expected = ?, parked_since_us = ?, park_reason = ?,
                        skipped = ?, claimed_by = ?, claimed_sequence = ?, updated_at_us = ?
                    WHERE stream = ? AND key = ? AND version = ?
                    """,
                    [
                        .integer(state.nextExpected), parkedSince, parkReason, skipped, claimedBy, claimedSequence, now, stream, key,
                        .integer(change.expectedVersion),
                    ]
                )
            }
        }

        if let sequence = change.deleteHeldSequence {
            let deleted = try db.execute(
                "DELETE FROM held_messages WHERE stream = ? AND key = ? AND sequence = ?", [stream, key, .integer(sequence)])
            // Without a new state the held rows must stay as they were (validate() refuses an
            // insert without one), so this delete is the only way to change them.
            if change.newState == nil, deleted > 0 {
                throw StoreError(
                    code: .invalidChange,
                    message: "key \(change.key.prefix(128)): deleting held sequence \(sequence) needs the key's new state without it"
                )
            }
        }
        for message in change.insertHeld {
            let headers = try StoredHeaders.json(message.headers)
            let existing = try db.queryFirst(
                "SELECT 1 FROM held_messages WHERE stream = ? AND key = ? AND sequence = ?", [stream, key, .integer(message.sequence)]
            )
            guard existing == nil else {
                throw StoreError(
                    code: .invalidChange, message: "key \(change.key.prefix(128)) already holds a message for sequence \(message.sequence)"
                )
            }
            try db.execute(
                """
                INSERT INTO held_messages (stream, key, sequence, event_id, held_at_us, routing_key, headers, body)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    stream, key, .integer(message.sequence), .text(message.eventId),
                    .integer(StoreTime.microseconds(message.heldAt)), .text(message.routingKey),
                    .text(String(decoding: headers, as: UTF8.self)), .blob(message.body),
                ]
            )
        }

        // `held` is derived from the rows: the state written must agree with the rows left.
        if let state = change.newState, !heldAsRead {
            let (lowestCount, sequences) = StoredHeldEvents.check(state.held)
            var rowsAt: [Int64: KeyState.HeldEvent] = [:]
            for sequence in sequences {
                rowsAt[sequence] = try heldEvent(db, stream: change.stream, key: change.key, sequence: sequence)
            }
            try StoredHeldEvents.verify(
                state.held, key: change.key, lowestRows: try lowestHeldEvents(db, stream: change.stream, key: change.key, limit: lowestCount),
                rowsAt: rowsAt)
        }

        for write in change.records {
            guard let (state, fingerprint) = StoredDedupState.split(write.record) else { continue }
            try db.execute(
                """
                INSERT INTO dedup_records (event_id, state, fingerprint, document_id, stream, key, sequence, created_at_us, updated_at_us)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (event_id) DO UPDATE SET
                    state = excluded.state, fingerprint = excluded.fingerprint, document_id = excluded.document_id,
                    stream = excluded.stream, key = excluded.key, sequence = excluded.sequence,
                    updated_at_us = excluded.updated_at_us
                """,
                [
                    .text(write.eventId), .text(state.rawValue), .text(fingerprint.hex), SQLiteValue(write.documentId),
                    stream, key, .integer(write.sequence), now, now,
                ]
            )
        }
    }

    private static func heldEvent(_ row: SQLiteRow) throws -> KeyState.HeldEvent {
        KeyState.HeldEvent(eventId: try row.string("event_id"), heldAt: StoreTime.date(microseconds: try row.int64("held_at_us")))
    }

    /// The `limit` lowest held events of `key`, in sequence order (the primary key's order).
    private static func lowestHeldEvents(
        _ db: SQLiteConnection, stream: EventStream, key: String, limit: Int
    ) throws -> [(sequence: Int64, event: KeyState.HeldEvent)] {
        try db.query(
            "SELECT sequence, event_id, held_at_us FROM held_messages WHERE stream = ? AND key = ? ORDER BY sequence LIMIT ?",
            [.text(stream.rawValue), .text(key), .integer(Int64(limit))]
        ).map { (try $0.int64("sequence"), try heldEvent($0)) }
    }

    private static func heldEvent(_ db: SQLiteConnection, stream: EventStream, key: String, sequence: Int64) throws -> KeyState.HeldEvent? {
        try db.queryFirst(
            "SELECT event_id, held_at_us FROM held_messages WHERE stream = ? AND key = ? AND sequence = ?",
            [.text(stream.rawValue), .text(key), .integer(sequence)]
        ).map(heldEvent)
    }

    /// The bounded view of `key`'s held events (``StoredHeldEvents``), with the one at `sequence`.
    private static func heldEvents(_ db: SQLiteConnection, stream: EventStream, key: String, sequences: [Int64]) throws -> HeldEvents {
        let lowest = try lowestHeldEvents(db, stream: stream, key: key, limit: StoredHeldEvents.lowestRowsToRead)
        // When the lowest rows are all of them (the common case: nothing held), they answer for
        // the asked sequence too: no second probe on every decision.
        let all = lowest.count <= HeldEvents.windowSize
        let asked = try sequences.map { sequence in
            (sequence, all ? lowest.first { $0.sequence == sequence }?.event : try heldEvent(db, stream: stream, key: key, sequence: sequence))
        }
        return try StoredHeldEvents.view(lowestRows: lowest, asked: asked) {
            // held_messages_age makes this one index probe.
            try db.queryFirst(
                "SELECT MIN(held_at_us) AS oldest FROM held_messages WHERE stream = ? AND key = ?", [.text(stream.rawValue), .text(key)]
            )?.optionalInt64("oldest").map(StoreTime.date(microseconds:))
        }
    }

    private static func keyState(
        _ db: SQLiteConnection, stream: EventStream, key: String, sequences: [Int64]
    ) throws -> (KeyState?, Int64) {
        guard let row = try db.queryFirst(
            """
            SELECT version, next_expected, parked_since_us, park_reason, skipped, claimed_by, claimed_sequence
            FROM keys WHERE stream = ? AND key = ?
            """,
            [.text(stream.rawValue), .text(key)]
        ) else { return (nil, 0) }
        var parking: KeyState.Parking?
        if let since = try row.optionalInt64("parked_since_us") {
            let reasonText = try row.optionalString("park_reason") ?? ""
            guard let reason = KeyState.ParkReason(rawValue: reasonText) else {
                throw StoreError(code: .corrupt, message: "key \(key.prefix(128)) has unknown park reason '\(reasonText.prefix(32))'")
            }
            parking = KeyState.Parking(since: StoreTime.date(microseconds: since), reason: reason)
        }
        let state = KeyState(
            nextExpected: try row.int64("next_expected"), held: try heldEvents(db, stream: stream, key: key, sequences: sequences),
            parked: parking,
            skipped: try StoredSkippedGaps.gaps(try row.optionalString("skipped"), key: key),
            claim: try StoredClaim.claim(eventId: try row.optionalString("claimed_by"), sequence: try row.optionalInt64("claimed_sequence"))
        )
        return (state, try row.int64("version"))
    }

    /// Runs `body`, turning every error into a ``StoreError``.
    func mapped<T: Sendable>(_ body: () async throws -> T) async throws(StoreError) -> T {
        do {
            return try await body()
        } catch {
            throw Self.storeError(error)
        }
    }

    /// Primary result codes that waiting mends: SQLITE_BUSY, SQLITE_LOCKED (another connection
    /// holds the lock), SQLITE_NOMEM, SQLITE_IOERR, SQLITE_FULL (the disk), SQLITE_CANTOPEN,
    /// SQLITE_PROTOCOL. Not SQLITE_READONLY, SQLITE_PERM, SQLITE_ERROR and the like.
    static let outageCodes: Set<Int32> = [5, 6, 7, 10, 13, 14, 15]

    static func storeError(_ error: any Error) -> StoreError {
        switch error {
        case let error as StoreError:
            return error
        case let error as SQLiteError:
            // SQLite's primary result codes: SQLITE_CONSTRAINT 19, SQLITE_CORRUPT 11, SQLITE_NOTADB 26.
            let primary = error.resultCode & 0xff
            let code: StoreError.Code
            if error.code == .migration {
                code = .migration
            } else if error.code == .decoding || primary == 11 || primary == 26 {
                code = .corrupt
            } else if primary == 19 {
                code = .invalidChange
            } else {
                code = .unavailable
            }
            return StoreError(code: code, message: error.description, isOutage: outageCodes.contains(primary))
        default:
            return StoreError(code: .unavailable, message: "\(type(of: error))")
        }
    }
}
