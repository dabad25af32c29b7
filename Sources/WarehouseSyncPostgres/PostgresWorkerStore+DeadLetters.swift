import Foundation
import Logging
import PostgresNIO
import WarehouseSyncCore
import WarehouseSyncStore

/// The dead-letter table (migration `store-2-dead-letters`, docs/store.md "Dead letters"), with
/// the SQLite store's semantics.
extension PostgresWorkerStore {
    public func recordDeadLetter(_ letter: NewDeadLetter) async throws -> DeadLetterRecord {
        try letter.validate()
        let identity = letter.identity
        let headers = String(decoding: try StoredHeaders.json(letter.headers), as: UTF8.self)
        let failedAt = StoreTime.microseconds(letter.failedAt)
        // Idempotent: a replay after a lost COMMIT answer is a redelivery (same failedAt), which
        // changes nothing.
        let record = try await pool.run("recordDeadLetter") { connection, logger in
            try await connection.transaction("BEGIN ISOLATION LEVEL READ COMMITTED", logger) { connection in
                // A repeat only counts when it failed later than the last failure recorded. Two
                // replay workers draining the same letter: the second waits for the first's row,
                // then finds it (ON CONFLICT), so there is one row.
                try await connection.execute(
                    """
                    INSERT INTO dead_letters (identity, stream, reason, error, event_id, key, sequence, warehouse,
                        original_exchange, original_routing_key, headers, body, first_failed_at_us, last_failed_at_us,
                        failure_count, replay_count, status, status_changed_at_us)
                    VALUES (\(identity), \(letter.stream?.rawValue), \(letter.reason.rawValue), \(letter.error), \(letter.eventId),
                        \(letter.key), \(letter.sequence), \(letter.warehouse), \(letter.originalExchange),
                        \(letter.originalRoutingKey), \(headers)::jsonb, \(ByteBuffer(bytes: letter.body)), \(failedAt),
                        \(failedAt), 1, 0, 'pending', \(failedAt))
                    ON CONFLICT (identity) DO UPDATE SET
                        failure_count = dead_letters.failure_count + 1,
                        last_failed_at_us = excluded.last_failed_at_us,
                        error = excluded.error,
                        status_changed_at_us = CASE WHEN dead_letters.status = 'pending' THEN dead_letters.status_changed_at_us
                            ELSE excluded.status_changed_at_us END,
                        status = 'pending'
                    WHERE excluded.last_failed_at_us > dead_letters.last_failed_at_us
                    """,
                    logger
                )
                guard let row = try await connection.rows(
                    "SELECT \(unescaped: Self.deadLetterColumns) FROM dead_letters WHERE identity = \(identity)", logger
                ).first else {
                    throw StoreError(code: .corrupt, message: "dead letter \(identity) is not stored after its insert")
                }
                return try Self.deadLetterRecord(row)
            }
        }
        logger.debug(
            "recorded dead letter",
            metadata: ["store.deadLetter": "\(record.id)", "store.failureCount": "\(record.failureCount)"]
        )
        return record
    }

    public func deadLetters(matching filter: DeadLetterFilter, limit: Int) async throws -> [DeadLetterRecord] {
        guard limit > 0 else {
            throw StoreError(code: .invalidChange, message: "dead letter limit \(limit) is not positive")
        }
        var bindings = PostgresBindings()
        let condition = Self.whereClause(filter, &bindings)
        bindings.append(Int64(limit))
        let query = PostgresQuery(
            unsafeSQL: "SELECT \(Self.deadLetterColumns) FROM dead_letters WHERE \(condition) ORDER BY id LIMIT $\(bindings.count)",
            binds: bindings
        )
        return try await pool.run("deadLetters") { connection, logger in
            try await connection.rows(query, logger).map(Self.deadLetterRecord)
        }
    }

    public func deadLetter(id: Int64) async throws -> DeadLetterRecord? {
        try await pool.run("deadLetter") { connection, logger in
            try await connection.rows(
                "SELECT \(unescaped: Self.deadLetterColumns) FROM dead_letters WHERE id = \(id)", logger
            ).first.map(Self.deadLetterRecord)
        }
    }

