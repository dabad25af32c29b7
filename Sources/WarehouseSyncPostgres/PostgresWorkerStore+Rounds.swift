import Foundation
import Logging
import PostgresNIO
import WarehouseSyncCore
import WarehouseSyncStore

/// Rounds (docs/store.md, "Rounds"): the keys of a round read in one statement, its changes
/// written in one transaction of set-based statements, its key rows locked in sorted order so
/// that replicas committing overlapping rounds wait for each other instead of deadlocking.
extension PostgresWorkerStore {
    /// Stands for SQL `NULL` in the arrays a round binds (`NULLIF`): no stored value uses it.
    static let nullInteger = Int64.min

    public func commitDecisions(_ round: [KeyDecision]) async throws -> [Result<any Sendable, any Error>] {
        try KeyDecision.requireDistinctKeys(round)
        guard let stream = round.first?.stream else { return [] }
        guard round.allSatisfy({ $0.stream == stream }) else { return try await commitDecisionsOneByOne(round) }

        var results = [Result<any Sendable, any Error>?](repeating: nil, count: round.count)
        var snapshots: [Int: KeySnapshot] = [:]
        for (index, decision) in round.enumerated() { snapshots[index] = decision.assumed }
        var pending = Array(round.indices)
        var passes = 0
        while !pending.isEmpty {
            passes += 1
            guard passes <= Self.maxRoundPasses else {
                // Other replicas kept moving these keys: give up on them, not on the round.
                for index in pending {
                    results[index] = .failure(StoreError(
                        code: .versionConflict, message: "key \(round[index].key.prefix(128)) kept changing under \(Self.maxRoundPasses) tries"))
                }
                break
            }
            let unread = pending.filter { snapshots[$0] == nil }
            if !unread.isEmpty {
                let read = try await self.snapshots(
                    stream: stream, unread.map { (round[$0].key, round[$0].eventId, round[$0].sequence, round[$0].laterEvents) })
                for (index, snapshot) in zip(unread, read) { snapshots[index] = snapshot }
            }
            var changes: [RoundChange] = []
            var outcomes: [Int: any Sendable] = [:]
            for index in pending {
                let (change, outcome) = round[index].decide(snapshots[index]!)
                if let change {
                    do {
                        try change.validate()
                        changes.append((index, change, change.keepsHeld(asIn: snapshots[index]!)))
                        outcomes[index] = outcome
                    } catch {
                        results[index] = .failure(error)
                    }
                } else {
                    results[index] = .success(outcome)
                }
            }
            let conflicted: Set<Int>
            if Self.writeOneEventTwice(changes.map(\.change)) {
                // The set-based upsert writes each record once: such a round commits change by change.
                conflicted = try await commitAlone(changes, results: &results)
            } else {
                do {
                    conflicted = try await commitRound(stream: stream, changes)
                } catch let error as StoreError where error.code == .versionConflict {
                    // Deadlocks or serialization failures that kept happening (the pool retried them):
                    // the round rolled back; decide it all again on fresh reads.
                    conflicted = Set(changes.map(\.index))
                } catch let error as StoreError where error.code == .invalidChange {
                    // One change the set-based checks refused: commit each alone, so that it fails by itself.
                    conflicted = try await commitAlone(changes, results: &results)
                }
            }
            for (index, _, _) in changes where !conflicted.contains(index) && results[index] == nil {
                results[index] = .success(outcomes[index]!)
            }
            // Another replica moved these keys meanwhile: read them again and decide again.
            pending = conflicted.sorted()
            for index in pending { snapshots[index] = nil }
        }
        return results.map { $0! }
    }

    /// How many times a round reads and decides the keys other replicas moved meanwhile before it
    /// answers them with a version conflict (each pass, some replica's commit made progress).
    static let maxRoundPasses = 64

    /// Whether two changes write a record of the same event (a caller's round may; the pipeline's
    /// never does: one step per event).
    static func writeOneEventTwice(_ changes: [KeyChange]) -> Bool {
        var eventIds: Set<String> = []
        for change in changes {
            for write in change.records where !eventIds.insert(write.eventId).inserted { return true }
        }
        return false
    }

    /// A change of a round: its decision's place in the round, and whether its key's held
    /// messages stay as the snapshot it was decided on knew them (``KeyChange/keepsHeld(asIn:)``).
    typealias RoundChange = (index: Int, change: KeyChange, keepsHeldAsRead: Bool)

