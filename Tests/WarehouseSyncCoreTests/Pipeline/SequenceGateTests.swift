import Foundation
import Testing
import WarehouseSyncCore

@Suite("SequenceGate")
struct SequenceGateTests {
    let gate = SequenceGate(policy: SequencingPolicy(gapTimeout: .seconds(30)))
    let now = PipelineFixtures.time(0)

    private func held(_ entries: [Int64: String], at time: Date = PipelineFixtures.time(0)) -> [Int64: KeyState.HeldEvent] {
        entries.mapValues { KeyState.HeldEvent(eventId: $0, heldAt: time) }
    }

    // MARK: First sequence

    @Test("a new key expects sequence 1: 1 is applied and the key's state is created")
    func newKeyApplies1() {
        let event = PipelineFixtures.incoming("e1", sequence: 1)
        let decision = gate.decide(nil, event: event, record: .notSeen, now: now)
        #expect(decision == GateDecision(
            action: .apply, updatedState: KeyState(nextExpected: 1, claim: .init(eventId: "e1", sequence: 1)), updatedRecord: .posting(event.fingerprint)))
    }

    @Test("a new key holds anything after 1")
    func newKeyHoldsLater() {
        let event = PipelineFixtures.incoming("e3", sequence: 3)
        let decision = gate.decide(nil, event: event, record: .notSeen, now: now)
        #expect(decision == GateDecision(
            action: .hold, updatedState: KeyState(nextExpected: 1, held: held([3: "e3"])), updatedRecord: .held(event.fingerprint)
        ))
    }

    @Test("with acceptFirstSeen the first sequence seen becomes the start; lower ones are then stale")
    func acceptFirstSeen() {
        let onboarding = SequenceGate(policy: SequencingPolicy(acceptFirstSeen: true, gapTimeout: .seconds(30)))
        let first = onboarding.decide(nil, event: PipelineFixtures.incoming("e7", sequence: 7), record: .notSeen, now: now)
        #expect(first.action == .apply)
        #expect(first.updatedState == KeyState(nextExpected: 7, claim: .init(eventId: "e7", sequence: 7)))
        let earlier = onboarding.decide(
            first.updatedState, event: PipelineFixtures.incoming("e5", sequence: 5), record: .notSeen, now: now
        )
        #expect(earlier.action == .stale)
    }

    // MARK: In turn, ahead, behind

    @Test("the event in turn is applied, claiming the key's turn; its record says it is being posted")
    func inTurnApplies() {
        let event = PipelineFixtures.incoming("e4", sequence: 4)
        let decision = gate.decide(KeyState(nextExpected: 4), event: event, record: .notSeen, now: now)
        #expect(decision == GateDecision(
            action: .apply, updatedState: KeyState(nextExpected: 4, claim: .init(eventId: "e4", sequence: 4)), updatedRecord: .posting(event.fingerprint)))
    }

    @Test("its retry or redelivery comes back to its own claim: applied again, nothing changed")
    func claimantComesBack() {
        let event = PipelineFixtures.incoming("e4", sequence: 4)
        let claimed = KeyState(nextExpected: 4, claim: .init(eventId: "e4", sequence: 4))
        let decision = gate.decide(claimed, event: event, record: .posting(event.fingerprint), now: now)
        #expect(decision == GateDecision(action: .apply, updatedRecord: .posting(event.fingerprint)))
    }

    @Test("another eventId under a claimed sequence is a conflict, never posted too (a WMS re-emitting under a new id)")
    func twinOfAClaimConflicts() {
        let claimed = KeyState(nextExpected: 4, claim: .init(eventId: "e4", sequence: 4))
        let twin = PipelineFixtures.incoming("e4-rescan", sequence: 4)
        #expect(gate.decide(claimed, event: twin, record: .notSeen, now: now) == GateDecision(
            action: .conflict(.sequenceClaimed(byEventId: "e4"))))
        #expect(ConflictDetail.sequenceClaimed(byEventId: "e4").description == "sequence already being posted for eventId e4")
        // Two replicas decided on the same snapshot: the second commit loses the version check,
        // decides again on the first one's state, and gets the conflict.
        let first = gate.decide(KeyState(nextExpected: 4), event: PipelineFixtures.incoming("e4", sequence: 4), record: .notSeen, now: now)
        #expect(gate.decide(first.updatedState, event: twin, record: .notSeen, now: now).action == .conflict(.sequenceClaimed(byEventId: "e4")))
    }

    @Test("a claim for another sequence is stale and binds nothing (a process without claims moved the key on)")
    func staleClaim() {
        let stale = KeyState(nextExpected: 5, claim: .init(eventId: "e4", sequence: 4))
        #expect(stale.claimant == nil)
        let next = PipelineFixtures.incoming("e5", sequence: 5)
        #expect(gate.decide(stale, event: next, record: .notSeen, now: now) == GateDecision(
            action: .apply, updatedState: KeyState(nextExpected: 5, claim: .init(eventId: "e5", sequence: 5)),
            updatedRecord: .posting(next.fingerprint)))
    }

    @Test("a parked key does not hold a twin of its claimant: it is a conflict, or a skip would post it beside the claimant")
    func parkedKeyTwinOfClaimant() {
        let parked = KeyState(
            nextExpected: 4, held: held([6: "e6"]), parked: KeyState.Parking(since: now, reason: .gapTimeout),
            claim: .init(eventId: "e4", sequence: 4))
        let twin = PipelineFixtures.incoming("e4-rescan", sequence: 4)
        #expect(gate.decide(parked, event: twin, record: .notSeen, now: now).action == .conflict(.sequenceClaimed(byEventId: "e4")))
        // The claimant itself, back from its retry, is held like any event of a parked key.
        let claimant = PipelineFixtures.incoming("e4", sequence: 4)
        #expect(gate.decide(parked, event: claimant, record: .posting(claimant.fingerprint), now: now).action == .holdParked)
    }

    @Test("settling or skipping clears the claim")
    func settleAndSkipClearTheClaim() {
        let claimed = KeyState(nextExpected: 4, held: held([6: "e6"]), claim: .init(eventId: "e4", sequence: 4))
        #expect(gate.settle(claimed, sequence: 4).updatedState?.claim == nil)
        #expect(gate.skip(claimed)?.updatedState.claim == nil)
    }

    @Test("an event ahead is held with the time it arrived")
    func aheadIsHeld() {
        let later = PipelineFixtures.time(12)
        let event = PipelineFixtures.incoming("e5", sequence: 5)
        let decision = gate.decide(KeyState(nextExpected: 4, held: held([6: "e6"])), event: event, record: .notSeen, now: later)
        var expected = held([6: "e6"])
        expected[5] = KeyState.HeldEvent(eventId: "e5", heldAt: later)
        #expect(decision == GateDecision(
            action: .hold, updatedState: KeyState(nextExpected: 4, held: expected), updatedRecord: .held(event.fingerprint)
        ))
    }

    @Test("an event behind the key's position is stale; its replay is applied and moves nothing")
    func behindIsStaleUnlessReplay() {
        let state = KeyState(nextExpected: 4)
        let stale = gate.decide(state, event: PipelineFixtures.incoming("e2", sequence: 2), record: .notSeen, now: now)
        #expect(stale == GateDecision(action: .stale))
        let event = PipelineFixtures.incoming("e2", sequence: 2, isReplay: true)
        let replay = gate.decide(state, event: event, record: .notSeen, now: now)
        #expect(replay == GateDecision(action: .apply, updatedRecord: .posting(event.fingerprint)))
    }

    @Test("an event let through before comes back behind the key (skipped meanwhile): it is applied, not dropped")
    func letThroughBehindIsApplied() {
        let event = PipelineFixtures.incoming("e5", sequence: 5)
        let decision = gate.decide(KeyState(nextExpected: 8), event: event, record: .posting(event.fingerprint), now: now)
        #expect(decision == GateDecision(action: .apply, updatedRecord: .posting(event.fingerprint)))
    }

    // MARK: Dedup

    @Test("a posted eventId with the same payload is a duplicate, with another one a conflict — replay or not")
    func postedRecord() {
        for isReplay in [false, true] {
            let event = PipelineFixtures.incoming("e2", sequence: 2, isReplay: isReplay)
            let other = PipelineFixtures.incoming("e2", sequence: 2, quantity: 6, isReplay: isReplay)
            let state = KeyState(nextExpected: 3)
            #expect(gate.decide(state, event: event, record: .posted(event.fingerprint), now: now).action == .duplicate)
            #expect(
                gate.decide(state, event: event, record: .posted(other.fingerprint), now: now).action
                    == .conflict(.payloadDiffers)
            )
        }
    }

    @Test("a posted eventId is a duplicate even for a key never seen (nothing is created)")
    func postedOnUnknownKey() {
        let event = PipelineFixtures.incoming("e1", sequence: 1)
        #expect(gate.decide(nil, event: event, record: .posted(event.fingerprint), now: now) == GateDecision(action: .duplicate))
    }

    @Test("a held eventId: another payload conflicts, a copy is a duplicate while it waits")
    func heldRecord() {
        let event = PipelineFixtures.incoming("e6", sequence: 6)
        let other = PipelineFixtures.incoming("e6", sequence: 6, quantity: 9)
        let state = KeyState(nextExpected: 4, held: held([6: "e6"]))
        #expect(gate.decide(state, event: event, record: .held(other.fingerprint), now: now).action == .conflict(.payloadDiffers))
        #expect(gate.decide(state, event: event, record: .held(event.fingerprint), now: now) == GateDecision(action: .duplicate))
    }

    @Test("the held event in turn that comes back from a delayed retry is applied")
    func heldInTurnIsApplied() {
        let event = PipelineFixtures.incoming("e4", sequence: 4)
        let state = KeyState(nextExpected: 4, held: held([4: "e4", 5: "e5"]))
        #expect(
            gate.decide(state, event: event, record: .held(event.fingerprint), now: now)
                == GateDecision(action: .apply, updatedRecord: .posting(event.fingerprint))
        )
    }

    @Test("a sequence held for another eventId is a conflict naming it")
    func sequenceReuse() {
        let state = KeyState(nextExpected: 4, held: held([6: "e6"]))
        let decision = gate.decide(state, event: PipelineFixtures.incoming("x6", sequence: 6), record: .notSeen, now: now)
        #expect(decision == GateDecision(action: .conflict(.sequenceHeld(byEventId: "e6"))))
        #expect(ConflictDetail.sequenceHeld(byEventId: "e6").description == "sequence already held for eventId e6")
    }

    @Test("a dead-lettered eventId: a replay is posted even with an edited body; a non-replay with another payload conflicts")
    func deadLetteredRecord() {
        let state = KeyState(nextExpected: 5)
        let original = PipelineFixtures.incoming("e2", sequence: 2)
        let edited = PipelineFixtures.incoming("e2", sequence: 2, quantity: 7, isReplay: true)
        #expect(gate.decide(state, event: edited, record: .deadLettered(original.fingerprint), now: now).action == .apply)
        let resentSame = PipelineFixtures.incoming("e2", sequence: 2)
        #expect(gate.decide(state, event: resentSame, record: .deadLettered(original.fingerprint), now: now).action == .stale)
        let resentOther = PipelineFixtures.incoming("e2", sequence: 2, quantity: 7)
        #expect(
            gate.decide(state, event: resentOther, record: .deadLettered(original.fingerprint), now: now).action
                == .conflict(.payloadDiffers)
        )
    }

    @Test("an eventId being posted: a copy goes on (crash, retry), another payload conflicts unless it is a replay")
    func postingRecord() {
        let state = KeyState(nextExpected: 2)
        let event = PipelineFixtures.incoming("e2", sequence: 2)
        let other = PipelineFixtures.incoming("e2", sequence: 2, quantity: 8)
        #expect(gate.decide(state, event: event, record: .posting(event.fingerprint), now: now).action == .apply)
        #expect(gate.decide(state, event: other, record: .posting(event.fingerprint), now: now) == GateDecision(action: .conflict(.payloadDiffers)))
        let editedReplay = PipelineFixtures.incoming("e2", sequence: 2, quantity: 8, isReplay: true)
        #expect(gate.decide(state, event: editedReplay, record: .posting(event.fingerprint), now: now).action == .apply)
        // A replay cannot change what the key holds.
        let heldState = KeyState(nextExpected: 1, held: held([2: "e2"]))
        #expect(gate.decide(heldState, event: editedReplay, record: .held(event.fingerprint), now: now).action == .conflict(.payloadDiffers))
    }

    @Test("a replay ahead of the key follows the normal rules: it is held")
    func replayAheadIsHeld() {
        let decision = gate.decide(
            KeyState(nextExpected: 2), event: PipelineFixtures.incoming("e5", sequence: 5, isReplay: true),
            record: .notSeen, now: now
        )
        #expect(decision.action == .hold)
    }

    // MARK: Settling and releasing

    @Test("settling the event in turn moves the key on and releases held successors one by one, in order")
    func settleReleasesInOrder() {
        var state = KeyState(nextExpected: 1, held: held([2: "e2", 3: "e3", 5: "e5"]))
        var released: [Int64] = []
        var settlement = gate.settle(state, sequence: 1)
        while let next = settlement.updatedState {
            state = next
            guard let release = settlement.release else { break }
            #expect(release.eventId == "e\(release.sequence)")
            released.append(release.sequence)
            settlement = gate.settle(state, sequence: release.sequence)
        }
        #expect(released == [2, 3])
        #expect(state == KeyState(nextExpected: 4, held: held([5: "e5"])))
    }

    @Test("settling anything but the event in turn changes nothing (replays, second copies)")
    func settleIsIdempotent() {
        let state = KeyState(nextExpected: 4, held: held([5: "e5"]))
        for sequence: Int64 in [3, 5] {
            let settlement = gate.settle(state, sequence: sequence)
            #expect(settlement.updatedState == nil)
            #expect(settlement.release == nil)
        }
    }

    @Test("a parked key moves on when its event in flight settles, but releases nothing")
    func parkedReleasesNothing() {
        let parked = KeyState(
            nextExpected: 4, held: held([5: "e5"]), parked: .init(since: now, reason: .gapTimeout)
        )
        let settlement = gate.settle(parked, sequence: 4)
        #expect(settlement.updatedState?.nextExpected == 5)
        #expect(settlement.updatedState?.parked != nil)
        #expect(settlement.release == nil)
        #expect(gate.pendingRelease(settlement.updatedState!) == nil)
    }

    @Test("the last possible sequence settles without overflowing")
    func settleAtMaximum() {
        let settlement = gate.settle(KeyState(nextExpected: .max), sequence: .max)
        #expect(settlement.updatedState?.nextExpected == .max)
    }

    @Test("a release interrupted by a crash is found again")
    func pendingRelease() {
        #expect(gate.pendingRelease(KeyState(nextExpected: 4, held: held([4: "e4"]))) == Release(sequence: 4, eventId: "e4"))
        #expect(gate.pendingRelease(KeyState(nextExpected: 4, held: held([5: "e5"]))) == nil)
    }

    // MARK: Gaps

    @Test("a gap parks the key once its oldest held event has waited the gap timeout")
    func gapTimeoutParks() {
        let state = KeyState(nextExpected: 2, held: [
            3: .init(eventId: "e3", heldAt: PipelineFixtures.time(0)),
            4: .init(eventId: "e4", heldAt: PipelineFixtures.time(20)),
        ])
        #expect(gate.checkGap(state, now: PipelineFixtures.time(29.9)) == nil)
        let parkedAt = PipelineFixtures.time(30)
        let parked = gate.checkGap(state, now: parkedAt)
        #expect(parked?.parked == KeyState.Parking(since: parkedAt, reason: .gapTimeout))
        #expect(parked?.missingSequences == 2...2)
        #expect(gate.checkGap(parked!, now: PipelineFixtures.time(90)) == nil)  // parked already
    }

    @Test("no gap: nothing held, or the held event in turn is being released")
    func noGap() {
        let late = PipelineFixtures.time(3600)
        #expect(gate.checkGap(KeyState(nextExpected: 2), now: late) == nil)
        #expect(gate.checkGap(KeyState(nextExpected: 2, held: held([2: "e2", 4: "e4"])), now: late) == nil)
    }

    @Test("a parked key holds every new event, even the missing one, and still posts replays behind it")
    func parkedHoldsEverything() {
        let parked = KeyState(nextExpected: 2, held: held([4: "e4"]), parked: .init(since: now, reason: .gapTimeout))
        let missing = gate.decide(parked, event: PipelineFixtures.incoming("e2", sequence: 2), record: .notSeen, now: now)
        #expect(missing.action == .holdParked)
        #expect(missing.updatedState?.held[2]?.eventId == "e2")
        #expect(gate.decide(parked, event: PipelineFixtures.incoming("e9", sequence: 9), record: .notSeen, now: now).action == .holdParked)
        #expect(gate.decide(parked, event: PipelineFixtures.incoming("e1", sequence: 1), record: .notSeen, now: now).action == .stale)
        let replay = PipelineFixtures.incoming("e1", sequence: 1, isReplay: true)
        #expect(gate.decide(parked, event: replay, record: .notSeen, now: now).action == .apply)
        // Its held event in turn waits for the skip too.
        let inTurn = KeyState(nextExpected: 4, held: held([4: "e4"]), parked: .init(since: now, reason: .gapTimeout))
        let copy = PipelineFixtures.incoming("e4", sequence: 4)
        #expect(gate.decide(inTurn, event: copy, record: .held(copy.fingerprint), now: now).action == .duplicate)
    }

    @Test("skip gives up the missing sequences, unparks, and releases from the lowest held event")
    func skipResumes() {
        let parked = KeyState(nextExpected: 2, held: held([4: "e4", 5: "e5", 7: "e7"]), parked: .init(since: now, reason: .gapTimeout))
        let outcome = gate.skip(parked)
        #expect(outcome?.skipped == 2...3)
        #expect(outcome?.release == Release(sequence: 4, eventId: "e4"))
        #expect(outcome?.updatedState == KeyState(nextExpected: 4, held: held([4: "e4", 5: "e5", 7: "e7"]), skipped: [2...3]))
        let afterFour = gate.settle(outcome!.updatedState, sequence: 4)
        #expect(afterFour.release == Release(sequence: 5, eventId: "e5"))
        let afterFive = gate.settle(afterFour.updatedState!, sequence: 5)
        #expect(afterFive.release == nil)
        #expect(afterFive.updatedState?.missingSequences == 6...6)
    }

    @Test("skip when the missing event arrived during the park skips nothing; with nothing held it does nothing")
    func skipEdgeCases() {
        let parked = KeyState(nextExpected: 2, held: held([2: "e2", 4: "e4"]), parked: .init(since: now, reason: .gapTimeout))
        let outcome = gate.skip(parked)
        #expect(outcome?.skipped == nil)
        #expect(outcome?.release == Release(sequence: 2, eventId: "e2"))
        #expect(outcome?.updatedState.parked == nil)
        #expect(gate.skip(KeyState(nextExpected: 3)) == nil)
    }

    @Test("an event of a skipped gap that arrives late is dead-lettered, not dropped; its replay is posted")
    func lateSkippedEvent() {
        let parked = KeyState(nextExpected: 2, held: held([5: "e5"]), parked: .init(since: now, reason: .gapTimeout))
        let resumed = gate.skip(parked)!.updatedState
        #expect(resumed.skipped == [2...4])
        let late = PipelineFixtures.incoming("e3", sequence: 3)
        let decision = gate.decide(resumed, event: late, record: .notSeen, now: now)
        #expect(decision == GateDecision(action: .skipped), "nothing is written: the dead letter is what keeps it")
        let replay = PipelineFixtures.incoming("e3", sequence: 3, isReplay: true)
        #expect(gate.decide(resumed, event: replay, record: .notSeen, now: now).action == .apply)
        // Below the key but never skipped (sequence 1 was posted, its record pruned): stale.
        let old = PipelineFixtures.incoming("e1", sequence: 1)
        #expect(gate.decide(resumed, event: old, record: .notSeen, now: now).action == .stale)
        // Let through before the skip (it was in a delayed retry): posted when it comes back.
        #expect(gate.decide(resumed, event: late, record: .posting(late.fingerprint), now: now).action == .apply)
    }

    @Test("a key remembers its last 16 skipped gaps")
    func skippedGapsAreBounded() {
        var state = KeyState(nextExpected: 1)
        for gap in 0..<20 {
            let held = Int64(gap * 10 + 5)
            state = KeyState(nextExpected: state.nextExpected, held: self.held([held: "e\(held)"]), skipped: state.skipped)
            state = gate.skip(state)!.updatedState
            state = gate.settle(state, sequence: held).updatedState!
        }
        #expect(state.skipped.count == KeyState.maxSkippedRanges)
        // Gap g is (g - 1) * 10 + 6 ... g * 10 + 4 (the first: 1...4); the oldest four are forgotten.
        #expect(state.skipped.first == 36...44)
        #expect(state.skipped.last == 186...194)
        #expect(state.wasSkipped(190) && !state.wasSkipped(3) && !state.wasSkipped(195))
    }
}