    @discardableResult
    public func markReplayed(id: Int64, by replayedBy: String, at: Date) async throws -> DeadLetterRecord {
        guard !replayedBy.isEmpty else {
            throw StoreError(code: .invalidChange, message: "dead letter \(id): a replay needs who replayed it")
        }
        let time = StoreTime.microseconds(at)
        // Counts a replay: not run again when its COMMIT's answer was lost.
        return try await updateUnpurged(id: id, action: "replay") { connection, logger in
            try await connection.execute(
                """
                UPDATE dead_letters SET replay_count = replay_count + 1, last_replayed_at_us = \(time),
                    last_replayed_by = \(replayedBy), status = 'replayed', status_changed_at_us = \(time)
                WHERE id = \(id)
                """,
                logger
            )
            try await Self.insertAudit(
                connection, NewAuditEntry(at: at, actor: replayedBy, action: .replay, deadLetterId: id, detail: "replayed"), logger
            )
        }
    }

    @discardableResult
    public func updateDeadLetterBody(id: Int64, body: [UInt8], by editedBy: String, at: Date) async throws -> DeadLetterRecord {
        guard !editedBy.isEmpty else {
            throw StoreError(code: .invalidChange, message: "dead letter \(id): an edit needs who edited it")
        }
        let time = StoreTime.microseconds(at)
        return try await updateUnpurged(id: id, action: "edit") { connection, logger in
            let previous = try await connection.rows("SELECT body FROM dead_letters WHERE id = \(id)", logger).first?.bytes("body") ?? []
            try await connection.execute(
                "UPDATE dead_letters SET body = \(ByteBuffer(bytes: body)), body_edited_at_us = \(time) WHERE id = \(id)",
                logger
            )
            try await Self.insertAudit(
                connection,
                NewAuditEntry(
                    at: at, actor: editedBy, action: .edit, deadLetterId: id,
                    detail: "body replaced (\(previous.count) → \(body.count) bytes)", previousBody: previous
                ),
                logger
            )
        }
    }

    @discardableResult
    public func purgeDeadLetters(ids: [Int64], by purgedBy: String, at: Date) async throws -> Int {
        guard !ids.isEmpty else { return 0 }
        var bindings = PostgresBindings()
        bindings.append(ids)
        return try await purge(condition: "id = ANY($1)", bindings: bindings, by: purgedBy, at: at)
    }

    @discardableResult
    public func purgeDeadLetters(matching filter: DeadLetterFilter, by purgedBy: String, at: Date) async throws -> Int {
        var bindings = PostgresBindings()
        let condition = Self.whereClause(filter, &bindings)
        return try await purge(condition: condition, bindings: bindings, by: purgedBy, at: at)
    }

    /// Purges the unpurged letters matching `condition` (whose parameters are `bindings`), with
    /// an audit entry each, in one statement.
    private func purge(condition: String, bindings: PostgresBindings, by purgedBy: String, at: Date) async throws -> Int {
        guard !purgedBy.isEmpty else {
            throw StoreError(code: .invalidChange, message: "a purge needs who purged")
        }
        var bindings = bindings
        bindings.append(StoreTime.microseconds(at))
        let time = "$\(bindings.count)"
        bindings.append(purgedBy)
        let actor = "$\(bindings.count)"
        let query = PostgresQuery(
            unsafeSQL: """
                WITH purged AS (
                    UPDATE dead_letters SET status = 'purged', status_changed_at_us = \(time)
                    WHERE status <> 'purged' AND \(condition)
                    RETURNING id
                ), audited AS (
                    INSERT INTO audit_log (at_us, actor, action, dead_letter_id, detail)
                    SELECT \(time), \(actor), 'purge', id, 'purged' FROM purged ORDER BY id
                    RETURNING 1
                )
                SELECT count(*) AS n FROM audited
                """,
            binds: bindings
        )
        // In a transaction, so that a lost COMMIT answer is not replayed (the count would be 0).
        return try await pool.run("purgeDeadLetters", replay: .onlyIfNotCommitted) { connection, logger in
            try await connection.transaction("BEGIN ISOLATION LEVEL READ COMMITTED", logger) { connection in
                try await connection.count(query, logger)
            }
        }
    }

