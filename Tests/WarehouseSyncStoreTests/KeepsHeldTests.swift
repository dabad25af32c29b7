import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncStore

/// When a commit may skip the check of a new state's held view against the held rows
/// (docs/store.md, "Rounds"): only when nothing it writes or knows of them changed.
@Suite("KeyChange.keepsHeld")
struct KeepsHeldTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let holding = KeyState(nextExpected: 3, held: [5: .init(eventId: "e-5", heldAt: now)])
    static let read = KeySnapshot(state: holding, version: 7, record: .notSeen)

    /// A change moving `read`'s key to `newState`, from `expectedVersion`.
    static func change(
        expectedVersion: Int64 = 7, newState: KeyState? = holding, insertHeld: [HeldMessage] = [], deleteHeldSequence: Int64? = nil
    ) -> KeyChange {
        KeyChange(
            stream: .inventory, key: "WH1/SKU-1", expectedVersion: expectedVersion, newState: newState,
            records: [DedupWrite(eventId: "e-3", record: .posted(EventFingerprint(hex: String(repeating: "3", count: 64))!), sequence: 3)],
            insertHeld: insertHeld, deleteHeldSequence: deleteHeldSequence, now: now)
    }

    @Test("the same view, no held write, at the version read: kept")
    func kept() {
        #expect(Self.change().keepsHeld(asIn: Self.read))
        let nothingHeld = KeySnapshot(state: KeyState(nextExpected: 3), version: 7, record: .notSeen)
        #expect(Self.change(newState: KeyState(nextExpected: 4)).keepsHeld(asIn: nothingHeld))
    }

    @Test("a held message written or deleted, another view, another version or a new key: checked")
    func checked() {
        let message = HeldMessage(sequence: 6, eventId: "e-6", heldAt: Self.now, routingKey: "inventory.WH1", headers: [:], body: [6])
        let holdsMore = KeyState(
            nextExpected: 3, held: [5: .init(eventId: "e-5", heldAt: Self.now), 6: .init(eventId: "e-6", heldAt: Self.now)])
        #expect(!Self.change(newState: holdsMore, insertHeld: [message]).keepsHeld(asIn: Self.read))
        #expect(!Self.change(insertHeld: [message]).keepsHeld(asIn: Self.read))
        #expect(!Self.change(deleteHeldSequence: 5).keepsHeld(asIn: Self.read))
        #expect(!Self.change(newState: KeyState(nextExpected: 3)).keepsHeld(asIn: Self.read), "a view that dropped an event")
        #expect(!Self.change(newState: holdsMore).keepsHeld(asIn: Self.read), "a view that claims one more")
        #expect(!Self.change(expectedVersion: 6).keepsHeld(asIn: Self.read), "decided on another version than the one read")
        let unknownKey = KeySnapshot(state: nil, version: 0, record: .notSeen)
        #expect(!Self.change(expectedVersion: 0, newState: KeyState(nextExpected: 2)).keepsHeld(asIn: unknownKey))
    }
}