    /// Commits each change in its own transaction; returns those whose key another replica moved
    /// meanwhile, records other failures in `results`.
    private func commitAlone(
        _ changes: [RoundChange], results: inout [Result<any Sendable, any Error>?]
    ) async throws -> Set<Int> {
        var conflicted: Set<Int> = []
        for item in changes {
            do {
                try await commit(item.change)
            } catch let error as StoreError where error.code == .versionConflict {
                conflicted.insert(item.index)
            } catch let error as StoreError where error.code == .unavailable {
                throw error
            } catch {
                results[item.index] = .failure(error)
            }
        }
        return conflicted
    }

    /// The keys of `stream` as ``snapshot(stream:key:eventId:sequence:)`` reads one, for all of
    /// `asks` in one statement (keys distinct), with the records and held rows of each ask's
    /// `later` events (``KeyDecision/laterEvents``).
    func snapshots(
        stream: EventStream, _ asks: [(key: String, eventId: String, sequence: Int64?, later: [(eventId: String, sequence: Int64)])]
    ) async throws -> [KeySnapshot] {
        let keys = asks.map(\.key)
        // Each ask's sequences and eventIds (its later events' too), flattened for `unnest`.
        let flattened = asks.flatMap { ask in
            (ask.sequence.map { [(ask.key, $0, ask.eventId)] } ?? [(ask.key, nil, ask.eventId)])
                + ask.later.map { (ask.key, Optional($0.sequence), $0.eventId) }
        }
        let askedKeys = flattened.filter { $0.1 != nil }.map(\.0)
        let askedSequences = flattened.compactMap(\.1)
        let eventIds = flattened.map(\.2)
        let streamName = stream.rawValue
        let rows = try await pool.run("snapshot") { connection, logger in
            try await connection.rows(
                PreparedRound<SnapshotRead>(SnapshotRead.query(
                    stream: streamName, keys: keys, askedKeys: askedKeys, askedSequences: askedSequences, eventIds: eventIds)),
                logger)
        }
        struct Read {
            var version: Int64 = 0
            var row: (nextExpected: Int64, parking: KeyState.Parking?, skipped: [ClosedRange<Int64>], claim: KeyState.Claim?)?
            var lowest: [(sequence: Int64, event: KeyState.HeldEvent)] = []
            var asked: [Int64: KeyState.HeldEvent] = [:]
            var oldest: Date?
        }
        var reads: [String: Read] = [:]
        var records: [String: (state: String, fingerprint: String, documentId: String?)] = [:]
        for row in rows {
            let kind = try row.value("kind", as: String.self)
            let name = try row.value("k", as: String.self)
            switch kind {
            case "key":
                reads[name, default: Read()].version = try row.value("n1")
                reads[name, default: Read()].row = (
                    try row.value("n2"), try Self.parking(since: try row.value("n3"), reason: try row.value("t1"), key: name),
                    try StoredSkippedGaps.gaps(try row.value("t2"), key: name),
                    try StoredClaim.claim(eventId: try row.value("t3"), sequence: try row.value("n4"))
                )
            case "held", "asked":
                let sequence = try row.value("n1", as: Int64.self)
                let event = KeyState.HeldEvent(eventId: try row.value("t1"), heldAt: StoreTime.date(microseconds: try row.value("n2")))
                if kind == "held" { reads[name, default: Read()].lowest.append((sequence, event)) } else { reads[name, default: Read()].asked[sequence] = event }
            case "oldest":
                reads[name, default: Read()].oldest = try row.value("n1", as: Int64?.self).map(StoreTime.date(microseconds:))
            default:
                records[name] = (try row.value("t1"), try row.value("t2"), try row.value("t3"))
            }
        }
        return try asks.map { ask in
            var snapshot = KeySnapshot(state: nil, version: 0, record: .notSeen)
            if let record = records[ask.eventId] {
                snapshot.record = try StoredDedupState.record(state: record.state, fingerprintHex: record.fingerprint, eventId: ask.eventId)
                snapshot.documentId = record.documentId
            }
            for later in ask.later where later.eventId != ask.eventId {
                guard let record = records[later.eventId] else { continue }
                snapshot.laterRecords[later.eventId] = try StoredDedupState.record(
                    state: record.state, fingerprintHex: record.fingerprint, eventId: later.eventId)
            }
            if let read = reads[ask.key], let row = read.row {
                // UNION ALL keeps each branch's rows together, not necessarily in order.
                let lowest = read.lowest.sorted { $0.sequence < $1.sequence }
                snapshot.state = KeyState(
                    nextExpected: row.nextExpected,
                    held: StoredHeldEvents.view(
                        lowestRows: lowest, asked: ((ask.sequence.map { [$0] } ?? []) + ask.later.map(\.sequence)).map { ($0, read.asked[$0]) }
                    ) { read.oldest },
                    parked: row.parking, skipped: row.skipped, claim: row.claim)
                snapshot.version = read.version
            }
            return snapshot
        }
    }

