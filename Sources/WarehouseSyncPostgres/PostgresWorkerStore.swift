import Foundation
import Logging
import PostgresNIO
import WarehouseSyncCore
import WarehouseSyncStore

/// The ``WorkerStore`` on a PostgreSQL database, safe for many worker replicas at once
/// (docs/store.md, "PostgreSQL").
///
/// - Each key's decisions serialise on its `keys` row: ``commit(_:)`` checks the expected
///   version with `INSERT … ON CONFLICT DO NOTHING` (version 0) or `UPDATE … WHERE version = ?`
///   (which waits for a concurrent writer's row lock and then re-checks), or `SELECT … FOR SHARE`
///   for a change without a new state, all in one `READ COMMITTED` transaction. Of two replicas
///   committing on the same version one wins, the other gets `versionConflict`; so a held event
///   is released by exactly one of them.
/// - `KeyState.held` is derived from the `held_messages` rows, as in SQLite (``StoredHeldEvents``).
/// - Migrations run once, under a transaction-level advisory lock, when the store opens.
/// - The connections are a postgres-nio `PostgresClient` pool. A long-running process runs it as
///   a service of its `ServiceGroup` (``ClientLifetime/runByCaller``, ``runClient()``); a
///   short-lived command lets the store run it in a task of its own (``ClientLifetime/ownTask``,
///   ended by ``close()``). An operation whose connection is lost is retried a few times with
///   backoff; what remains is ``StoreError/Code-swift.struct/unavailable``.
public final class PostgresWorkerStore: WorkerStore {
    public let configuration: PostgresStoreConfiguration
    /// The migrations this instance applied when it opened (empty when another replica, or an
    /// earlier start, had applied them all).
    public let appliedMigrations: [String]
    let pool: PostgresPool
    let logger: Logger

    /// Who runs the connection pool (postgres-nio's `PostgresClient`).
    public enum ClientLifetime: Sendable {
        /// The store, in a task of its own that ``close()`` ends (within 5 s: a pool that does
        /// not stop by then is left to finish alone). For short-lived commands.
        case ownTask
        /// The caller, through ``runClient()``, typically a service in the process's
        /// `ServiceGroup` placed before every service that uses the store. Operations wait for
        /// the client to run (bounded by the lease timeout); ``close()`` only stops taking
        /// operations.
        case runByCaller
    }

    /// Every migration id, in order.
    public static var migrationIds: [String] { migrations.map(\.id) }

    /// Connects, brings the schema up to date and starts the connection pool. Keeps trying to
    /// reach the server for ``PostgresStoreConfiguration/openTimeout``; throws
    /// ``StoreError/Code-swift.struct/unavailable`` when it cannot connect (or log in) and
    /// ``StoreError/Code-swift.struct/migration`` when the schema cannot be migrated.
    public init(
        configuration: PostgresStoreConfiguration,
        logger: Logger = Logger(label: "whsync.store"),
        clientLifetime: ClientLifetime = .ownTask
    ) async throws(StoreError) {
        self.configuration = configuration
        self.logger = logger
        appliedMigrations = try await Self.migrateOnOpen(configuration, logger: logger)
        if !appliedMigrations.isEmpty {
            logger.info(
                "migrated the PostgreSQL store",
                metadata: ["store": "\(configuration)", "store.migrations": "\(appliedMigrations.joined(separator: ","))"]
            )
        }
        pool = PostgresPool(configuration: configuration, logger: logger, lifetime: clientLifetime)
    }

    /// ``ClientLifetime/runByCaller`` only, once: runs the connection pool until a graceful
    /// shutdown of the `ServiceGroup` it runs in (postgres-nio's `PostgresClient` is a
    /// ServiceLifecycle `Service`) or cancellation. The store is closed when it returns.
    public func runClient() async {
        await pool.runClient()
    }

