import Foundation
import WarehouseSyncCore

/// The worker's durable state (docs/pipeline-core.md, "What the store keeps"): per sequencing key
/// its ``KeyState``, per held event its message, per `eventId` its ``DedupRecord``.
///
/// Concurrency is optimistic, per key: ``snapshot(stream:key:eventId:)`` returns the key's
/// `version`, the caller decides (``SequenceGate``) without holding anything, and
/// ``commit(_:)`` writes the decision in one transaction only if the key's version is still the
/// one it read; otherwise it throws ``StoreError/Code-swift.struct/versionConflict``, writes
/// nothing, and the caller reads again and decides again. That serialises every key's decisions
/// the same way for one SQLite writer and for many PostgreSQL replicas (docs/store.md).
/// ``commitDecision(stream:key:eventId:_:)`` is that loop as one call; SQLite runs it as one
/// transaction and decides under its write lock.
///
/// Every implementation passes the `WarehouseSyncStoreConformance` suite.
public protocol WorkerStore: Sendable {
    /// The key's state and version (0, state `nil`: never stored) and `eventId`'s dedup record,
    /// read consistently together. The state's ``KeyState/held`` is a bounded view
    /// (``StoredHeldEvents``): the lowest held events, the one at `sequence` when given (the
    /// sequence the caller decides on), and the oldest held time.
    func snapshot(stream: EventStream, key: String, eventId: String, sequence: Int64?) async throws -> KeySnapshot

    /// Applies `change` in one transaction, or nothing of it. Throws
    /// ``StoreError/Code-swift.struct/versionConflict`` when the key's version is not
    /// ``KeyChange/expectedVersion``, and ``StoreError/Code-swift.struct/invalidChange`` when the
    /// change is inconsistent (its state's `held` does not match the held messages after the
    /// change, a held message for a key whose state is not written, a `notSeen` record).
    func commit(_ change: KeyChange) async throws

    /// Reads the key and `eventId`'s record, lets `decide` turn that snapshot into a change (or
    /// none), commits the change, and returns what `decide` returned with it. A store that can
    /// do it all in one transaction does (SQLite: one job and one savepoint instead of a read and
    /// a write); the default reads, decides, commits, and decides again on a version conflict.
    /// `decide` must be pure: it may run more than once.
    func commitDecision<Outcome: Sendable>(
        stream: EventStream, key: String, eventId: String, sequence: Int64?,
        _ decide: @escaping @Sendable (KeySnapshot) -> (change: KeyChange?, outcome: Outcome)
    ) async throws -> Outcome

    /// Commits a round of decisions (``KeyDecision``), each as ``commitDecision(stream:key:eventId:sequence:_:)``
    /// would, and answers each with its outcome or its own error: one that is refused (an invalid
    /// change) or keeps conflicting leaves the others committed. All that committed is durable
    /// when this returns. A store that can reads every key of the round at once and writes the
    /// round in one transaction (docs/store.md, "Rounds"); a version conflict redoes that key
    /// alone. The keys must be distinct (a pipeline puts a key's next decision in a later round).
    /// Throws only when the round as a whole could not run (the store is unavailable): then none
    /// of it may have committed, or all of it; deciding again is safe either way.
    func commitDecisions(_ round: [KeyDecision]) async throws -> [Result<any Sendable, any Error>]

    /// All held sequences of `key`, in order: for an operator's view (it reads every row).
    func heldSequences(stream: EventStream, key: String) async throws -> [Int64]

    /// The stored message of the held event (`key`, `sequence`), if any.
    func heldMessage(stream: EventStream, key: String, sequence: Int64) async throws -> HeldMessage?

    /// The keys of `stream` with at least one held event, sorted: for the start-up
    /// `pendingRelease` pass and the periodic `checkGap`.
    func keysWithHeldEvents(stream: EventStream) async throws -> [String]

    /// The parked keys of `stream`, sorted.
    func parkedKeys(stream: EventStream) async throws -> [String]

    /// The event of `stream` most recently recorded `posted` among the keys of `warehouse`
    /// (`warehouse/…`), as long as its dedup record is kept (`DEDUP_RETENTION`); `nil` when there
    /// is none. For `whsync status --warehouse`.
    func lastPosted(stream: EventStream, warehouse: String) async throws -> PostedEvent?

    /// Per key of `stream` with held events: how many it holds, since when the oldest waits, the
    /// lowest held sequence with the key's next expected one and whether it is parked, sorted by
    /// key. One aggregate read of the held rows, for the workers' per-warehouse gauges and their
    /// maintenance pass (``heldSequences(stream:key:)`` reads one key's rows).
    func heldSummary(stream: EventStream) async throws -> [HeldKeySummary]

