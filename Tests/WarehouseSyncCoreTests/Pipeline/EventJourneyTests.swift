import Foundation
import Testing
import WarehouseSyncCore

/// ``EventJourney`` step by step: each test feeds answers and asserts on the actions it returns
/// (the runtime's whole job is to carry those out).
@Suite("Event journey")
struct EventJourneyTests {
    static let rules = EventJourney.Rules(
        stream: .inventory, decoder: EventDecoder(), gate: SequenceGate(policy: SequencingPolicy(gapTimeout: .seconds(60))),
        retryPolicy: RetryPolicy(maxAttempts: 3, topology: PipelineFixtures.topology())!)
    static let now = PipelineFixtures.epoch

    static func envelope(
        _ eventId: String = "e-1", sequence: Int64 = 1, attempt: Int? = nil, replayOf: String? = nil, body: String? = nil
    ) -> EventJourney.Envelope {
        SimulatedMessage(
            body: body ?? PipelineFixtures.inventoryBody(eventId: eventId, sequence: sequence, quantity: 5), attempt: attempt,
            replayOf: replayOf
        ).envelope
    }

    static func fresh(_ state: KeyState? = nil, version: Int64 = 0, record: DedupRecord = .notSeen) -> KeySnapshot {
        KeySnapshot(state: state, version: version, record: record)
    }

    /// The step of a `.store` action; records an issue for any other action.
    static func step(_ action: EventJourney.Action, sourceLocation: SourceLocation = #_sourceLocation) -> KeyStep? {
        guard case .store(let step) = action else {
            Issue.record("expected a store step, got \(action)", sourceLocation: sourceLocation)
            return nil
        }
        return step
    }

    static func ending(_ action: EventJourney.Action, sourceLocation: SourceLocation = #_sourceLocation) -> EventJourney.Ending? {
        guard case .finish(let ending) = action else {
            Issue.record("expected the end, got \(action)", sourceLocation: sourceLocation)
            return nil
        }
        return ending
    }

    /// Runs a delivery of `e-1` up to its post: decided `apply` on an empty store.
    static func postingJourney(attempt: Int? = nil) throws -> (EventJourney, KeySnapshot) {
        var journey = EventJourney(delivery: envelope(attempt: attempt), rules: rules)
        let decide = try #require(step(journey.start()))
        let (_, outcome) = decide.run(on: fresh(), now: now)
        guard case .decided(.apply, let after) = outcome else {
            Issue.record("expected apply, got \(outcome)")
            throw CancellationError()
        }
        guard case .post = journey.stored(outcome) else {
            Issue.record("an applied event is posted next")
            throw CancellationError()
        }
        return (journey, after)
    }

    @Test("an event in turn: decide (claim + posting record), post, settle (posted record), ack")
    func inTurn() throws {
        var journey = EventJourney(delivery: Self.envelope(), rules: Self.rules)
        #expect(journey.key == "WH1/SKU-1")
        let decide = try #require(Self.step(journey.start()))
        #expect(decide.key == "WH1/SKU-1")
        #expect(decide.eventId == "e-1")
        #expect(decide.sequence == 1)
        #expect(decide.assumed == nil)
        let (change, outcome) = decide.run(on: Self.fresh(), now: Self.now)
        let written = try #require(change)
        #expect(written.expectedVersion == 0)
        #expect(written.newState?.claim?.eventId == "e-1")
        #expect(written.records.map(\.eventId) == ["e-1"])
        guard case .posting = written.records.first?.record else {
            Issue.record("an applied event is recorded `posting` before its post")
            return
        }
        guard case .decided(.apply, let after) = outcome else {
            Issue.record("expected apply, got \(outcome)")
            return
        }
        #expect(after.version == 1)

        guard case .post(let document) = journey.stored(outcome) else {
            Issue.record("an applied event is posted next")
            return
        }
        #expect(document.idempotencyKey == "e-1")

        let settle = try #require(Self.step(journey.answered(.posted(documentId: "D-7"))))
        #expect(settle.assumed == after, "the settle decides on the snapshot the decision left")
        let (settleChange, settled) = settle.run(on: after, now: Self.now)
        #expect(settleChange?.newState == KeyState(nextExpected: 2))
        #expect(settleChange?.records.first?.documentId == "D-7")
        guard case .posted = settleChange?.records.first?.record else {
            Issue.record("a posted event is recorded `posted`")
            return
        }
        #expect(settleChange?.deleteHeldSequence == nil, "an event let through on arrival has no held message to delete")
        #expect(settled == .settled(nil))

        let ending = try #require(Self.ending(journey.stored(settled)))
        #expect(ending == .init(outcome: .posted(documentId: "D-7"), delivery: .ack))
    }

