import Foundation
import WarehouseSyncCore

/// How both stores read and check ``KeyState/held`` (docs/store.md, "Held events"): a bounded
/// number of indexed reads per decision, however many events a key holds.
///
/// The `held_messages` rows are the truth; a snapshot reads the lowest rows, the row at the
/// sequence decided on and the oldest held time (an index on `held_at`), and a commit checks the
/// new state's view against the rows after the change: the rows it claims to know all of (the
/// lowest) and each other one it names.
public enum StoredHeldEvents {
    /// The lowest rows a snapshot reads: one more than ``HeldEvents/windowSize``, which tells
    /// whether more are held.
    public static let lowestRowsToRead = HeldEvents.windowSize + 1

    /// The view from what a snapshot read: `lowestRows` (the lowest, in sequence order, at most
    /// ``lowestRowsToRead``), the sequences decided on with their rows (`asked`; empty when the
    /// caller decides on none), and the oldest held time of all rows (needed only when more rows
    /// are held than were read).
    public static func view(
        lowestRows: [(sequence: Int64, event: KeyState.HeldEvent)], asked: [(sequence: Int64, event: KeyState.HeldEvent?)],
        oldestHeldAt: () throws -> Date?
    ) rethrows -> HeldEvents {
        let moreAbove = lowestRows.count > HeldEvents.windowSize
        let lowest = Array(lowestRows.prefix(HeldEvents.windowSize))
        let oldest = moreAbove ? try oldestHeldAt() : lowest.map(\.event.heldAt).min()
        return HeldEvents(lowest: lowest, moreAbove: moreAbove, asked: asked, oldestHeldAt: oldest)
    }

    /// What a commit reads to check `held`: the `lowestCount` lowest rows after the change, and
    /// the rows at `sequences`.
    public static func check(_ held: HeldEvents) -> (lowestCount: Int, sequences: [Int64]) {
        let low = held.knownSequences.filter { $0 <= held.knownThrough }
        return (low.count + 1, held.knownSequences.filter { $0 > held.knownThrough })
    }

    /// Refuses a new state whose view of its held events disagrees with the rows after the
    /// change (`lowestRows` and `rowsAt` as ``check(_:)`` said to read them): a held entry
    /// without its message, a message the state does not know of where it claims to know all.
    public static func verify(
        _ held: HeldEvents, key: String, lowestRows: [(sequence: Int64, event: KeyState.HeldEvent)],
        rowsAt: [Int64: KeyState.HeldEvent]
    ) throws(StoreError) {
        let expectedLow = held.knownSequences.filter { $0 <= held.knownThrough }
        let stored = { (event: KeyState.HeldEvent) in KeyState.HeldEvent(eventId: event.eventId, heldAt: StoreTime.stored(event.heldAt)) }
        var agrees = lowestRows.count >= expectedLow.count
            && zip(expectedLow, lowestRows).allSatisfy { sequence, row in
                row.sequence == sequence && held[sequence].map(stored) == row.event
            }
        if lowestRows.count > expectedLow.count, lowestRows[expectedLow.count].sequence <= held.knownThrough {
            agrees = false
        }
        for sequence in held.knownSequences where sequence > held.knownThrough {
            agrees = agrees && held[sequence].map(stored) == rowsAt[sequence]
        }
        guard agrees else {
            throw StoreError(
                code: .invalidChange,
                message: "key \(key.prefix(128)): the state's held sequences \(held.knownSequences.prefix(16)) "
                    + "do not match the held messages \(lowestRows.map(\.sequence).prefix(16)) after the change"
            )
        }
    }
}

extension KeyChange {
    /// Whether this change leaves its key's held messages as `snapshot` (the one it was decided
    /// on) knew them: it moves an existing key from the snapshot's version, writes no held
    /// message, and its new state's view of them is the snapshot's. Such a view was read from
    /// the rows, or checked against them when the commit that made it was, and the rows cannot
    /// have changed without the key's version: a commit may skip ``StoredHeldEvents/verify``.
    public func keepsHeld(asIn snapshot: KeySnapshot) -> Bool {
        expectedVersion > 0 && snapshot.version == expectedVersion && insertHeld.isEmpty && deleteHeldSequence == nil
            && newState?.held == snapshot.state?.held
    }
}