    /// `eventId`'s dedup record with where it belongs and when it was written, whatever its
    /// stream and key; `nil` when none is kept (never seen, or a posted one pruned after
    /// `DEDUP_RETENTION`). For `whsync trace`.
    func eventRecord(eventId: String) async throws -> EventRecord?

    /// Deletes `posted` dedup records last written before `olderThan` and returns how many.
    /// Records in any other state (`posting`, `held`, `deadLettered`) are kept. Deletes in
    /// batches (``StorePruning``).
    func pruneProcessed(olderThan: Date) async throws -> Int

    // MARK: Dead letters (DESIGN §6)
    //
    // Written by the replay worker, which drains the broker's dead-letter queue, and `whsync dlq`;
    // the pipeline never writes them. Errors name dead-letter ids, never payloads.

    /// Stores `letter`, or, when a letter with the same ``NewDeadLetter/identity`` is stored,
    /// records a repeat: with a later ``NewDeadLetter/failedAt`` than its last failure, its
    /// failure count goes up by one, its last failure time and error become `letter`'s and it is
    /// `pending` again; otherwise (a redelivery of a letter already stored) nothing changes.
    /// The first letter's body, headers and first failure time are kept. Returns the stored row,
    /// durable when this returns (ack the letter only then).
    func recordDeadLetter(_ letter: NewDeadLetter) async throws -> DeadLetterRecord

    /// At most `limit` (> 0) letters matching `filter`, in `id` order.
    func deadLetters(matching filter: DeadLetterFilter, limit: Int) async throws -> [DeadLetterRecord]

    /// The letter `id`, if stored.
    func deadLetter(id: Int64) async throws -> DeadLetterRecord?

    /// Records a replay of letter `id` by `replayedBy` at `at`: one more replay, status
    /// `replayed`, and an audit entry, in one transaction. Throws ``StoreError/Code-swift.struct/notFound`` for an unknown id and
    /// ``StoreError/Code-swift.struct/invalidChange`` for a purged letter.
    @discardableResult
    func markReplayed(id: Int64, by replayedBy: String, at: Date) async throws -> DeadLetterRecord

    /// Replaces letter `id`'s body (`whsync dlq edit`) by `editedBy` as of `at`; the next replay
    /// sends it. The body it replaces is kept in the audit entry written in the same transaction.
    /// Throws ``StoreError/Code-swift.struct/notFound`` for an unknown id and
    /// ``StoreError/Code-swift.struct/invalidChange`` for a purged letter.
    @discardableResult
    func updateDeadLetterBody(id: Int64, body: [UInt8], by editedBy: String, at: Date) async throws -> DeadLetterRecord

    /// Marks the letters `ids` that are not purged yet as `purged` by `purgedBy` at `at` (with an
    /// audit entry each) and returns how many; unknown ids are skipped. Their rows stay until
    /// ``pruneDeadLetters(olderThan:)``.
    @discardableResult
    func purgeDeadLetters(ids: [Int64], by purgedBy: String, at: Date) async throws -> Int

    /// Marks every letter matching `filter` that is not purged yet as `purged` by `purgedBy` at
    /// `at` (with an audit entry each) and returns how many.
    @discardableResult
    func purgeDeadLetters(matching filter: DeadLetterFilter, by purgedBy: String, at: Date) async throws -> Int

    // MARK: Audit

    /// Appends an entry to the audit trail (an operator's `whsync gaps skip`; the dead-letter
    /// methods above write their own).
    func recordAudit(_ entry: NewAuditEntry) async throws

    /// The audit trail, oldest first: of letter `deadLetterId`, or all of it (`nil`), at most
    /// `limit` entries (the newest ones when there are more).
    func auditTrail(deadLetterId: Int64?, limit: Int) async throws -> [AuditEntry]

    /// Deletes `replayed` and `purged` letters whose status last changed before `olderThan`
    /// (retention) and returns how many. `pending` letters are kept. Deletes in batches
    /// (``StorePruning``).
    func pruneDeadLetters(olderThan: Date) async throws -> Int

    /// Releases the store's connections. Calls afterwards throw
    /// ``StoreError/Code-swift.struct/unavailable``.
    func close() async
}

extension WorkerStore {
    /// ``snapshot(stream:key:eventId:sequence:)`` for a caller that decides on no arriving
    /// sequence (a settle, a release, a park, a skip: the lowest held events are what they need).
    public func snapshot(stream: EventStream, key: String, eventId: String) async throws -> KeySnapshot {
        try await snapshot(stream: stream, key: key, eventId: eventId, sequence: nil)
    }

    /// ``commitDecision(stream:key:eventId:sequence:_:)`` deciding on no arriving sequence.
    public func commitDecision<Outcome: Sendable>(
        stream: EventStream, key: String, eventId: String,
        _ decide: @escaping @Sendable (KeySnapshot) -> (change: KeyChange?, outcome: Outcome)
    ) async throws -> Outcome {
        try await commitDecision(stream: stream, key: key, eventId: eventId, sequence: nil, decide)
    }