    /// Operations fail as unavailable from now on, without waiting for anything: for the
    /// service running the client, when its graceful shutdown begins.
    public func stopTakingOperations() {
        pool.markClosed()
    }

    public func close() async {
        await pool.close()
    }

    // MARK: Reads

    public func snapshot(stream: EventStream, key: String, eventId: String, sequence: Int64?) async throws -> KeySnapshot {
        try await snapshots(stream: stream, [(key, eventId, sequence, [])])[0]
    }

    public func heldSequences(stream: EventStream, key: String) async throws -> [Int64] {
        try await pool.run("heldSequences") { connection, logger in
            try await connection.rows(
                "SELECT sequence FROM held_messages WHERE stream = \(stream.rawValue) AND key = \(key) ORDER BY sequence", logger
            ).map { try $0.value("sequence", as: Int64.self) }
        }
    }

    public func heldMessage(stream: EventStream, key: String, sequence: Int64) async throws -> HeldMessage? {
        try await pool.run("heldMessage") { connection, logger in
            guard let row = try await connection.rows(
                """
                SELECT sequence, event_id, held_at_us, routing_key, headers::text AS headers, body FROM held_messages
                WHERE stream = \(stream.rawValue) AND key = \(key) AND sequence = \(sequence)
                """,
                logger
            ).first else { return nil }
            guard let headers = StoredHeaders.headers(json: try row.value("headers")) else {
                throw StoreError(code: .corrupt, message: "held message \(key.prefix(128))#\(sequence) has malformed headers")
            }
            return HeldMessage(
                sequence: try row.value("sequence"),
                eventId: try row.value("event_id"),
                heldAt: StoreTime.date(microseconds: try row.value("held_at_us")),
                routingKey: try row.value("routing_key"),
                headers: headers,
                body: try row.bytes("body")
            )
        }
    }

    public func keysWithHeldEvents(stream: EventStream) async throws -> [String] {
        // COLLATE "C": byte order, as SQLite sorts, whatever the database's collation.
        try await pool.run("keysWithHeldEvents") { connection, logger in
            try await connection.rows(
                "SELECT DISTINCT key COLLATE \"C\" AS key FROM held_messages WHERE stream = \(stream.rawValue) ORDER BY 1",
                logger
            ).map { try $0.value("key", as: String.self) }
        }
    }

    public func parkedKeys(stream: EventStream) async throws -> [String] {
        try await pool.run("parkedKeys") { connection, logger in
            try await connection.rows(
                """
                SELECT key FROM keys WHERE stream = \(stream.rawValue) AND parked_since_us IS NOT NULL
                ORDER BY key COLLATE "C"
                """,
                logger
            ).map { try $0.value("key", as: String.self) }
        }
    }

    public func lastPosted(stream: EventStream, warehouse: String) async throws -> PostedEvent? {
        let (lower, upper) = PostedEvent.keyRange(warehouse: warehouse)
        return try await pool.run("lastPosted") { connection, logger in
            // COLLATE "C": byte order, the bounds' order, whatever the database's collation.
            guard let row = try await connection.rows(
                """
                SELECT event_id, key, sequence, document_id, updated_at_us FROM dedup_records
                WHERE state = 'posted' AND stream = \(stream.rawValue)
                    AND key COLLATE "C" >= \(lower) AND key COLLATE "C" < \(upper)
                ORDER BY updated_at_us DESC, event_id COLLATE "C" DESC LIMIT 1
                """,
                logger
            ).first else { return nil }
            return PostedEvent(
                eventId: try row.value("event_id"), key: try row.value("key"), sequence: try row.value("sequence"),
                documentId: try row.value("document_id", as: String?.self),
                postedAt: StoreTime.date(microseconds: try row.value("updated_at_us")))
        }
    }