    // MARK: Audit

    public func recordAudit(_ entry: NewAuditEntry) async throws {
        try Self.validate(entry)
        try await pool.run("recordAudit", replay: .onlyIfNotCommitted) { connection, logger in
            try await connection.transaction("BEGIN ISOLATION LEVEL READ COMMITTED", logger) { connection in
                try await Self.insertAudit(connection, entry, logger)
            }
        }
    }

    public func auditTrail(deadLetterId: Int64?, limit: Int) async throws -> [AuditEntry] {
        let limit = Int64(max(0, limit))
        return try await pool.run("auditTrail") { connection, logger in
            let rows = try await connection.rows(
                """
                SELECT id, at_us, actor, action, dead_letter_id, stream, key, detail, previous_body FROM audit_log
                WHERE \(deadLetterId)::bigint IS NULL OR dead_letter_id = \(deadLetterId)
                ORDER BY id DESC LIMIT \(limit)
                """,
                logger
            )
            return try rows.reversed().map { row in
                let actionText: String = try row.value("action")
                guard let action = AuditAction(rawValue: actionText) else {
                    throw StoreError(code: .corrupt, message: "audit entry has unknown action '\(actionText.prefix(32))'")
                }
                let streamText: String? = try row.value("stream")
                let previousBody = try row.value("previous_body", as: ByteBuffer?.self).map { Array($0.readableBytesView) }
                return AuditEntry(
                    id: try row.value("id"),
                    entry: NewAuditEntry(
                        at: StoreTime.date(microseconds: try row.value("at_us")), actor: try row.value("actor"), action: action,
                        deadLetterId: try row.value("dead_letter_id"), stream: streamText.flatMap(EventStream.init(rawValue:)),
                        key: try row.value("key"), detail: try row.value("detail"), previousBody: previousBody
                    )
                )
            }
        }
    }

    static func validate(_ entry: NewAuditEntry) throws(StoreError) {
        guard !entry.actor.isEmpty else { throw StoreError(code: .invalidChange, message: "an audit entry needs an actor") }
    }

    static func insertAudit(_ connection: PostgresConnection, _ entry: NewAuditEntry, _ logger: Logger) async throws {
        try validate(entry)
        try await connection.execute(
            """
            INSERT INTO audit_log (at_us, actor, action, dead_letter_id, stream, key, detail, previous_body)
            VALUES (\(StoreTime.microseconds(entry.at)), \(entry.actor), \(entry.action.rawValue), \(entry.deadLetterId),
                \(entry.stream?.rawValue), \(entry.key), \(entry.detail), \(entry.previousBody.map { ByteBuffer(bytes: $0) }))
            """,
            logger
        )
    }