    public func commitDecision<Outcome: Sendable>(
        stream: EventStream, key: String, eventId: String, sequence: Int64?,
        _ decide: @escaping @Sendable (KeySnapshot) -> (change: KeyChange?, outcome: Outcome)
    ) async throws -> Outcome {
        try await untilCommitted(read: { try await snapshot(stream: stream, key: key, eventId: eventId, sequence: sequence) }, decide)
    }

    /// Reads, decides and commits until the commit finds the key at the version it decided on.
    fileprivate func untilCommitted<Outcome>(
        read: () async throws -> KeySnapshot, _ decide: (KeySnapshot) -> (change: KeyChange?, outcome: Outcome)
    ) async throws -> Outcome {
        while true {
            let (change, outcome) = decide(try await read())
            guard let change else { return outcome }
            do {
                try await commit(change)
                return outcome
            } catch let error as StoreError where error.code == .versionConflict {
                continue
            }
        }
    }
}

extension WorkerStore {
    public func commitDecisions(_ round: [KeyDecision]) async throws -> [Result<any Sendable, any Error>] {
        try await commitDecisionsOneByOne(round)
    }

    /// ``commitDecisions(_:)`` one decision at a time, each in its own transaction: for stores
    /// that have nothing better.
    public func commitDecisionsOneByOne(_ round: [KeyDecision]) async throws -> [Result<any Sendable, any Error>] {
        try KeyDecision.requireDistinctKeys(round)
        var results: [Result<any Sendable, any Error>] = []
        for decision in round {
            do {
                results.append(.success(try await commit(decision)))
            } catch let error as StoreError where error.code == .unavailable {
                throw error
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }

    /// Commits one decision of a round through ``commit(_:)``: on its assumed snapshot first,
    /// then on fresh reads while the version conflicts.
    private func commit(_ decision: KeyDecision) async throws -> any Sendable {
        if let assumed = decision.assumed {
            let (change, outcome) = decision.decide(assumed)
            guard let change else { return outcome }
            do {
                try await commit(change)
                return outcome
            } catch let error as StoreError where error.code == .versionConflict {}
        }
        guard !decision.laterEvents.isEmpty else {
            return try await commitDecision(
                stream: decision.stream, key: decision.key, eventId: decision.eventId, sequence: decision.sequence, decision.decide)
        }
        return try await untilCommitted(read: { try await snapshot(of: decision) }, decision.decide)
    }

    /// What `decision` decides on, read one event at a time: its first event's snapshot with
    /// each later event's record and held row, all at one version of the key.
    private func snapshot(of decision: KeyDecision) async throws -> KeySnapshot {
        reading: while true {
            var snapshot = try await snapshot(stream: decision.stream, key: decision.key, eventId: decision.eventId, sequence: decision.sequence)
            for later in decision.laterEvents {
                let read = try await self.snapshot(stream: decision.stream, key: decision.key, eventId: later.eventId, sequence: later.sequence)
                guard read.version == snapshot.version else { continue reading }
                snapshot.include(eventId: later.eventId, sequence: later.sequence, from: read)
            }
            return snapshot
        }
    }
}

/// One decision of a round (``WorkerStore/commitDecisions(_:)``): read the key (and `eventId`'s
/// record, and the held event at `sequence`), let `decide` turn the snapshot into a change, commit.
public struct KeyDecision: Sendable {
    public var stream: EventStream
    public var key: String
    public var eventId: String
    /// The sequence decided on, when one arrives (``WorkerStore/snapshot(stream:key:eventId:sequence:)``).
    public var sequence: Int64?
    /// A snapshot the caller already holds (the key as its own last commit left it): the store
    /// decides on it without reading, and reads only when its version turns out stale.
    public var assumed: KeySnapshot?
    /// The key's events decided after `eventId` in this decision, in order (``KeyStep/inOrder(_:)``):
    /// the read includes their records (``KeySnapshot/laterRecords``) and their held rows.
    public var laterEvents: [(eventId: String, sequence: Int64)]
    /// Pure: it may run more than once.
    public var decide: @Sendable (KeySnapshot) -> (change: KeyChange?, outcome: any Sendable)

    public init(
        stream: EventStream, key: String, eventId: String, sequence: Int64? = nil, assumed: KeySnapshot? = nil,
        laterEvents: [(eventId: String, sequence: Int64)] = [],
        decide: @escaping @Sendable (KeySnapshot) -> (change: KeyChange?, outcome: any Sendable)
    ) {
        self.laterEvents = laterEvents
        self.stream = stream
        self.key = key
        self.eventId = eventId
        self.sequence = sequence
        self.assumed = assumed
        self.decide = decide
    }

    /// The round's keys (stream and key) must be distinct, and so must its events: a round reads
    /// everything before it writes, so a second decision on the same key or `eventId` would not
    /// see the first one's write.
    public static func requireDistinctKeys(_ round: [KeyDecision]) throws(StoreError) {
        var keys: Set<String> = []
        var eventIds: Set<String> = []
        for decision in round {
            guard keys.insert("\(decision.stream.rawValue)\u{0}\(decision.key)").inserted,
                decision.eventId.isEmpty || eventIds.insert(decision.eventId).inserted
            else {
                throw StoreError(
                    code: .invalidChange,
                    message: "key \(decision.key.prefix(128)) or event \(decision.eventId.prefix(128)) is decided twice in one round")
            }
        }
    }
}

/// An event recorded `posted` (``WorkerStore/lastPosted(stream:warehouse:)``).
public struct PostedEvent: Sendable, Hashable {
    public var eventId: String
    public var key: String
    public var sequence: Int64
    /// The ERP's document id, when its answer named one.
    public var documentId: String?
    /// When the record was written `posted`.
    public var postedAt: Date

    public init(eventId: String, key: String, sequence: Int64, documentId: String?, postedAt: Date) {
        self.eventId = eventId
        self.key = key
        self.sequence = sequence
        self.documentId = documentId
        self.postedAt = postedAt
    }

    /// The bounds of the keys of `warehouse` in byte order: `warehouse/` ≤ key < `warehouse0`
    /// (`0` follows `/`), so that a store compares instead of matching a pattern.
    public static func keyRange(warehouse: String) -> (lower: String, upper: String) {
        (warehouse + "/", warehouse + "0")
    }
}

/// One key's held events in aggregate (``WorkerStore/heldSummary(stream:)``).
public struct HeldKeySummary: Sendable, Hashable {
    public var key: String
    public var heldEvents: Int
    public var oldestHeldAt: Date
    /// The lowest held sequence.
    public var lowestHeld: Int64
    /// The key's ``KeyState/nextExpected``; `nil` when no key row goes with the held rows.
    public var nextExpected: Int64?
    public var isParked: Bool

    public init(key: String, heldEvents: Int, oldestHeldAt: Date, lowestHeld: Int64, nextExpected: Int64?, isParked: Bool = false) {
        self.key = key
        self.heldEvents = heldEvents
        self.oldestHeldAt = oldestHeldAt
        self.lowestHeld = lowestHeld
        self.nextExpected = nextExpected
        self.isParked = isParked
    }

    /// The key's held event in turn waits for somebody to release it (``SequenceGate/pendingRelease(_:)``
    /// would name it): after a crash, a skip, a release that failed; or a release running now.
    public var hasReleaseInTurn: Bool { !isParked && lowestHeld == nextExpected }
}

/// A dedup record as stored, with its key and times (``WorkerStore/eventRecord(eventId:)``).
public struct EventRecord: Sendable, Hashable {
    public var eventId: String
    public var stream: EventStream
    public var key: String
    public var sequence: Int64
    /// Never ``DedupRecord/notSeen``.
    public var record: DedupRecord
    /// The ERP's document id, when posted and its answer named one.
    public var documentId: String?
    /// When a worker first wrote the record (held, or let through for posting).
    public var firstRecordedAt: Date
    /// When it was last written (posted, dead-lettered, sent to a retry tier).
    public var lastRecordedAt: Date

    public init(
        eventId: String, stream: EventStream, key: String, sequence: Int64, record: DedupRecord, documentId: String?,
        firstRecordedAt: Date, lastRecordedAt: Date
    ) {
        self.eventId = eventId
        self.stream = stream
        self.key = key
        self.sequence = sequence
        self.record = record
        self.documentId = documentId
        self.firstRecordedAt = firstRecordedAt
        self.lastRecordedAt = lastRecordedAt
    }
}

/// How ``WorkerStore/pruneProcessed(olderThan:)`` and ``WorkerStore/pruneDeadLetters(olderThan:)``
/// delete: at most ``batchSize`` rows per statement (per transaction in SQLite), so that a long
/// backlog neither holds the store's writer nor outlives an operation's timeout.
public enum StorePruning {
    /// Rows deleted per statement.
    public static let batchSize = 1000

    /// Calls `deleteBatch` with ``batchSize`` (it deletes at most that many rows and returns how
    /// many) until a batch comes back short; returns the total.
    public static func inBatches(_ deleteBatch: (Int) async throws -> Int) async throws -> Int {
        var pruned = 0
        while true {
            let batch = try await deleteBatch(batchSize)
            pruned += batch
            if batch < batchSize { return pruned }
        }
    }
}