    public func heldSummary(stream: EventStream) async throws -> [HeldKeySummary] {
        try await pool.run("heldSummary") { connection, logger in
            try await connection.rows(
                """
                SELECT h.key, h.held, h.oldest, h.lowest, k.next_expected, k.parked_since_us FROM (
                    SELECT key COLLATE "C" AS key, count(*) AS held, min(held_at_us) AS oldest, min(sequence) AS lowest
                    FROM held_messages WHERE stream = \(stream.rawValue) GROUP BY 1) AS h
                LEFT JOIN keys k ON k.stream = \(stream.rawValue) AND k.key = h.key
                ORDER BY 1
                """,
                logger
            ).map { row in
                HeldKeySummary(
                    key: try row.value("key"), heldEvents: Int(try row.value("held", as: Int64.self)),
                    oldestHeldAt: StoreTime.date(microseconds: try row.value("oldest")), lowestHeld: try row.value("lowest"),
                    nextExpected: try row.value("next_expected"), isParked: try row.value("parked_since_us", as: Int64?.self) != nil)
            }
        }
    }

    public func eventRecord(eventId: String) async throws -> EventRecord? {
        try await pool.run("eventRecord") { connection, logger in
            guard let row = try await connection.rows(
                """
                SELECT state, fingerprint, document_id, stream, key, sequence, created_at_us, updated_at_us
                FROM dedup_records WHERE event_id = \(eventId)
                """,
                logger
            ).first else { return nil }
            guard let stream = EventStream(rawValue: try row.value("stream", as: String.self)) else {
                throw StoreError(code: .corrupt, message: "dedup record \(eventId.prefix(128)) names an unknown stream")
            }
            return EventRecord(
                eventId: eventId, stream: stream, key: try row.value("key"), sequence: try row.value("sequence"),
                record: try StoredDedupState.record(
                    state: try row.value("state"), fingerprintHex: try row.value("fingerprint"), eventId: eventId),
                documentId: try row.value("document_id", as: String?.self),
                firstRecordedAt: StoreTime.date(microseconds: try row.value("created_at_us")),
                lastRecordedAt: StoreTime.date(microseconds: try row.value("updated_at_us")))
        }
    }

    // MARK: Writes

    public func commit(_ change: KeyChange) async throws {
        try change.validate()
        // Replaying a commit whose COMMIT answer was lost is safe: if it had applied, the version
        // check now fails (versionConflict: read again, decide again), or, without a new state,
        // the same upserts run again.
        try await pool.run("commit", transientCode: .versionConflict) { connection, logger in
            try await connection.transaction("BEGIN ISOLATION LEVEL READ COMMITTED", logger) { connection in
                try await Self.apply(change, connection, logger)
            }
        }
    }

    public func pruneProcessed(olderThan cutoff: Date) async throws -> Int {
        let pruned = try await StorePruning.inBatches { limit in
            try await pool.run("pruneProcessed") { connection, logger in
                try await connection.count(
                    """
                    WITH pruned AS (
                        DELETE FROM dedup_records WHERE event_id IN (
                            SELECT event_id FROM dedup_records
                            WHERE state = 'posted' AND updated_at_us < \(StoreTime.microseconds(cutoff))
                            LIMIT \(limit)
                        )
                        RETURNING 1
                    )
                    SELECT count(*) AS n FROM pruned
                    """,
                    logger
                )
            }
        }
        if pruned > 0 {
            logger.debug("pruned posted dedup records", metadata: ["store.pruned": "\(pruned)"])
        }
        return pruned
    }

    // MARK: Internals


