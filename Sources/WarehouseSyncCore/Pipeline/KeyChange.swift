import Foundation

// What a worker reads of one key and writes to it in one commit: the values the pipeline's
// decisions (``EventJourney``) produce and the stores (WarehouseSyncStore) apply.

/// What a store read of a key (WorkerStore.snapshot) for one event.
public struct KeySnapshot: Sendable, Hashable {
    /// `nil` when the key was never stored.
    public var state: KeyState?
    /// The key's version: 0 when never stored, then 1, 2, … for each committed state.
    public var version: Int64
    /// The record of the `eventId` asked for; ``DedupRecord/notSeen`` when there is none.
    public var record: DedupRecord
    /// The ERP's document id, when the record is `posted` and the ERP returned one.
    public var documentId: String?
    /// The records of the other events a read was asked about (a key's queued events decided in
    /// one step, ``KeyDecision``), by eventId; an event with none is not seen.
    public var laterRecords: [String: DedupRecord]

    public init(
        state: KeyState?, version: Int64, record: DedupRecord, documentId: String? = nil, laterRecords: [String: DedupRecord] = [:]
    ) {
        self.state = state
        self.version = version
        self.record = record
        self.documentId = documentId
        self.laterRecords = laterRecords
    }
}

extension KeySnapshot {
    /// Adds what `read` (a read of the same key at the same version for another event) knows of
    /// `eventId`'s record and the held row at `sequence`: for a store that reads a key's queued
    /// events one at a time.
    public mutating func include(eventId: String, sequence: Int64, from read: KeySnapshot) {
        if read.record != .notSeen, laterRecords[eventId] == nil { laterRecords[eventId] = read.record }
        if let held = read.state?.held { state?.held.learn(sequence, from: held) }
    }
}

/// One dedup record to write (insert or replace) in a ``KeyChange``.
public struct DedupWrite: Sendable, Hashable {
    public var eventId: String
    /// Anything but ``DedupRecord/notSeen``.
    public var record: DedupRecord
    /// The event's sequence within the change's key.
    public var sequence: Int64
    /// The ERP's document id; only with a `posted` record.
    public var documentId: String?

    public init(eventId: String, record: DedupRecord, sequence: Int64, documentId: String? = nil) {
        self.eventId = eventId
        self.record = record
        self.sequence = sequence
        self.documentId = documentId
    }
}

/// The stored message of a held event: it was acked when it was held, so this is the only copy.
public struct HeldMessage: Sendable, Hashable {
    public var sequence: Int64
    public var eventId: String
    /// When it was held (``KeyState/HeldEvent/heldAt``). Stored to the microsecond.
    public var heldAt: Date
    public var routingKey: String
    /// The AMQP headers to publish it with again (stored as a JSON object of strings).
    public var headers: [String: String]
    public var body: [UInt8]

    public init(sequence: Int64, eventId: String, heldAt: Date, routingKey: String, headers: [String: String], body: [UInt8]) {
        self.sequence = sequence
        self.eventId = eventId
        self.heldAt = heldAt
        self.routingKey = routingKey
        self.headers = headers
        self.body = body
    }

    /// The entry of ``KeyState/held`` that goes with this message.
    public var heldEvent: KeyState.HeldEvent { KeyState.HeldEvent(eventId: eventId, heldAt: heldAt) }
}

/// Everything one decision writes for one key, applied atomically by a store (WorkerStore.commit)
/// (the table "What to persist together" in docs/pipeline-core.md).
public struct KeyChange: Sendable, Hashable {
    public var stream: EventStream
    public var key: String
    /// The version the decision was made on (``KeySnapshot/version``; 0 for a new key).
    public var expectedVersion: Int64
    /// The key's new state (stored as version `expectedVersion + 1`); `nil` leaves the key row
    /// alone, though its version is still checked. Its `held` must agree with the key's held
    /// messages after ``insertHeld`` and ``deleteHeldSequence`` are applied
    /// (the stores check it: StoredHeldEvents.verify).
    public var newState: KeyState?
    /// Dedup records to insert or replace, for events of this key.
    public var records: [DedupWrite]
    /// The messages of events being held, at distinct sequences; needs ``newState`` (which holds them).
    public var insertHeld: [HeldMessage]
    /// The sequence whose held message is dropped (settled); deleting one that is not stored is
    /// a no-op.
    public var deleteHeldSequence: Int64?
    /// The time written into the records' timestamps.
    public var now: Date

    public init(
        stream: EventStream,
        key: String,
        expectedVersion: Int64,
        newState: KeyState? = nil,
        records: [DedupWrite] = [],
        insertHeld: [HeldMessage] = [],
        deleteHeldSequence: Int64? = nil,
        now: Date
    ) {
        self.stream = stream
        self.key = key
        self.expectedVersion = expectedVersion
        self.newState = newState
        self.records = records
        self.insertHeld = insertHeld
        self.deleteHeldSequence = deleteHeldSequence
        self.now = now
    }
}

extension KeyChange {
    /// This change and `next` (decided on the key as this one leaves it) as one write: `next`'s
    /// state, both changes' records (the later of two for one event) and held messages.
    public func followed(by next: KeyChange) -> KeyChange {
        var merged = self
        merged.newState = next.newState ?? newState
        for write in next.records {
            if let index = merged.records.firstIndex(where: { $0.eventId == write.eventId }) {
                merged.records[index] = write
            } else {
                merged.records.append(write)
            }
        }
        merged.insertHeld += next.insertHeld
        precondition(next.deleteHeldSequence == nil && deleteHeldSequence == nil, "only decisions on arriving events are merged")
        merged.now = next.now
        return merged
    }
}