    /// Writes the round's `changes` (validated, distinct keys of `stream`) in one transaction and
    /// returns the indices of those whose key was not at their expected version (nothing of
    /// them is written). Throws ``StoreError/Code-swift.struct/invalidChange`` (the whole round
    /// rolled back) when the rows after the changes contradict a change.
    ///
    /// A round that only moves existing keys and writes records, their held messages as read (the
    /// pipeline's usual round: events let through and settled), is one statement
    /// (``commitUpdates(stream:_:)``); any other runs the statements below in a transaction.
    func commitRound(stream: EventStream, _ changes: [RoundChange]) async throws -> Set<Int> {
        guard !changes.isEmpty else { return [] }
        if changes.allSatisfy({ $0.keepsHeldAsRead && $0.change.newState != nil }) {
            return try await commitUpdates(stream: stream, changes)
        }
        let streamName = stream.rawValue
        let keys = changes.map(\.change.key).sorted()
        return try await pool.run("commitRound", transientCode: .versionConflict) { connection, logger in
            try await connection.transaction("BEGIN ISOLATION LEVEL READ COMMITTED", logger) { db in
                // 1. Lock the existing key rows in key order (replicas lock in the same order), check versions.
                var versions: [String: Int64] = [:]
                for row in try await db.rows(PreparedRound<LockKeys>(LockKeys.query(stream: streamName, keys: keys)), logger) {
                    versions[try row.value("key", as: String.self)] = try row.value("version", as: Int64.self)
                }
                var conflicted: Set<Int> = []
                var inserts: [(index: Int, change: KeyChange)] = []
                var updates: [(index: Int, change: KeyChange)] = []
                for (index, change, _) in changes {
                    guard (versions[change.key] ?? 0) == change.expectedVersion else {
                        conflicted.insert(index)
                        continue
                    }
                    guard change.newState != nil else { continue }
                    if change.expectedVersion == 0 { inserts.append((index, change)) } else { updates.append((index, change)) }
                }
                // 2. New keys: a replica that inserted one first wins it.
                if !inserts.isEmpty {
                    let columns = KeyColumns(inserts.map(\.change))
                    let inserted = Set(
                        try await db.rows(PreparedRound<InsertKeys>(InsertKeys.query(stream: streamName, columns)), logger)
                            .map { try $0.value("key", as: String.self) })
                    for (index, change) in inserts where !inserted.contains(change.key) { conflicted.insert(index) }
                }
                // The rest: the one-statement round's update, its records left to step 4 (the
                // keys are locked and at their versions already, so every one is updated).
                if !updates.isEmpty {
                    let byKey = updates.sorted { $0.change.key < $1.change.key }
                    let updated = Set(
                        try await db.rows(
                            PreparedRound<UpdateRound>(UpdateRound.query(
                                stream: streamName, expectedVersions: byKey.map(\.change.expectedVersion), KeyColumns(byKey.map(\.change)),
                                records: RecordColumns([]))),
                            logger
                        ).map { try $0.value("key", as: String.self) })
                    for (index, change) in updates where !updated.contains(change.key) { conflicted.insert(index) }
                }
                let writtenChanges = changes.filter { !conflicted.contains($0.index) }
                let written = writtenChanges.map(\.change)

                // 3. Held messages, then the check that each new state's `held` describes them.
                let deletes = written.filter { $0.deleteHeldSequence != nil }
                if !deletes.isEmpty {
                    let deleted = try await db.rows(
                        PreparedRound<DeleteHeld>(
                            DeleteHeld.query(stream: streamName, keys: deletes.map(\.key), sequences: deletes.map { $0.deleteHeldSequence! })),
                        logger
                    ).map { try $0.value("key", as: String.self) }
                    let stateless = Set(deletes.filter { $0.newState == nil }.map(\.key))
                    if let key = deleted.first(where: stateless.contains) {
                        throw StoreError(
                            code: .invalidChange, message: "key \(key.prefix(128)): deleting a held sequence needs the key's new state without it")
                    }
                }
                try await Self.insertHeld(written, stream: stream, db, logger)
                // A change that keeps the held messages as read needs no check: its state's view
                // was read from them (or checked against them) at the version it was decided on.
                try await Self.verifyHeld(
                    stream: stream, writtenChanges.filter { $0.change.newState != nil && !$0.keepsHeldAsRead }.map(\.change), db, logger)

                // 4. The dedup records.
                let records = RecordColumns(written)
                if !records.eventIds.isEmpty {
                    try await db.execute(PreparedRound<UpsertRecords>(UpsertRecords.query(stream: streamName, records)), logger)
                }
                return conflicted
            }
        }
    }