    /// Runs inside one `READ COMMITTED` transaction: any throw rolls everything back.
    private static func apply(_ change: KeyChange, _ db: PostgresConnection, _ logger: Logger) async throws {
        let stream = change.stream.rawValue
        let key = change.key
        let now = StoreTime.microseconds(change.now)

        // 1. The version check, which also locks the key row until the end of the transaction.
        if let state = change.newState {
            let parkedSince = state.parked.map { StoreTime.microseconds($0.since) }
            let parkReason = state.parked?.reason.rawValue
            let skipped = StoredSkippedGaps.text(state.skipped)
            let written: [PostgresRandomAccessRow]
            if change.expectedVersion == 0 {
                written = try await db.rows(
                    """
                    INSERT INTO keys (
                        stream, key, version, next_expected, parked_since_us, park_reason, skipped, claimed_by, claimed_sequence,
                        updated_at_us)
                    VALUES (
                        \(stream), \(key), 1, \(state.nextExpected), \(parkedSince), \(parkReason), \(skipped),
                        \(state.claim?.eventId), \(state.claim?.sequence), \(now))
                    ON CONFLICT (stream, key) DO NOTHING
                    RETURNING version
                    """,
                    logger
                )
            } else {
                // A concurrent writer's row lock makes this wait; then the WHERE is evaluated
                // again on the row it committed, so the later of two racing commits matches nothing.
                written = try await db.rows(
                    """
                    UPDATE keys SET version = version + 1, next_expected = \(state.nextExpected),
                        parked_since_us = \(parkedSince), park_reason = \(parkReason), skipped = \(skipped),
                        claimed_by = \(state.claim?.eventId), claimed_sequence = \(state.claim?.sequence), updated_at_us = \(now)
                    WHERE stream = \(stream) AND key = \(key) AND version = \(change.expectedVersion)
                    RETURNING version
                    """,
                    logger
                )
            }
            if written.isEmpty {
                let current = try await db.rows("SELECT version FROM keys WHERE stream = \(stream) AND key = \(key)", logger)
                    .first?.value("version", as: Int64.self) ?? 0
                throw conflict(change, current: current)
            }
        } else {
            // FOR SHARE: nobody moves the key (nor its held rows) until this commits.
            let current = try await db.rows(
                "SELECT version FROM keys WHERE stream = \(stream) AND key = \(key) FOR SHARE", logger
            ).first?.value("version", as: Int64.self) ?? 0
            guard current == change.expectedVersion else { throw conflict(change, current: current) }
        }

        // 2. The held messages, and the check that the state's `held` describes them.
        if let sequence = change.deleteHeldSequence {
            let deleted = try await db.rows(
                """
                DELETE FROM held_messages WHERE stream = \(stream) AND key = \(key) AND sequence = \(sequence)
                RETURNING sequence
                """,
                logger
            )
            if change.newState == nil, !deleted.isEmpty {
                throw StoreError(
                    code: .invalidChange,
                    message: "key \(key.prefix(128)): deleting held sequence \(sequence) needs the key's new state without it"
                )
            }
        }
        try await insertHeld([change], stream: change.stream, db, logger)
        if change.newState != nil {
            try await verifyHeld(stream: change.stream, [change], db, logger)
        }

        // 3. The dedup records.
        for write in change.records {
            guard let (state, fingerprint) = StoredDedupState.split(write.record) else { continue }
            try await db.execute(
                """
                INSERT INTO dedup_records (event_id, state, fingerprint, document_id, stream, key, sequence, created_at_us, updated_at_us)
                VALUES (\(write.eventId), \(state.rawValue), \(fingerprint.hex), \(write.documentId), \(stream), \(key),
                    \(write.sequence), \(now), \(now))
                ON CONFLICT (event_id) DO UPDATE SET
                    state = excluded.state, fingerprint = excluded.fingerprint, document_id = excluded.document_id,
                    stream = excluded.stream, key = excluded.key, sequence = excluded.sequence,
                    updated_at_us = excluded.updated_at_us
                """,
                logger
            )
        }
    }

