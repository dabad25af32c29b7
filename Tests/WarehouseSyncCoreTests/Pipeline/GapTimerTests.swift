import Foundation
import Testing
import WarehouseSyncCore

@Suite("GapTimer")
struct GapTimerTests {
    typealias Timer = GapTimer<TestInstant>
    let heldAt = PipelineFixtures.time(0)
    let gate = SequenceGate(policy: SequencingPolicy(gapTimeout: .seconds(30)))

    /// A key holding sequence 3 while 2 is missing, since `heldAt`.
    private var gapped: KeyState {
        KeyState(nextExpected: 2, held: [3: KeyState.HeldEvent(eventId: "e3", heldAt: heldAt)])
    }

    @Test("the first look reads the wait off the wall clock; later ones add monotonic time only")
    func firstLookThenMonotonic() {
        var timer = Timer()
        #expect(timer.waited(key: "K", oldestHeldAt: heldAt, wallNow: PipelineFixtures.time(10), now: .seconds(100)) == .seconds(10))
        // The wall clock jumps an hour ahead; five monotonic seconds pass.
        #expect(timer.waited(key: "K", oldestHeldAt: heldAt, wallNow: PipelineFixtures.time(3_605), now: .seconds(105)) == .seconds(15))
        // And back a day: still counting on.
        #expect(timer.waited(key: "K", oldestHeldAt: heldAt, wallNow: PipelineFixtures.time(-86_400), now: .seconds(125)) == .seconds(35))
    }

    @Test("a forward jump of the wall clock parks nothing; the real timeout does")
    func forwardJumpParksNothing() {
        var timer = Timer()
        let first = timer.waited(key: "K", oldestHeldAt: heldAt, wallNow: PipelineFixtures.time(1), now: .seconds(0))
        #expect(gate.checkGap(gapped, waited: first, now: PipelineFixtures.time(1)) == nil)
        let jumped = PipelineFixtures.time(7_200)
        #expect(gate.checkGap(gapped, now: jumped) != nil, "the wall clock alone would park it")
        let afterJump = timer.waited(key: "K", oldestHeldAt: heldAt, wallNow: jumped, now: .seconds(5))
        #expect(gate.checkGap(gapped, waited: afterJump, now: jumped) == nil)
        let late = timer.waited(key: "K", oldestHeldAt: heldAt, wallNow: jumped, now: .seconds(29))
        #expect(gate.checkGap(gapped, waited: late, now: jumped)?.parked?.reason == .gapTimeout)
    }

    @Test("a wall clock behind the hold counts as no wait yet, never as a negative one")
    func clockBehind() {
        var timer = Timer()
        #expect(timer.waited(key: "K", oldestHeldAt: heldAt, wallNow: PipelineFixtures.time(-50), now: .seconds(0)) == .zero)
        #expect(timer.waited(key: "K", oldestHeldAt: heldAt, wallNow: PipelineFixtures.time(-50), now: .seconds(31)) == .seconds(31))
    }

    @Test("a new oldest held event starts a new watch; retain forgets keys that hold nothing")
    func newWatchAndRetain() {
        var timer = Timer()
        _ = timer.waited(key: "A", oldestHeldAt: heldAt, wallNow: PipelineFixtures.time(20), now: .seconds(0))
        _ = timer.waited(key: "B", oldestHeldAt: heldAt, wallNow: PipelineFixtures.time(20), now: .seconds(0))
        let newer = PipelineFixtures.time(25)
        #expect(timer.waited(key: "A", oldestHeldAt: newer, wallNow: PipelineFixtures.time(27), now: .seconds(40)) == .seconds(2))
        timer.retain(only: ["A"])
        #expect(timer.watchedKeys == ["A"])
    }

    @Test("checkGap(waited:) leaves a key alone whose event in turn is held, that is parked, or holds nothing")
    func checkGapGuards() {
        let now = PipelineFixtures.time(100)
        #expect(gate.checkGap(KeyState(nextExpected: 2), waited: .seconds(999), now: now) == nil)
        let inTurn = KeyState(nextExpected: 3, held: [3: KeyState.HeldEvent(eventId: "e3", heldAt: heldAt)])
        #expect(gate.checkGap(inTurn, waited: .seconds(999), now: now) == nil)
        let parked = gate.checkGap(gapped, waited: .seconds(30), now: now)
        #expect(parked?.parked == KeyState.Parking(since: now, reason: .gapTimeout))
        #expect(gate.checkGap(parked!, waited: .seconds(999), now: now) == nil)
    }
}
