import Foundation
import WarehouseSyncCore
import WarehouseSyncStore

/// A ``WorkerStore`` that forwards every call to `base`, except those given a replacement: for
/// tests that make one operation misbehave (fail for a while, ignore the version) and leave the
/// rest real.
public struct InterceptingStore: WorkerStore {
    public let base: any WorkerStore
    let commitReplacement: (@Sendable (KeyChange) async throws -> Void)?
    let recordDeadLetterReplacement: (@Sendable (NewDeadLetter) async throws -> DeadLetterRecord)?
    let roundObserver: (@Sendable ([KeyDecision]) -> Void)?
    let decisionRefusal: (@Sendable (KeyDecision) -> StoreError?)?

    /// `commit` and `recordDeadLetter`, when given, run instead of `base`'s (they may call it);
    /// `observeRound` sees each round of decisions before it is committed; a decision `refuse`
    /// answers with an error fails with it, the others of its round are committed.
    public init(
        base: any WorkerStore,
        commit: (@Sendable (KeyChange) async throws -> Void)? = nil,
        recordDeadLetter: (@Sendable (NewDeadLetter) async throws -> DeadLetterRecord)? = nil,
        observeRound: (@Sendable ([KeyDecision]) -> Void)? = nil,
        refuse: (@Sendable (KeyDecision) -> StoreError?)? = nil
    ) {
        self.base = base
        commitReplacement = commit
        recordDeadLetterReplacement = recordDeadLetter
        roundObserver = observeRound
        decisionRefusal = refuse
    }

    /// `base`'s rounds, unless `commit` is replaced: then one decision at a time through it.
    public func commitDecisions(_ round: [KeyDecision]) async throws -> [Result<any Sendable, any Error>] {
        roundObserver?(round)
        let refusals = round.map { decisionRefusal?($0) }
        let passing = zip(round, refusals).filter { $0.1 == nil }.map(\.0)
        var committed = (passing.isEmpty ? [] : try await commitPassing(passing)).makeIterator()
        let short = StoreError(code: .unavailable, message: "the store answered a round short")
        return refusals.map { refusal in refusal.map { .failure($0) } ?? committed.next() ?? .failure(short) }
    }

    private func commitPassing(_ round: [KeyDecision]) async throws -> [Result<any Sendable, any Error>] {
        guard commitReplacement == nil else { return try await commitDecisionsOneByOne(round) }
        return try await base.commitDecisions(round)
    }

    public func snapshot(stream: EventStream, key: String, eventId: String, sequence: Int64?) async throws -> KeySnapshot {
        try await base.snapshot(stream: stream, key: key, eventId: eventId, sequence: sequence)
    }

    public func heldSequences(stream: EventStream, key: String) async throws -> [Int64] {
        try await base.heldSequences(stream: stream, key: key)
    }

    public func commit(_ change: KeyChange) async throws {
        if let commitReplacement { try await commitReplacement(change) } else { try await base.commit(change) }
    }

    public func heldMessage(stream: EventStream, key: String, sequence: Int64) async throws -> HeldMessage? {
        try await base.heldMessage(stream: stream, key: key, sequence: sequence)
    }

    public func keysWithHeldEvents(stream: EventStream) async throws -> [String] { try await base.keysWithHeldEvents(stream: stream) }
    public func parkedKeys(stream: EventStream) async throws -> [String] { try await base.parkedKeys(stream: stream) }
    public func lastPosted(stream: EventStream, warehouse: String) async throws -> PostedEvent? {
        try await base.lastPosted(stream: stream, warehouse: warehouse)
    }
    public func eventRecord(eventId: String) async throws -> EventRecord? { try await base.eventRecord(eventId: eventId) }
    public func heldSummary(stream: EventStream) async throws -> [HeldKeySummary] { try await base.heldSummary(stream: stream) }
    public func pruneProcessed(olderThan: Date) async throws -> Int { try await base.pruneProcessed(olderThan: olderThan) }

    public func recordDeadLetter(_ letter: NewDeadLetter) async throws -> DeadLetterRecord {
        if let recordDeadLetterReplacement { return try await recordDeadLetterReplacement(letter) }
        return try await base.recordDeadLetter(letter)
    }

    public func deadLetters(matching filter: DeadLetterFilter, limit: Int) async throws -> [DeadLetterRecord] {
        try await base.deadLetters(matching: filter, limit: limit)
    }
    public func deadLetter(id: Int64) async throws -> DeadLetterRecord? { try await base.deadLetter(id: id) }
    public func markReplayed(id: Int64, by replayedBy: String, at: Date) async throws -> DeadLetterRecord {
        try await base.markReplayed(id: id, by: replayedBy, at: at)
    }
    public func updateDeadLetterBody(id: Int64, body: [UInt8], by editedBy: String, at: Date) async throws -> DeadLetterRecord {
        try await base.updateDeadLetterBody(id: id, body: body, by: editedBy, at: at)
    }
    public func purgeDeadLetters(ids: [Int64], by purgedBy: String, at: Date) async throws -> Int {
        try await base.purgeDeadLetters(ids: ids, by: purgedBy, at: at)
    }
    public func purgeDeadLetters(matching filter: DeadLetterFilter, by purgedBy: String, at: Date) async throws -> Int {
        try await base.purgeDeadLetters(matching: filter, by: purgedBy, at: at)
    }
    public func recordAudit(_ entry: NewAuditEntry) async throws { try await base.recordAudit(entry) }
    public func auditTrail(deadLetterId: Int64?, limit: Int) async throws -> [AuditEntry] {
        try await base.auditTrail(deadLetterId: deadLetterId, limit: limit)
    }
    public func pruneDeadLetters(olderThan: Date) async throws -> Int { try await base.pruneDeadLetters(olderThan: olderThan) }
    public func close() async { await base.close() }
}