    /// Inserts the messages of the events `changes` hold, in one statement; one already held at
    /// its sequence is refused.
    static func insertHeld(_ changes: [KeyChange], stream: EventStream, _ db: PostgresConnection, _ logger: Logger) async throws {
        let held = changes.flatMap { change in change.insertHeld.map { (key: change.key, message: $0) } }
        guard !held.isEmpty else { return }
        let headers = try held.map { String(decoding: try StoredHeaders.json($0.message.headers), as: UTF8.self) }
        let inserted = try await db.rows(
            PreparedRound<InsertHeld>(InsertHeld.query(
                stream: stream.rawValue, keys: held.map(\.key), sequences: held.map(\.message.sequence),
                eventIds: held.map(\.message.eventId), heldAt: held.map { StoreTime.microseconds($0.message.heldAt) },
                routingKeys: held.map(\.message.routingKey), headers: headers, bodies: held.map { ByteBuffer(bytes: $0.message.body) })),
            logger)
        guard inserted.count == held.count else {
            var stored = Set<String>()
            for row in inserted { stored.insert("\(try row.value("key", as: String.self))\u{0}\(try row.value("sequence", as: Int64.self))") }
            let refused = held.first { !stored.contains("\($0.key)\u{0}\($0.message.sequence)") }
            throw StoreError(
                code: .invalidChange,
                message: "key \((refused?.key ?? "?").prefix(128)) already holds a message for sequence \(refused.map { String($0.message.sequence) } ?? "?")"
            )
        }
    }

    /// Checks, in one statement, that each change's new state's `held` describes the key's held
    /// rows after the changes (``StoredHeldEvents``); every change must have a new state.
    static func verifyHeld(stream: EventStream, _ changes: [KeyChange], _ db: PostgresConnection, _ logger: Logger) async throws {
        guard !changes.isEmpty else { return }
        var lowKeys: [String] = []
        var lowCounts: [Int64] = []
        var atKeys: [String] = []
        var atSequences: [Int64] = []
        for change in changes {
            let (lowestCount, sequences) = StoredHeldEvents.check(change.newState!.held)
            lowKeys.append(change.key)
            lowCounts.append(Int64(lowestCount))
            atKeys += Array(repeating: change.key, count: sequences.count)
            atSequences += sequences
        }
        var lowest: [String: [(sequence: Int64, event: KeyState.HeldEvent)]] = [:]
        var rowsAt: [String: [Int64: KeyState.HeldEvent]] = [:]
        for row in try await db.rows(
            PreparedRound<HeldView>(HeldView.query(
                stream: stream.rawValue, lowKeys: lowKeys, lowCounts: lowCounts, atKeys: atKeys, atSequences: atSequences)),
            logger
        ) {
            let key = try row.value("key", as: String.self)
            let sequence = try row.value("sequence", as: Int64.self)
            let event = KeyState.HeldEvent(eventId: try row.value("event_id"), heldAt: StoreTime.date(microseconds: try row.value("held_at_us")))
            if try row.value("low", as: Bool.self) { lowest[key, default: []].append((sequence, event)) } else { rowsAt[key, default: [:]][sequence] = event }
        }
        for change in changes {
            try StoredHeldEvents.verify(
                change.newState!.held, key: change.key,
                lowestRows: (lowest[change.key] ?? []).sorted { $0.sequence < $1.sequence }, rowsAt: rowsAt[change.key] ?? [:])
        }
    }

    /// Inserts held messages; returns the key and sequence of each inserted (one already held
    /// at its sequence is not).
    enum InsertHeld: RoundStatement {
        static func query(
            stream: String, keys: [String], sequences: [Int64], eventIds: [String], heldAt: [Int64], routingKeys: [String],
            headers: [String], bodies: [ByteBuffer]
        ) -> PostgresQuery {
            """
            INSERT INTO held_messages (stream, key, sequence, event_id, held_at_us, routing_key, headers, body)
            SELECT \(stream), h.key, h.sequence, h.event_id, h.held_at_us, h.routing_key, h.headers::jsonb, h.body
            FROM unnest(\(keys)::text[], \(sequences)::int8[], \(eventIds)::text[], \(heldAt)::int8[], \(routingKeys)::text[],
                \(headers)::text[], \(bodies)::bytea[])
                AS h(key, sequence, event_id, held_at_us, routing_key, headers, body)
            ON CONFLICT (stream, key, sequence) DO NOTHING
            RETURNING key, sequence
            """
        }
        static let sql = query(stream: "", keys: [], sequences: [], eventIds: [], heldAt: [], routingKeys: [], headers: [], bodies: []).sql
    }