    /// Commits a round whose changes all move existing keys to new states and keep their held
    /// messages as read, in one statement (``UpdateRound``: no `BEGIN`, no `COMMIT`, one round
    /// trip instead of six); returns the indices of those whose key was not at their expected
    /// version. Replayed after a lost answer like any version-checked commit: had it applied, the
    /// keys have moved, and their decisions are made again on fresh reads.
    private func commitUpdates(stream: EventStream, _ changes: [RoundChange]) async throws -> Set<Int> {
        let byKey = changes.sorted { $0.change.key < $1.change.key }
        let keyColumns = KeyColumns(byKey.map(\.change))
        let expected = byKey.map(\.change.expectedVersion)
        let records = RecordColumns(byKey.map(\.change))
        let updated = try await pool.run("commitRound", transientCode: .versionConflict) { connection, logger in
            try await connection.rows(
                PreparedRound<UpdateRound>(UpdateRound.query(
                    stream: stream.rawValue, expectedVersions: expected, keyColumns, records: records)),
                logger
            ).map { try $0.value("key", as: String.self) }
        }
        let moved = Set(updated)
        return Set(changes.filter { !moved.contains($0.change.key) }.map(\.index))
    }

    /// The `keys` columns of changes with a new state, as arrays for `unnest` (`NULL` as
    /// ``nullInteger`` or an empty string, which no stored value is).
    fileprivate struct KeyColumns {
        var keys: [String] = []
        var nextExpected: [Int64] = []
        var parkedSince: [Int64] = []
        var parkReason: [String] = []
        var skipped: [String] = []
        var claimedBy: [String] = []
        var claimedSequence: [Int64] = []
        var updatedAt: [Int64] = []

        init(_ changes: [KeyChange]) {
            for change in changes {
                guard let state = change.newState else { continue }
                keys.append(change.key)
                nextExpected.append(state.nextExpected)
                parkedSince.append(state.parked.map { StoreTime.microseconds($0.since) } ?? PostgresWorkerStore.nullInteger)
                parkReason.append(state.parked?.reason.rawValue ?? "")
                skipped.append(StoredSkippedGaps.text(state.skipped) ?? "")
                claimedBy.append(state.claim?.eventId ?? "")
                claimedSequence.append(state.claim?.sequence ?? PostgresWorkerStore.nullInteger)
                updatedAt.append(StoreTime.microseconds(change.now))
            }
        }
    }
}

// MARK: The round's statements (prepared: ``RoundStatement``)

extension PostgresWorkerStore {
    /// Each asked key's row, the bounded view of its held rows (the lowest, the asked ones, the
    /// oldest time) and the asked events' records, in one consistent read (``snapshots(stream:_:)``).
    enum SnapshotRead: RoundStatement {
        static func query(
            stream: String, keys: [String], askedKeys: [String], askedSequences: [Int64], eventIds: [String]
        ) -> PostgresQuery {
            """
            SELECT 'key' AS kind, key AS k, version AS n1, next_expected AS n2, parked_since_us AS n3, park_reason AS t1,
                skipped AS t2, claimed_by AS t3, claimed_sequence AS n4
            FROM keys WHERE stream = \(stream) AND key = ANY(\(keys))
            UNION ALL
            SELECT 'held', r.key, h.sequence, h.held_at_us, NULL, h.event_id, NULL, NULL, NULL
            FROM unnest(\(keys)::text[]) AS r(key) CROSS JOIN LATERAL (
                SELECT sequence, held_at_us, event_id FROM held_messages WHERE stream = \(stream) AND key = r.key
                ORDER BY sequence LIMIT \(StoredHeldEvents.lowestRowsToRead)) AS h
            UNION ALL
            SELECT 'asked', h.key, h.sequence, h.held_at_us, NULL, h.event_id, NULL, NULL, NULL
            FROM unnest(\(askedKeys)::text[], \(askedSequences)::int8[]) AS a(key, sequence)
            JOIN held_messages h ON h.stream = \(stream) AND h.key = a.key AND h.sequence = a.sequence
            UNION ALL
            SELECT 'oldest', key, min(held_at_us), NULL, NULL, NULL, NULL, NULL, NULL
            FROM held_messages WHERE stream = \(stream) AND key = ANY(\(keys)) GROUP BY key
            UNION ALL
            SELECT 'record', event_id, NULL, NULL, NULL, state, fingerprint, document_id, NULL
            FROM dedup_records WHERE event_id = ANY(\(eventIds))
            """
        }
        static let sql = query(stream: "", keys: [], askedKeys: [], askedSequences: [], eventIds: []).sql
    }