    @Test("an invalid delivery is dead-lettered with the field and rule it broke, then acked; nothing is stored")
    func invalid() throws {
        var journey = EventJourney(delivery: Self.envelope(body: #"{"schema":"inventory.delta/1","eventId":"x"}"#), rules: Self.rules)
        #expect(journey.key == nil)
        #expect(journey.event == nil)
        guard case .publishDeadLetter(.invalid, let error, let attempt) = journey.start() else {
            Issue.record("an invalid message is dead-lettered first")
            return
        }
        #expect(error.contains("warehouse"))
        #expect(attempt == 1)
        #expect(Self.ending(journey.published()) == .init(outcome: .deadLettered(.invalid), delivery: .ack))
    }

    @Test("a shipment on the inventory queue is invalid: the schema names the stream")
    func wrongStream() throws {
        let body = #"{"schema":"shipment.event/1","eventId":"s-1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":1,"shipmentId":"S1","status":"shipped","lines":[{"sku":"A","quantity":1,"uom":"EA"}]}"#
        var journey = EventJourney(delivery: Self.envelope(body: body), rules: Self.rules)
        guard case .publishDeadLetter(.invalid, let error, _) = journey.start() else {
            Issue.record("a message of another stream is dead-lettered as invalid")
            return
        }
        #expect(error.contains("schema"))
    }

    @Test("an event ahead of its turn is stored with its message as held, then acked")
    func held() throws {
        var journey = EventJourney(delivery: Self.envelope("e-3", sequence: 3, attempt: 2), rules: Self.rules)
        let decide = try #require(Self.step(journey.start()))
        let (change, outcome) = decide.run(on: Self.fresh(KeyState(nextExpected: 1), version: 4), now: Self.now)
        let held = try #require(change?.insertHeld.first)
        #expect(held.sequence == 3)
        #expect(held.eventId == "e-3")
        #expect(held.headers[WireHeader.attempt] == "2", "a held message keeps its headers")
        #expect(held.body == Self.envelope("e-3", sequence: 3).body)
        #expect(change?.expectedVersion == 4)
        #expect(Self.ending(journey.stored(outcome)) == .init(outcome: .held(parked: false), delivery: .ack))
    }

    @Test("a duplicate and a stale event are acked with nothing written")
    func duplicateAndStale() throws {
        let (_, after) = try Self.postingJourney()
        var copy = EventJourney(delivery: Self.envelope(), rules: Self.rules)
        let decide = try #require(Self.step(copy.start()))
        let posted = KeySnapshot(state: KeyState(nextExpected: 2), version: 2, record: .posted(EventFingerprint(of: copy.event!)))
        let (change, outcome) = decide.run(on: posted, now: Self.now)
        #expect(change == nil)
        #expect(Self.ending(copy.stored(outcome))?.outcome == .duplicate)

        var late = EventJourney(delivery: Self.envelope("e-0", sequence: 1), rules: Self.rules)
        let lateDecide = try #require(Self.step(late.start()))
        let (lateChange, lateOutcome) = lateDecide.run(on: Self.fresh(KeyState(nextExpected: 5), version: after.version), now: Self.now)
        #expect(lateChange == nil)
        #expect(Self.ending(late.stored(lateOutcome)) == .init(outcome: .stale, delivery: .ack))
    }

    @Test("another payload under a posted eventId is dead-lettered as a conflict; the key is not settled")
    func conflict() throws {
        var journey = EventJourney(delivery: Self.envelope(), rules: Self.rules)
        let decide = try #require(Self.step(journey.start()))
        let other = EventFingerprint(of: PipelineFixtures.inventory(eventId: "e-1", quantity: 9))
        let (change, outcome) = decide.run(on: Self.fresh(KeyState(nextExpected: 2), version: 2, record: .posted(other)), now: Self.now)
        #expect(change == nil)
        guard case .publishDeadLetter(.conflict, let error, _) = journey.stored(outcome) else {
            Issue.record("a conflict is dead-lettered")
            return
        }
        #expect(error.contains("different payload"))
        #expect(Self.ending(journey.published()) == .init(outcome: .deadLettered(.conflict), delivery: .ack))
    }

    @Test("a transient failure publishes a retry copy for the next attempt, then acks; nothing is settled")
    func transientDelivery() throws {
        var (journey, _) = try Self.postingJourney()
        guard case .publishRetry(let tier, let nextAttempt) = journey.answered(.transient(reason: .status(503), retryAfter: nil)) else {
            Issue.record("a transient failure is retried")
            return
        }
        #expect(tier.name == "5s")
        #expect(nextAttempt == 2)
        #expect(Self.ending(journey.published()) == .init(outcome: .retryScheduled(tier: "5s", nextAttempt: 2), delivery: .ack))
    }

    @Test("the last attempt's transient failure is dead-lettered retries-exhausted and moves the key on")
    func exhausted() throws {
        var (journey, after) = try Self.postingJourney(attempt: 3)
        guard case .publishDeadLetter(.retriesExhausted, let error, 3) = journey.answered(.transient(reason: .timeout, retryAfter: nil)) else {
            Issue.record("the last attempt is dead-lettered")
            return
        }
        #expect(error.contains("attempt 3 of 3"))
        let settle = try #require(Self.step(journey.published()))
        let (change, outcome) = settle.run(on: after, now: Self.now)
        guard case .deadLettered = change?.records.first?.record else {
            Issue.record("the event is recorded dead-lettered with the settle")
            return
        }
        #expect(change?.newState?.nextExpected == 2)
        #expect(Self.ending(journey.stored(outcome))?.outcome == .deadLettered(.retriesExhausted))
    }

    @Test("a rejection settles the key, and the held event in turn is handed on as the next journey")
    func rejectionReleasesNext() throws {
        var journey = EventJourney(delivery: Self.envelope(), rules: Self.rules)
        let decide = try #require(Self.step(journey.start()))
        // Sequence 2 already waits in held.
        let waiting = KeyState(nextExpected: 1, held: [2: .init(eventId: "e-2", heldAt: Self.now)])
        let (_, outcome) = decide.run(on: Self.fresh(waiting, version: 3), now: Self.now)
        guard case .decided(.apply, let after) = outcome, case .post = journey.stored(outcome) else {
            Issue.record("sequence 1 applies")
            return
        }
        guard case .publishDeadLetter(.erpRejected, let error, _) = journey.answered(.rejected(status: 422, message: "unknown SKU")) else {
            Issue.record("a rejection is dead-lettered")
            return
        }
        #expect(error == "HTTP 422: unknown SKU")
        let settle = try #require(Self.step(journey.published()))
        let (_, settled) = settle.run(on: after, now: Self.now)
        guard case .settled(let next?) = settled else {
            Issue.record("sequence 2 is released")
            return
        }
        #expect(next.release == Release(sequence: 2, eventId: "e-2"))
        #expect(next.key == "WH1/SKU-1")
        #expect(next.snapshot.version == after.version + 1)
        #expect(Self.ending(journey.stored(settled)) == .init(outcome: .deadLettered(.erpRejected), delivery: .ack, next: next))
    }

    @Test("a release loads its held message, posts it, and settles without an ack")
    func release() throws {
        let state = KeyState(nextExpected: 2, held: [2: .init(eventId: "e-2", heldAt: Self.now)])
        let snapshot = Self.fresh(state, version: 5)
        var journey = EventJourney(
            release: .init(release: Release(sequence: 2, eventId: "e-2"), key: "WH1/SKU-1", snapshot: snapshot), rules: Self.rules)
        #expect(journey.key == "WH1/SKU-1")
        guard case .loadHeld(key: "WH1/SKU-1", sequence: 2) = journey.start() else {
            Issue.record("a release reads its held message first")
            return
        }
        let body = Self.envelope("e-2", sequence: 2).body
        let held = HeldMessage(sequence: 2, eventId: "e-2", heldAt: Self.now, routingKey: "inventory.WH1", headers: [:], body: body)
        guard case .post(let document) = journey.heldLoaded(held) else {
            Issue.record("a loaded release is posted")
            return
        }
        #expect(document.idempotencyKey == "e-2")
        #expect(journey.envelope?.routingKey == "inventory.WH1")
        let settle = try #require(Self.step(journey.answered(.alreadyPosted)))
        #expect(settle.assumed == snapshot)
        let (change, settled) = settle.run(on: snapshot, now: Self.now)
        #expect(change?.newState == KeyState(nextExpected: 3))
        #expect(change?.deleteHeldSequence == 2)
        #expect(Self.ending(journey.stored(settled)) == .init(outcome: .posted(documentId: nil), delivery: .none))
    }

    @Test("a release whose held message is gone ends with nothing posted")
    func releaseGone() {
        var journey = EventJourney(
            release: .init(release: Release(sequence: 2, eventId: "e-2"), key: "k", snapshot: Self.fresh()), rules: Self.rules)
        _ = journey.start()
        #expect(Self.ending(journey.heldLoaded(nil)) == .init(outcome: .nothingHeld, delivery: .none))
    }

    @Test("a released event that fails transiently gets a retry copy and its record says so")
    func releaseRetry() throws {
        let snapshot = Self.fresh(KeyState(nextExpected: 2, held: [2: .init(eventId: "e-2", heldAt: Self.now)]), version: 5)
        var journey = EventJourney(
            release: .init(release: Release(sequence: 2, eventId: "e-2"), key: "WH1/SKU-1", snapshot: snapshot), rules: Self.rules)
        _ = journey.start()
        let body = Self.envelope("e-2", sequence: 2).body
        _ = journey.heldLoaded(HeldMessage(sequence: 2, eventId: "e-2", heldAt: Self.now, routingKey: "inventory.WH1", headers: [:], body: body))
        guard case .publishRetry(_, 2) = journey.answered(.transient(reason: .connectionFailed, retryAfter: nil)) else {
            Issue.record("a transient failure is retried")
            return
        }
        let mark = try #require(Self.step(journey.published()))
        let (change, outcome) = mark.run(on: snapshot, now: Self.now)
        #expect(change?.newState == nil)
        guard case .posting = change?.records.first?.record else {
            Issue.record("the released event's record is `posting` while its copy waits")
            return
        }
        #expect(Self.ending(journey.stored(outcome))?.delivery == EventJourney.DeliverySettlement.none)
    }

    @Test("a held message invalid on release is dead-lettered and its held record becomes dead-lettered")
    func releaseInvalid() throws {
        var journey = EventJourney(
            release: .init(release: Release(sequence: 2, eventId: "e-2"), key: "WH1/SKU-1", snapshot: Self.fresh()), rules: Self.rules)
        _ = journey.start()
        let held = HeldMessage(sequence: 2, eventId: "e-2", heldAt: Self.now, routingKey: "r", headers: [:], body: Array("{}".utf8))
        guard case .publishDeadLetter(.invalid, _, _) = journey.heldLoaded(held) else {
            Issue.record("an invalid held message is dead-lettered")
            return
        }
        let settle = try #require(Self.step(journey.published()))
        #expect(settle.assumed == nil, "decided on the key as the store has it then")
        let fingerprint = EventFingerprint(of: PipelineFixtures.inventory(eventId: "e-2", sequence: 2))
        let current = KeySnapshot(
            state: KeyState(nextExpected: 2, held: [2: .init(eventId: "e-2", heldAt: Self.now)]), version: 7, record: .held(fingerprint))
        let (change, _) = settle.run(on: current, now: Self.now)
        #expect(change?.records == [DedupWrite(eventId: "e-2", record: .deadLettered(fingerprint), sequence: 2)])
        #expect(change?.newState?.nextExpected == 3)
    }

    @Test("a replay is believed only when the store's letter names the event")
    func replayVouching() throws {
        for (letterIds, vouched) in [(["e-1"], true), (["other"], false), ([], false)] {
            var journey = EventJourney(delivery: Self.envelope(replayOf: "42"), rules: Self.rules)
            guard case .checkReplay(letterId: "42") = journey.start() else {
                Issue.record("a claimed replay is checked first")
                return
            }
            let decide = try #require(Self.step(journey.replayChecked(letterEventIds: letterIds)))
            #expect(journey.isVouchedReplay == vouched)
            // Behind the key: only a vouched replay is posted, any other is stale.
            let (_, outcome) = decide.run(on: Self.fresh(KeyState(nextExpected: 9), version: 1), now: Self.now)
            guard case .decided(let action, _) = outcome else { return }
            #expect(action == (vouched ? .apply : .stale))
        }
    }

    @Test("a failed action hands a delivery back; a release is left to the maintenance pass")
    func failure() throws {
        var delivery = EventJourney(delivery: Self.envelope(), rules: Self.rules)
        _ = delivery.start()
        #expect(Self.ending(delivery.failed()) == .init(outcome: .gaveUp, delivery: .handBack))

        var release = EventJourney(
            release: .init(release: Release(sequence: 2, eventId: "e-2"), key: "k", snapshot: Self.fresh()), rules: Self.rules)
        _ = release.start()
        #expect(Self.ending(release.failed()) == .init(outcome: .gaveUp, delivery: .none))
    }

    @Test("a key's queued events are decided in one step up to the first let through; one write, version moved once")
    func decidedInOrder() throws {
        // Delivered 3, 4, 3 again (the same event), 1 (in turn), 2 (must wait for 1 to settle).
        let deliveries: [(String, Int64)] = [("e-3", 3), ("e-4", 4), ("e-3", 3), ("e-1", 1), ("e-2", 2)]
        var journeys = deliveries.map { EventJourney(delivery: Self.envelope($0.0, sequence: $0.1), rules: Self.rules) }
        var steps: [KeyStep] = []
        for index in journeys.indices { steps.append(try #require(Self.step(journeys[index].start()))) }
        let step = KeyStep.inOrder(steps)
        #expect(step.isGateDecision)
        #expect(step.laterEvents.map(\.eventId) == ["e-4", "e-3", "e-1", "e-2"])
        #expect(step.laterEvents.map(\.sequence) == [4, 3, 1, 2])

        let (change, outcome) = step.run(on: Self.fresh(KeyState(nextExpected: 1), version: 7), now: Self.now)
        guard case .decidedInOrder(let decided) = outcome else {
            Issue.record("expected the events decided in order, got \(outcome)")
            return
        }
        #expect(decided.map(\.action) == [.hold, .hold, .duplicate, .apply], "decided up to and including the one let through")
        #expect(decided.allSatisfy { $0.after.version == 8 }, "one write moves the version once")
        let written = try #require(change)
        #expect(written.expectedVersion == 7)
        #expect(written.insertHeld.map(\.sequence) == [3, 4])
        #expect(written.records.map(\.eventId) == ["e-3", "e-4", "e-1"], "one record per event")
        #expect(written.newState?.claimant == "e-1")
        #expect(written.newState?.held[3]?.eventId == "e-3" && written.newState?.held[4]?.eventId == "e-4")

        // Each journey goes on from its own decision: the held and the duplicate end, 1 is posted.
        #expect(Self.ending(journeys[0].stored(.decided(decided[0].action, decided[0].after)))?.outcome == .held(parked: false))
        #expect(Self.ending(journeys[2].stored(.decided(decided[2].action, decided[2].after)))?.outcome == .duplicate)
        guard case .post(let document) = journeys[3].stored(.decided(decided[3].action, decided[3].after)) else {
            Issue.record("the event in turn is posted next")
            return
        }
        #expect(document.idempotencyKey == "e-1")
    }

    @Test("a key's queued events decided in order see the records the store read for each of them")
    func decidedInOrderReadsEachRecord() throws {
        var first = EventJourney(delivery: Self.envelope("e-5", sequence: 5), rules: Self.rules)
        var second = EventJourney(delivery: Self.envelope("e-1", sequence: 1), rules: Self.rules)
        let step = KeyStep.inOrder([try #require(Self.step(first.start())), try #require(Self.step(second.start()))])
        // The store knows e-1 as posted (the key moved past it): its redelivery is a duplicate, not stale.
        var snapshot = Self.fresh(KeyState(nextExpected: 2), version: 3)
        snapshot.laterRecords["e-1"] = .posted(EventFingerprint(of: second.event!))
        let (change, outcome) = step.run(on: snapshot, now: Self.now)
        guard case .decidedInOrder(let decided) = outcome else {
            Issue.record("expected the events decided in order, got \(outcome)")
            return
        }
        #expect(decided.map(\.action) == [.hold, .duplicate])
        #expect(change?.records.map(\.eventId) == ["e-5"])
    }
}