    /// The held rows a verification looks at: each key's lowest `n`, and the rows at the asked sequences.
    enum HeldView: RoundStatement {
        static func query(stream: String, lowKeys: [String], lowCounts: [Int64], atKeys: [String], atSequences: [Int64]) -> PostgresQuery {
            """
            SELECT true AS low, r.key, h.sequence, h.event_id, h.held_at_us
            FROM unnest(\(lowKeys)::text[], \(lowCounts)::int8[]) AS r(key, n) CROSS JOIN LATERAL (
                SELECT sequence, event_id, held_at_us FROM held_messages WHERE stream = \(stream) AND key = r.key
                ORDER BY sequence LIMIT r.n) AS h
            UNION ALL
            SELECT false, h.key, h.sequence, h.event_id, h.held_at_us
            FROM unnest(\(atKeys)::text[], \(atSequences)::int8[]) AS a(key, sequence)
            JOIN held_messages h ON h.stream = \(stream) AND h.key = a.key AND h.sequence = a.sequence
            """
        }
        static let sql = query(stream: "", lowKeys: [], lowCounts: [], atKeys: [], atSequences: []).sql
    }

    private static func conflict(_ change: KeyChange, current: Int64) -> StoreError {
        StoreError(
            code: .versionConflict,
            message: "key \(change.key.prefix(128)) is at version \(current), not \(change.expectedVersion)"
        )
    }

    static func parking(since: Int64?, reason: String?, key: String) throws -> KeyState.Parking? {
        guard let since else { return nil }
        let reasonText = reason ?? ""
        guard let reason = KeyState.ParkReason(rawValue: reasonText) else {
            throw StoreError(code: .corrupt, message: "key \(key.prefix(128)) has unknown park reason '\(reasonText.prefix(32))'")
        }
        return KeyState.Parking(since: StoreTime.date(microseconds: since), reason: reason)
    }

    /// Connects on a connection of its own, migrates, disconnects; retries what a server that
    /// is not up yet answers until ``PostgresStoreConfiguration/openTimeout``.
    private static func migrateOnOpen(
        _ configuration: PostgresStoreConfiguration, logger: Logger
    ) async throws(StoreError) -> [String] {
        let deadline = ContinuousClock.now + configuration.openTimeout
        var attempt = 1
        while true {
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: try configuration.connectionConfiguration(), id: 1, logger: logger
                )
                do {
                    let applied = try await migrate(connection, migrations, logger: logger)
                    try? await connection.close()
                    return applied
                } catch {
                    try? await connection.close()
                    throw error
                }
            } catch {
                let failure = PostgresPool.classify(error, operation: "open \(configuration)", transientCode: .migration)
                let delay = configuration.delay(beforeRetry: attempt)
                guard failure.retryable, ContinuousClock.now + delay < deadline, !Task.isCancelled else {
                    throw failure.error
                }
                logger.info(
                    "cannot reach the PostgreSQL store yet, retrying",
                    metadata: ["store": "\(configuration)", "store.error": "\(failure.error.message)", "store.attempt": "\(attempt)"]
                )
                try? await Task.sleep(for: delay)
                attempt += 1
            }
        }
    }
}

extension PostgresConnection {
    /// The `n` column of the single row `query` returns.
    func count(_ query: PostgresQuery, _ logger: Logger) async throws -> Int {
        Int(try await rows(query, logger).first?.value("n", as: Int64.self) ?? 0)
    }
}