    /// Locks the existing key rows in key order (replicas lock in the same order) and reads their versions.
    enum LockKeys: RoundStatement {
        static func query(stream: String, keys: [String]) -> PostgresQuery {
            "SELECT key, version FROM keys WHERE stream = \(stream) AND key = ANY(\(keys)) ORDER BY key FOR UPDATE"
        }
        static let sql = query(stream: "", keys: []).sql
    }

    /// Inserts new keys; a replica that inserted one first wins it (it is not returned).
    fileprivate enum InsertKeys: RoundStatement {
        static func query(stream: String, _ columns: KeyColumns) -> PostgresQuery {
            """
            INSERT INTO keys (
                stream, key, version, next_expected, parked_since_us, park_reason, skipped, claimed_by,
                claimed_sequence, updated_at_us)
            SELECT \(stream), u.key, 1, u.next_expected, NULLIF(u.parked_since_us, \(PostgresWorkerStore.nullInteger)),
                NULLIF(u.park_reason, ''), NULLIF(u.skipped, ''), NULLIF(u.claimed_by, ''),
                NULLIF(u.claimed_sequence, \(PostgresWorkerStore.nullInteger)), u.updated_at_us
            FROM unnest(\(columns.keys)::text[], \(columns.nextExpected)::int8[], \(columns.parkedSince)::int8[],
                \(columns.parkReason)::text[], \(columns.skipped)::text[], \(columns.claimedBy)::text[],
                \(columns.claimedSequence)::int8[], \(columns.updatedAt)::int8[])
                AS u(key, next_expected, parked_since_us, park_reason, skipped, claimed_by, claimed_sequence, updated_at_us)
            ORDER BY u.key
            ON CONFLICT (stream, key) DO NOTHING
            RETURNING key
            """
        }
        static let sql = query(stream: "", KeyColumns([])).sql
    }

    /// Deletes held messages by key and sequence; returns the keys of those deleted.
    enum DeleteHeld: RoundStatement {
        static func query(stream: String, keys: [String], sequences: [Int64]) -> PostgresQuery {
            """
            DELETE FROM held_messages h USING unnest(\(keys)::text[], \(sequences)::int8[]) AS d(key, sequence)
            WHERE h.stream = \(stream) AND h.key = d.key AND h.sequence = d.sequence
            RETURNING h.key
            """
        }
        static let sql = query(stream: "", keys: [], sequences: []).sql
    }

    /// The dedup records of a round's changes, as arrays for `unnest`.
    fileprivate struct RecordColumns {
        var eventIds: [String] = []
        var states: [String] = []
        var fingerprints: [String] = []
        /// `""` for none.
        var documentIds: [String] = []
        var keys: [String] = []
        var sequences: [Int64] = []
        var at: [Int64] = []

        /// The records `changes` write (a record without a stored state, none).
        init(_ changes: [KeyChange]) {
            for change in changes {
                for write in change.records {
                    guard let (state, fingerprint) = StoredDedupState.split(write.record) else { continue }
                    eventIds.append(write.eventId)
                    states.append(state.rawValue)
                    fingerprints.append(fingerprint.hex)
                    documentIds.append(write.documentId ?? "")
                    keys.append(change.key)
                    sequences.append(write.sequence)
                    at.append(StoreTime.microseconds(change.now))
                }
            }
        }
    }

    /// The dedup records' insert and its rule for an event already recorded, as ``UpsertRecords``
    /// and ``UpdateRound`` write them.
    fileprivate static let recordsInsert =
        "INSERT INTO dedup_records (event_id, state, fingerprint, document_id, stream, key, sequence, created_at_us, updated_at_us)"
    fileprivate static let recordsUpsert = """
        ON CONFLICT (event_id) DO UPDATE SET
            state = excluded.state, fingerprint = excluded.fingerprint, document_id = excluded.document_id,
            stream = excluded.stream, key = excluded.key, sequence = excluded.sequence,
            updated_at_us = excluded.updated_at_us
        """

