import Foundation
import WarehouseSyncCore
import WarehouseSyncSQLite
import WarehouseSyncStore

/// The dead-letter table (migration `store-2-dead-letters`, docs/store.md "Dead letters").
extension SQLiteWorkerStore {
    public func recordDeadLetter(_ letter: NewDeadLetter) async throws -> DeadLetterRecord {
        try letter.validate()
        let identity = letter.identity
        let headers = String(decoding: try StoredHeaders.json(letter.headers), as: UTF8.self)
        let failedAt = SQLiteValue.integer(StoreTime.microseconds(letter.failedAt))
        let record = try await mapped {
            try await database.write { db in
                // A repeat only counts when it failed later than the last failure recorded: a
                // redelivery of the same letter (its ack was lost) changes nothing.
                try db.execute(
                    """
                    INSERT INTO dead_letters (identity, stream, reason, error, event_id, key, sequence, warehouse,
                        original_exchange, original_routing_key, headers, body, first_failed_at_us, last_failed_at_us,
                        failure_count, replay_count, status, status_changed_at_us)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, 'pending', ?)
                    ON CONFLICT (identity) DO UPDATE SET
                        failure_count = failure_count + 1,
                        last_failed_at_us = excluded.last_failed_at_us,
                        error = excluded.error,
                        status_changed_at_us = CASE WHEN status = 'pending' THEN status_changed_at_us
                            ELSE excluded.status_changed_at_us END,
                        status = 'pending'
                    WHERE excluded.last_failed_at_us > dead_letters.last_failed_at_us
                    """,
                    [
                        .text(identity), SQLiteValue(letter.stream?.rawValue), .text(letter.reason.rawValue), .text(letter.error),
                        SQLiteValue(letter.eventId), SQLiteValue(letter.key), SQLiteValue(letter.sequence),
                        SQLiteValue(letter.warehouse), .text(letter.originalExchange), .text(letter.originalRoutingKey),
                        .text(headers), .blob(letter.body), failedAt, failedAt, failedAt,
                    ]
                )
                guard let row = try db.queryFirst(
                    "SELECT \(Self.deadLetterColumns) FROM dead_letters WHERE identity = ?", [.text(identity)]
                ) else {
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
        let (condition, bindings) = Self.whereClause(filter)
        return try await mapped {
            try await database.read { db in
                try db.query(
                    "SELECT \(Self.deadLetterColumns) FROM dead_letters WHERE \(condition) ORDER BY id LIMIT ?",
                    bindings + [.integer(Int64(limit))]
                ).map(Self.deadLetterRecord)
            }
        }
    }

    public func deadLetter(id: Int64) async throws -> DeadLetterRecord? {
        try await mapped {
            try await database.read { db in
                try db.queryFirst("SELECT \(Self.deadLetterColumns) FROM dead_letters WHERE id = ?", [.integer(id)])
                    .map(Self.deadLetterRecord)
            }
        }
    }

    @discardableResult
    public func markReplayed(id: Int64, by replayedBy: String, at: Date) async throws -> DeadLetterRecord {
        guard !replayedBy.isEmpty else {
            throw StoreError(code: .invalidChange, message: "dead letter \(id): a replay needs who replayed it")
        }
        return try await updateUnpurged(id: id, action: "replay") { db in
            try db.execute(
                """
                UPDATE dead_letters SET replay_count = replay_count + 1, last_replayed_at_us = ?, last_replayed_by = ?,
                    status = 'replayed', status_changed_at_us = ?
                WHERE id = ?
                """,
                [.integer(StoreTime.microseconds(at)), .text(replayedBy), .integer(StoreTime.microseconds(at)), .integer(id)]
            )
            try Self.insertAudit(db, NewAuditEntry(at: at, actor: replayedBy, action: .replay, deadLetterId: id, detail: "replayed"))
        }
    }

    @discardableResult
    public func updateDeadLetterBody(id: Int64, body: [UInt8], by editedBy: String, at: Date) async throws -> DeadLetterRecord {
        guard !editedBy.isEmpty else {
            throw StoreError(code: .invalidChange, message: "dead letter \(id): an edit needs who edited it")
        }
        return try await updateUnpurged(id: id, action: "edit") { db in
            let previous = try db.queryFirst("SELECT body FROM dead_letters WHERE id = ?", [.integer(id)])?.blob("body") ?? []
            try db.execute(
                "UPDATE dead_letters SET body = ?, body_edited_at_us = ? WHERE id = ?",
                [.blob(body), .integer(StoreTime.microseconds(at)), .integer(id)]
            )
            try Self.insertAudit(db, NewAuditEntry(
                at: at, actor: editedBy, action: .edit, deadLetterId: id,
                detail: "body replaced (\(previous.count) → \(body.count) bytes)", previousBody: previous))
        }
    }

    @discardableResult
    public func purgeDeadLetters(ids: [Int64], by purgedBy: String, at: Date) async throws -> Int {
        guard !ids.isEmpty else { return 0 }
        // One statement for any number of ids: the list goes in as a JSON array.
        let list = "[" + ids.map(String.init).joined(separator: ",") + "]"
        return try await purge(condition: "id IN (SELECT value FROM json_each(?))", bindings: [.text(list)], by: purgedBy, at: at)
    }

    @discardableResult
    public func purgeDeadLetters(matching filter: DeadLetterFilter, by purgedBy: String, at: Date) async throws -> Int {
        let (condition, bindings) = Self.whereClause(filter)
        return try await purge(condition: condition, bindings: bindings, by: purgedBy, at: at)
    }

    /// Purges the unpurged letters matching `condition`, with an audit entry each, in one write.
    private func purge(condition: String, bindings: [SQLiteValue], by purgedBy: String, at: Date) async throws -> Int {
        guard !purgedBy.isEmpty else {
            throw StoreError(code: .invalidChange, message: "a purge needs who purged")
        }
        return try await mapped {
            try await database.write { db in
                let ids = try db.query("SELECT id FROM dead_letters WHERE status <> 'purged' AND \(condition)", bindings)
                    .map { try $0.int64("id") }
                for id in ids {
                    try db.execute(
                        "UPDATE dead_letters SET status = 'purged', status_changed_at_us = ? WHERE id = ?",
                        [.integer(StoreTime.microseconds(at)), .integer(id)])
                    try Self.insertAudit(db, NewAuditEntry(at: at, actor: purgedBy, action: .purge, deadLetterId: id, detail: "purged"))
                }
                return ids.count
            }
        }
    }

    public func recordAudit(_ entry: NewAuditEntry) async throws {
        try await mapped {
            try await database.write { db in try Self.insertAudit(db, entry) }
        }
    }

    public func auditTrail(deadLetterId: Int64?, limit: Int) async throws -> [AuditEntry] {
        try await mapped {
            try await database.read { db in
                let rows = try db.query(
                    """
                    SELECT id, at_us, actor, action, dead_letter_id, stream, key, detail, previous_body FROM audit_log
                    WHERE ? IS NULL OR dead_letter_id = ? ORDER BY id DESC LIMIT ?
                    """,
                    [SQLiteValue(deadLetterId), SQLiteValue(deadLetterId), .integer(Int64(max(0, limit)))])
                return try rows.reversed().map { row in
                    let actionText = try row.string("action")
                    guard let action = AuditAction(rawValue: actionText) else {
                        throw StoreError(code: .corrupt, message: "audit entry has unknown action '\(actionText.prefix(32))'")
                    }
                    let streamText = try row.optionalString("stream")
                    return AuditEntry(id: try row.int64("id"), entry: NewAuditEntry(
                        at: StoreTime.date(microseconds: try row.int64("at_us")), actor: try row.string("actor"), action: action,
                        deadLetterId: try row.optionalInt64("dead_letter_id"), stream: streamText.flatMap(EventStream.init(rawValue:)),
                        key: try row.optionalString("key"), detail: try row.string("detail"),
                        previousBody: row["previous_body"].flatMap { if case .blob(let bytes) = $0 { bytes } else { nil } }))
                }
            }
        }
    }

    static func insertAudit(_ db: SQLiteConnection, _ entry: NewAuditEntry) throws {
        guard !entry.actor.isEmpty else { throw StoreError(code: .invalidChange, message: "an audit entry needs an actor") }
        try db.execute(
            """
            INSERT INTO audit_log (at_us, actor, action, dead_letter_id, stream, key, detail, previous_body)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .integer(StoreTime.microseconds(entry.at)), .text(entry.actor), .text(entry.action.rawValue),
                SQLiteValue(entry.deadLetterId), SQLiteValue(entry.stream?.rawValue), SQLiteValue(entry.key), .text(entry.detail),
                entry.previousBody.map { .blob($0) } ?? .null,
            ])
    }

    public func pruneDeadLetters(olderThan cutoff: Date) async throws -> Int {
        let pruned = try await StorePruning.inBatches { limit in
            try await mapped {
                try await database.write { db in
                    try db.execute(
                        """
                        DELETE FROM dead_letters WHERE id IN (
                            SELECT id FROM dead_letters WHERE status <> 'pending' AND status_changed_at_us < ? LIMIT ?
                        )
                        """,
                        [.integer(StoreTime.microseconds(cutoff)), .integer(Int64(limit))]
                    )
                }
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
        headers, body, first_failed_at_us, last_failed_at_us, failure_count, replay_count, last_replayed_at_us,
        last_replayed_by, body_edited_at_us, status, status_changed_at_us
        """


    /// Checks that letter `id` exists and is not purged, runs `update`, returns the row after it.
    private func updateUnpurged(
        id: Int64,
        action: String,
        _ update: @escaping @Sendable (SQLiteConnection) throws -> Void
    ) async throws -> DeadLetterRecord {
        try await mapped {
            try await database.write { db in
                guard let status = try db.queryFirst("SELECT status FROM dead_letters WHERE id = ?", [.integer(id)])?.string("status") else {
                    throw StoreError(code: .notFound, message: "no dead letter \(id)")
                }
                guard status != DeadLetterStatus.purged.rawValue else {
                    throw StoreError(code: .invalidChange, message: "dead letter \(id) is purged: no \(action)")
                }
                try update(db)
                guard let row = try db.queryFirst("SELECT \(Self.deadLetterColumns) FROM dead_letters WHERE id = ?", [.integer(id)]) else {
                    throw StoreError(code: .notFound, message: "no dead letter \(id)")
                }
                return try Self.deadLetterRecord(row)
            }
        }
    }

    /// The SQL condition (`1` for none) and its bindings for `filter`.
    static func whereClause(_ filter: DeadLetterFilter) -> (String, [SQLiteValue]) {
        var conditions: [String] = []
        var bindings: [SQLiteValue] = []
        func add(_ condition: String, _ value: SQLiteValue?) {
            guard let value else { return }
            conditions.append(condition)
            bindings.append(value)
        }
        add("stream = ?", filter.stream.map { .text($0.rawValue) })
        add("reason = ?", filter.reason.map { .text($0.rawValue) })
        add("warehouse = ?", filter.warehouse.map { .text($0) })
        add("key = ?", filter.key.map { .text($0) })
        add("event_id = ?", filter.eventId.map { .text($0) })
        add("last_failed_at_us >= ?", filter.failedFrom.map { .integer(StoreTime.microseconds($0)) })
        add("last_failed_at_us < ?", filter.failedBefore.map { .integer(StoreTime.microseconds($0)) })
        add("status = ?", filter.status.map { .text($0.rawValue) })
        add("id > ?", filter.afterId.map { .integer($0) })
        return (conditions.isEmpty ? "1" : conditions.joined(separator: " AND "), bindings)
    }

    static func deadLetterRecord(_ row: SQLiteRow) throws -> DeadLetterRecord {
        let id = try row.int64("id")
        return DeadLetterRecord(
            id: id,
            identity: try row.string("identity"),
            stream: try StoredDeadLetter.stream(try row.optionalString("stream"), id: id),
            reason: try StoredDeadLetter.reason(try row.string("reason"), id: id),
            error: try row.string("error"),
            eventId: try row.optionalString("event_id"),
            key: try row.optionalString("key"),
            sequence: try row.optionalInt64("sequence"),
            warehouse: try row.optionalString("warehouse"),
            originalExchange: try row.string("original_exchange"),
            originalRoutingKey: try row.string("original_routing_key"),
            headers: try StoredDeadLetter.headers(try row.string("headers"), id: id),
            body: try row.blob("body"),
            firstFailedAt: StoreTime.date(microseconds: try row.int64("first_failed_at_us")),
            lastFailedAt: StoreTime.date(microseconds: try row.int64("last_failed_at_us")),
            failureCount: try row.int64("failure_count"),
            replayCount: try row.int64("replay_count"),
            lastReplayedAt: try row.optionalInt64("last_replayed_at_us").map(StoreTime.date(microseconds:)),
            lastReplayedBy: try row.optionalString("last_replayed_by"),
            bodyEditedAt: try row.optionalInt64("body_edited_at_us").map(StoreTime.date(microseconds:)),
            status: try StoredDeadLetter.status(try row.string("status"), id: id),
            statusChangedAt: StoreTime.date(microseconds: try row.int64("status_changed_at_us"))
        )
    }
}
