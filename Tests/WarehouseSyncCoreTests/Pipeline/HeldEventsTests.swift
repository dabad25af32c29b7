import Foundation
import Testing
import WarehouseSyncCore

/// The bounded view of a key's held events (``HeldEvents``) and the gate's decisions on it.
@Suite("HeldEvents")
struct HeldEventsTests {
    let gate = SequenceGate(policy: SequencingPolicy(gapTimeout: .seconds(30)))

    private func event(_ sequence: Int64, at seconds: Double = 0) -> KeyState.HeldEvent {
        KeyState.HeldEvent(eventId: "e\(sequence)", heldAt: PipelineFixtures.time(seconds))
    }

    /// What a store reads of a key holding 2…101 (held in reverse, 101 first), asked about `asked`.
    private func view(asked: Int64?) -> HeldEvents {
        HeldEvents(
            lowest: (2...5).map { ($0, event($0, at: Double(101 - $0))) }, moreAbove: true,
            asked: asked.map { [($0, $0 <= 101 ? event($0, at: Double(101 - $0)) : nil)] } ?? [], oldestHeldAt: PipelineFixtures.time(0))
    }

    @Test("a view knows the lowest events, the one asked about and the oldest time; not the rest")
    func viewKnowsWhatWasRead() {
        let held = view(asked: 60)
        #expect(held.knownSequences == [2, 3, 4, 5, 60])
        #expect(held.isKnown(1) && held.isKnown(5) && held.isKnown(60))
        #expect(!held.isKnown(6) && !held.isKnown(61))
        // Asked about and not held: known to be free.
        #expect(view(asked: 200).isKnown(200) && view(asked: 200)[200] == nil)
        #expect(!held.isEmpty && held.lowest == 2)
        #expect(held.oldestHeldAt == PipelineFixtures.time(0))
        let state = KeyState(nextExpected: 1, held: held)
        #expect(state.missingSequences == 1...1)
    }

    @Test("all of them when the store read all: a dictionary literal is complete")
    func completeView() {
        let held: HeldEvents = [4: event(4, at: 3), 9: event(9, at: 1)]
        #expect(held.isKnown(100) && held[100] == nil)
        #expect(held.oldestHeldAt == PipelineFixtures.time(1) && held.lowest == 4)
        let empty: HeldEvents = [:]
        #expect(empty.isEmpty && empty.lowest == nil && empty.oldestHeldAt == nil)
    }

    @Test("the gate decides on a view: a twin of a held sequence far up conflicts, a new one is held")
    func decideOnAView() {
        let state = KeyState(nextExpected: 1, held: view(asked: 60))
        let twin = PipelineFixtures.incoming("other", sequence: 60)
        #expect(gate.decide(state, event: twin, record: .notSeen, now: PipelineFixtures.time(200)).action
            == .conflict(.sequenceHeld(byEventId: "e60")))
        let newcomer = PipelineFixtures.incoming("e200", sequence: 200)
        let hold = gate.decide(KeyState(nextExpected: 1, held: view(asked: 200)), event: newcomer, record: .notSeen, now: PipelineFixtures.time(200))
        #expect(hold.action == .hold)
        #expect(hold.updatedState?.held[200]?.eventId == "e200")
        #expect(hold.updatedState?.held.oldestHeldAt == PipelineFixtures.time(0))
    }

    @Test("settling walks the view; past what it read, it asks for a fresh read instead of guessing")
    func settleWalksTheView() {
        var state = KeyState(nextExpected: 1, held: view(asked: nil))
        var released: [Int64] = []
        var settlement = gate.settle(state, sequence: 1)
        while let release = settlement.release {
            released.append(release.sequence)
            state = settlement.updatedState!
            settlement = gate.settle(state, sequence: release.sequence)
        }
        #expect(released == [2, 3, 4, 5])
        let after = settlement.updatedState!
        // 6 is held, but this view never read it: no release, and the view says so.
        #expect(after.nextExpected == 6 && !after.held.isKnown(6))
        #expect(after.lowestHeld == nil && !after.held.isEmpty)
        // The oldest (101) was not settled, so its time still stands; a gap check on this view
        // parks nothing, as it cannot tell whether 6 is held.
        #expect(after.oldestHeldAt == PipelineFixtures.time(0))
        #expect(gate.checkGap(after, waited: .seconds(3600), now: PipelineFixtures.time(3600)) == nil)
    }

    @Test("settling the oldest in a partial view forgets the oldest time rather than guess it")
    func oldestForgotten() {
        let held = HeldEvents(
            lowest: [(2, event(2, at: 0)), (3, event(3, at: 5))], moreAbove: true, oldestHeldAt: PipelineFixtures.time(0))
        let settled = gate.settle(KeyState(nextExpected: 2, held: held), sequence: 2)
        #expect(settled.release == Release(sequence: 3, eventId: "e3"))
        #expect(settled.updatedState?.oldestHeldAt == nil)
        let complete = gate.settle(KeyState(nextExpected: 2, held: [2: event(2, at: 0), 3: event(3, at: 5)]), sequence: 2)
        #expect(complete.updatedState?.oldestHeldAt == PipelineFixtures.time(5))
    }
}