    /// Writes the dedup records: each event's record inserted, or updated to its new state.
    fileprivate enum UpsertRecords: RoundStatement {
        static func query(stream: String, _ columns: RecordColumns) -> PostgresQuery {
            """
            \(unescaped: recordsInsert)
            SELECT r.event_id, r.state, r.fingerprint, NULLIF(r.document_id, ''), \(stream), r.key, r.sequence, r.at, r.at
            FROM unnest(\(columns.eventIds)::text[], \(columns.states)::text[], \(columns.fingerprints)::text[],
                \(columns.documentIds)::text[], \(columns.keys)::text[], \(columns.sequences)::int8[], \(columns.at)::int8[])
                AS r(event_id, state, fingerprint, document_id, key, sequence, at)
            \(unescaped: recordsUpsert)
            """
        }
        static let sql = query(stream: "", RecordColumns([])).sql
    }

    /// A round of ``commitUpdates(stream:_:)`` in one statement: locks the key rows in key order
    /// (as ``LockKeys``), updates those at their expected versions and writes the records of the
    /// keys it updated (as ``UpsertRecords``); returns the keys updated. The transaction of any
    /// other round runs it too, with no records, for its keys that move.
    ///
    /// Written so that no plan can be quadratic: the update joins the bound arrays (whose size
    /// the planner knows), not a join of CTEs it would guess at one row. A fresh store's tables
    /// have no statistics, and a plan that scanned every key once per updated key doubled
    /// PostgreSQL's CPU until autovacuum analysed them. Every lock is taken through `locked`,
    /// in key order, before the update touches its row; a version read from an older snapshot
    /// than the lock's is checked again on the locked row (READ COMMITTED's recheck), and at
    /// worst reports a conflict that the round redoes on a fresh read.
    fileprivate enum UpdateRound: RoundStatement {
        static func query(stream: String, expectedVersions: [Int64], _ columns: KeyColumns, records: RecordColumns) -> PostgresQuery {
            """
            WITH locked AS (
                SELECT key FROM keys WHERE stream = \(stream) AND key = ANY(\(columns.keys)) ORDER BY key FOR UPDATE
            ), updated AS (
                UPDATE keys SET version = keys.version + 1, next_expected = u.next_expected,
                    parked_since_us = NULLIF(u.parked_since_us, \(PostgresWorkerStore.nullInteger)), park_reason = NULLIF(u.park_reason, ''),
                    skipped = NULLIF(u.skipped, ''), claimed_by = NULLIF(u.claimed_by, ''),
                    claimed_sequence = NULLIF(u.claimed_sequence, \(PostgresWorkerStore.nullInteger)), updated_at_us = u.updated_at_us
                FROM unnest(\(columns.keys)::text[], \(expectedVersions)::int8[], \(columns.nextExpected)::int8[],
                    \(columns.parkedSince)::int8[], \(columns.parkReason)::text[], \(columns.skipped)::text[],
                    \(columns.claimedBy)::text[], \(columns.claimedSequence)::int8[], \(columns.updatedAt)::int8[])
                    AS u(key, expected_version, next_expected, parked_since_us, park_reason, skipped, claimed_by, claimed_sequence,
                        updated_at_us)
                WHERE keys.stream = \(stream) AND keys.key = u.key AND keys.version = u.expected_version
                    AND keys.key IN (SELECT key FROM locked)
                RETURNING keys.key
            ), recorded AS (
                \(unescaped: recordsInsert)
                SELECT r.event_id, r.state, r.fingerprint, NULLIF(r.document_id, ''), \(stream), r.key, r.sequence, r.at, r.at
                FROM unnest(\(records.eventIds)::text[], \(records.states)::text[], \(records.fingerprints)::text[],
                    \(records.documentIds)::text[], \(records.keys)::text[], \(records.sequences)::int8[], \(records.at)::int8[])
                    AS r(event_id, state, fingerprint, document_id, key, sequence, at)
                WHERE r.key IN (SELECT key FROM updated)
                \(unescaped: recordsUpsert)
            )
            SELECT key FROM updated
            """
        }
        static let sql = query(stream: "", expectedVersions: [], KeyColumns([]), records: RecordColumns([])).sql
    }
}