    public func pruneDeadLetters(olderThan cutoff: Date) async throws -> Int {
        let pruned = try await StorePruning.inBatches { limit in
            try await pool.run("pruneDeadLetters") { connection, logger in
                try await connection.count(
                    """
                    WITH pruned AS (
                        DELETE FROM dead_letters WHERE id IN (
                            SELECT id FROM dead_letters
                            WHERE status <> 'pending' AND status_changed_at_us < \(StoreTime.microseconds(cutoff))
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
            logger.debug("pruned dead letters", metadata: ["store.pruned": "\(pruned)"])
        }
        return pruned
    }

    // MARK: Internals

    static let deadLetterColumns = """
        id, identity, stream, reason, error, event_id, key, sequence, warehouse, original_exchange, original_routing_key,
        headers::text AS headers, body, first_failed_at_us, last_failed_at_us, failure_count, replay_count,
        last_replayed_at_us, last_replayed_by, body_edited_at_us, status, status_changed_at_us
        """


    /// Locks letter `id`, checks that it exists and is not purged, runs `update`, returns the
    /// row after it.
    /// Each writes an audit entry: not run again when its COMMIT's answer was lost.
    private func updateUnpurged(
        id: Int64,
        action: String,
        _ update: @escaping @Sendable (PostgresConnection, Logger) async throws -> Void
    ) async throws -> DeadLetterRecord {
        try await pool.run("dead letter \(action)", replay: .onlyIfNotCommitted) { connection, logger in
            try await connection.transaction("BEGIN ISOLATION LEVEL READ COMMITTED", logger) { connection in
                guard let status = try await connection.rows(
                    "SELECT status FROM dead_letters WHERE id = \(id) FOR UPDATE", logger
                ).first?.value("status", as: String.self) else {
                    throw StoreError(code: .notFound, message: "no dead letter \(id)")
                }
                guard status != DeadLetterStatus.purged.rawValue else {
                    throw StoreError(code: .invalidChange, message: "dead letter \(id) is purged: no \(action)")
                }
                try await update(connection, logger)
                guard let row = try await connection.rows(
                    "SELECT \(unescaped: Self.deadLetterColumns) FROM dead_letters WHERE id = \(id)", logger
                ).first else {
                    throw StoreError(code: .notFound, message: "no dead letter \(id)")
                }
                return try Self.deadLetterRecord(row)
            }
        }
    }

    /// The SQL condition (`TRUE` for none) for `filter`, its values appended to `bindings` as
    /// `$n` parameters.
    static func whereClause(_ filter: DeadLetterFilter, _ bindings: inout PostgresBindings) -> String {
        var conditions: [String] = []
        func add(_ column: String, _ op: String, _ value: String?) {
            guard let value else { return }
            bindings.append(value)
            conditions.append("\(column) \(op) $\(bindings.count)")
        }
        func add(_ column: String, _ op: String, _ value: Int64?) {
            guard let value else { return }
            bindings.append(value)
            conditions.append("\(column) \(op) $\(bindings.count)")
        }
        add("stream", "=", filter.stream?.rawValue)
        add("reason", "=", filter.reason?.rawValue)
        add("warehouse", "=", filter.warehouse)
        add("key", "=", filter.key)
        add("event_id", "=", filter.eventId)
        add("last_failed_at_us", ">=", filter.failedFrom.map(StoreTime.microseconds))
        add("last_failed_at_us", "<", filter.failedBefore.map(StoreTime.microseconds))
        add("status", "=", filter.status?.rawValue)
        add("id", ">", filter.afterId)
        return conditions.isEmpty ? "TRUE" : conditions.joined(separator: " AND ")
    }

    static func deadLetterRecord(_ row: PostgresRandomAccessRow) throws -> DeadLetterRecord {
        let id: Int64 = try row.value("id")
        return DeadLetterRecord(
            id: id,
            identity: try row.value("identity"),
            stream: try StoredDeadLetter.stream(try row.value("stream"), id: id),
            reason: try StoredDeadLetter.reason(try row.value("reason"), id: id),
            error: try row.value("error"),
            eventId: try row.value("event_id"),
            key: try row.value("key"),
            sequence: try row.value("sequence"),
            warehouse: try row.value("warehouse"),
            originalExchange: try row.value("original_exchange"),
            originalRoutingKey: try row.value("original_routing_key"),
            headers: try StoredDeadLetter.headers(try row.value("headers"), id: id),
            body: try row.bytes("body"),
            firstFailedAt: StoreTime.date(microseconds: try row.value("first_failed_at_us")),
            lastFailedAt: StoreTime.date(microseconds: try row.value("last_failed_at_us")),
            failureCount: try row.value("failure_count"),
            replayCount: try row.value("replay_count"),
            lastReplayedAt: (try row.value("last_replayed_at_us", as: Int64?.self)).map(StoreTime.date(microseconds:)),
            lastReplayedBy: try row.value("last_replayed_by"),
            bodyEditedAt: (try row.value("body_edited_at_us", as: Int64?.self)).map(StoreTime.date(microseconds:)),
            status: try StoredDeadLetter.status(try row.value("status"), id: id),
            statusChangedAt: StoreTime.date(microseconds: try row.value("status_changed_at_us"))
        )
    }
}
