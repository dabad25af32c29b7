import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncStore

/// A database for the conformance suite: fresh and empty when made, and every ``open()`` opens
/// the same data (so that a case can close the store and open it again).
public protocol WorkerStoreFixture: Sendable {
    func open() async throws -> any WorkerStore
}

/// The behaviour every ``WorkerStore`` must show (STYLE habit 4). Run each ``Case`` against a
/// fresh fixture from a Swift Testing test; failures are reported through `#expect` and
/// `Issue.record`, so they point at this file's checks.
///
/// ```swift
/// @Test(arguments: WorkerStoreConformance.Case.allCases)
/// func conformance(_ check: WorkerStoreConformance.Case) async throws {
///     try await WorkerStoreConformance.run(check, fixture: try MyFixture())
/// }
/// ```
public enum WorkerStoreConformance {
    public enum Case: String, CaseIterable, Sendable, CustomStringConvertible {
        case newKeyRoundTrip = "a new key round-trips with its version and record"
        case versionConflict = "a stale version conflicts, writes nothing; of two racing commits one wins"
        case dedupTransitions = "dedup records move posting → posted (documentId), held → posted, dead-lettered"
        case heldMessages = "held messages change with the state; a state that disagrees with them is refused"
        case heldWindow = "a key holding many events is read as a bounded view; its releases walk all of them in order"
        case keysWithHeldEvents = "keysWithHeldEvents lists keys with held rows, per stream"
        case parkedKeys = "parkedKeys lists parked keys, per stream"
        case lastPosted = "lastPosted finds a warehouse's newest posted record, per stream, not another warehouse's"
        case eventRecord = "eventRecord finds an eventId's record, key and times in any stream"
        case heldSummary = "heldSummary counts each key's held events and their oldest time, per stream"
        case pruneKeepsNonPosted = "prune deletes old posted records only"
        case persistence = "everything survives closing and reopening the store; a closed store is unavailable"
        case concurrentReadDecideCommit = "8 tasks doing read-decide-commit on one key lose no update"
        case gateWalkthrough = "a SequenceGate hold, apply, settle and release through the store"
        case commitDecision = "commitDecision: 8 racing tasks lose no update; no change writes nothing; an invalid one is refused"
        case roundOfDecisions = "a round commits each decision as its own: holds, settles, a stale assumption redone, an invalid one alone refused"
        case racingRounds = "replicas committing overlapping rounds in opposite key orders lose no update and do not deadlock"
        case laterEvents = "a decision over a key's queued events reads each one's record and held row, and writes them as one change"
        case deadLetterRoundTrip = "a dead letter round-trips; one without stream or eventId too; durable across reopen"
        case deadLetterDedup = "the same letter drained twice is one row; a later failure bumps it, a redelivery does not"
        case deadLetterFilters = "dead letters filter by stream, reason, warehouse, key, eventId, time and status, paged by id"
        case deadLetterLifecycle = "dead letters are replayed, edited, purged and pruned; unknown ids and purged letters are refused"
        case pruneBacklog = "pruning a backlog of letters larger than one batch deletes all of it, and only it"

        public var description: String { rawValue }
    }

    /// Runs `check` against `fixture`, which must be fresh.
    public static func run(_ check: Case, fixture: some WorkerStoreFixture) async throws {
        switch check {
        case .newKeyRoundTrip: try await newKeyRoundTrip(fixture)
        case .versionConflict: try await versionConflict(fixture)
        case .dedupTransitions: try await dedupTransitions(fixture)
        case .heldMessages: try await heldMessages(fixture)
        case .heldWindow: try await heldWindow(fixture)
        case .keysWithHeldEvents: try await keysWithHeldEvents(fixture)
        case .parkedKeys: try await parkedKeys(fixture)
        case .lastPosted: try await lastPosted(fixture)
        case .eventRecord: try await eventRecord(fixture)
        case .heldSummary: try await heldSummary(fixture)
        case .pruneKeepsNonPosted: try await pruneKeepsNonPosted(fixture)
        case .persistence: try await persistence(fixture)
        case .concurrentReadDecideCommit: try await concurrentReadDecideCommit(fixture)
        case .gateWalkthrough: try await gateWalkthrough(fixture)
        case .commitDecision: try await commitDecision(fixture)
        case .roundOfDecisions: try await roundOfDecisions(fixture)
        case .racingRounds: try await racingRounds(fixture)
        case .laterEvents: try await laterEvents(fixture)
        case .deadLetterRoundTrip: try await deadLetterRoundTrip(fixture)
        case .deadLetterDedup: try await deadLetterDedup(fixture)
        case .deadLetterFilters: try await deadLetterFilters(fixture)
        case .deadLetterLifecycle: try await deadLetterLifecycle(fixture)
        case .pruneBacklog: try await pruneBacklog(fixture)
        }
    }

    // MARK: Cases

    static func newKeyRoundTrip(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            let empty = try await store.snapshot(stream: .inventory, key: "WH1/SKU-1", eventId: "e1")
            #expect(empty == KeySnapshot(state: nil, version: 0, record: .notSeen))

            // With a skipped gap and a claimed turn: both survive until a later write changes them.
            let state = KeyState(nextExpected: 5, skipped: [2...3], claim: .init(eventId: "e1", sequence: 5))
            try await store.commit(KeyChange(
                stream: .inventory, key: "WH1/SKU-1", expectedVersion: 0, newState: state,
                records: [DedupWrite(eventId: "e1", record: .posting(fingerprint(1)), sequence: 5)], now: t0
            ))
            let first = try await store.snapshot(stream: .inventory, key: "WH1/SKU-1", eventId: "e1")
            #expect(first == KeySnapshot(state: state, version: 1, record: .posting(fingerprint(1))))

            // The same key name in another stream is another key.
            let otherStream = try await store.snapshot(stream: .shipment, key: "WH1/SKU-1", eventId: "e1")
            #expect(otherStream.state == nil && otherStream.version == 0)
            #expect(otherStream.record == .posting(fingerprint(1)), "dedup records are keyed by eventId alone")

            let parked = KeyState(
                nextExpected: 6, parked: KeyState.Parking(since: t0.addingTimeInterval(1.25), reason: .gapTimeout),
                skipped: [2...3, -4...Int64.max])
            try await store.commit(KeyChange(stream: .inventory, key: "WH1/SKU-1", expectedVersion: 1, newState: parked, now: t0))
            let second = try await store.snapshot(stream: .inventory, key: "WH1/SKU-1", eventId: "e2")
            #expect(second == KeySnapshot(state: parked, version: 2, record: .notSeen))

            // A change without a state checks the version but leaves the key (and its version) alone.
            try await store.commit(KeyChange(
                stream: .inventory, key: "WH1/SKU-1", expectedVersion: 2,
                records: [DedupWrite(eventId: "e2", record: .posting(fingerprint(2)), sequence: 6)], now: t0
            ))
            let third = try await store.snapshot(stream: .inventory, key: "WH1/SKU-1", eventId: "e2")
            #expect(third == KeySnapshot(state: parked, version: 2, record: .posting(fingerprint(2))))
        }
    }

    static func versionConflict(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            let key = "WH1/SKU-2"
            try await store.commit(KeyChange(stream: .inventory, key: key, expectedVersion: 0, newState: KeyState(nextExpected: 1), now: t0))

            // Stale versions (0 for an existing key, 5 for version 1) write nothing, records included.
            for stale: Int64 in [0, 5] {
                await expectStoreError(.versionConflict) {
                    try await store.commit(KeyChange(
                        stream: .inventory, key: key, expectedVersion: stale, newState: KeyState(nextExpected: 9),
                        records: [DedupWrite(eventId: "lost", record: .posting(fingerprint(9)), sequence: 9)], now: t0
                    ))
                }
            }
            // A missing key is at version 0, and a change without a state is checked too.
            await expectStoreError(.versionConflict) {
                try await store.commit(KeyChange(
                    stream: .inventory, key: "WH1/missing", expectedVersion: 1,
                    records: [DedupWrite(eventId: "lost", record: .posting(fingerprint(9)), sequence: 1)], now: t0
                ))
            }
            let after = try await store.snapshot(stream: .inventory, key: key, eventId: "lost")
            #expect(after == KeySnapshot(state: KeyState(nextExpected: 1), version: 1, record: .notSeen))

            // Two racing commits on the same version: exactly one wins, on a new key and an existing one.
            for (raceKey, version) in [("WH1/new", Int64(0)), (key, Int64(1))] {
                let outcomes = await withTaskGroup(of: Int64?.self) { group in
                    for next: Int64 in [10, 20] {
                        group.addTask {
                            do {
                                try await store.commit(KeyChange(
                                    stream: .inventory, key: raceKey, expectedVersion: version,
                                    newState: KeyState(nextExpected: next),
                                    records: [DedupWrite(eventId: "race-\(raceKey)-\(next)", record: .posting(fingerprint(next)), sequence: next)],
                                    now: t0
                                ))
                                return next
                            } catch let error as StoreError where error.code == .versionConflict {
                                return nil
                            } catch {
                                Issue.record("unexpected error \(error)")
                                return nil
                            }
                        }
                    }
                    return await group.reduce(into: [Int64?]()) { $0.append($1) }
                }
                let winners = outcomes.compactMap { $0 }
                #expect(winners.count == 1, "winners of the race on \(raceKey): \(winners)")
                guard let winner = winners.first else { continue }
                let loser: Int64 = winner == 10 ? 20 : 10
                let won = try await store.snapshot(stream: .inventory, key: raceKey, eventId: "race-\(raceKey)-\(winner)")
                #expect(won.state == KeyState(nextExpected: winner))
                #expect(won.version == version + 1)
                #expect(won.record == .posting(fingerprint(winner)))
                let lost = try await store.snapshot(stream: .inventory, key: raceKey, eventId: "race-\(raceKey)-\(loser)")
                #expect(lost.record == .notSeen, "the losing commit wrote its record")
            }
        }
    }

    static func dedupTransitions(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            let key = "WH1/S-1"
            try await store.commit(KeyChange(
                stream: .shipment, key: key, expectedVersion: 0, newState: KeyState(nextExpected: 1),
                records: [DedupWrite(eventId: "a", record: .posting(fingerprint(1)), sequence: 1)], now: t0
            ))
            try await store.commit(KeyChange(
                stream: .shipment, key: key, expectedVersion: 1, newState: KeyState(nextExpected: 2),
                records: [DedupWrite(eventId: "a", record: .posted(fingerprint(1)), sequence: 1, documentId: "DOC-1")], now: t0
            ))
            let posted = try await store.snapshot(stream: .shipment, key: key, eventId: "a")
            #expect(posted.record == .posted(fingerprint(1)))
            #expect(posted.documentId == "DOC-1")

            // held → posted without a documentId (a 409 names none), several records in one change.
            try await store.commit(KeyChange(
                stream: .shipment, key: key, expectedVersion: 2,
                records: [
                    DedupWrite(eventId: "b", record: .held(fingerprint(2)), sequence: 3),
                    DedupWrite(eventId: "c", record: .posting(fingerprint(3)), sequence: 4),
                ],
                now: t0
            ))
            #expect(try await store.snapshot(stream: .shipment, key: key, eventId: "b").record == .held(fingerprint(2)))
            try await store.commit(KeyChange(
                stream: .shipment, key: key, expectedVersion: 2,
                records: [
                    DedupWrite(eventId: "b", record: .posted(fingerprint(2)), sequence: 3),
                    DedupWrite(eventId: "c", record: .deadLettered(fingerprint(3)), sequence: 4),
                ],
                now: t0
            ))
            let b = try await store.snapshot(stream: .shipment, key: key, eventId: "b")
            #expect(b.record == .posted(fingerprint(2)) && b.documentId == nil)
            let c = try await store.snapshot(stream: .shipment, key: key, eventId: "c")
            #expect(c.record == .deadLettered(fingerprint(3)) && c.documentId == nil)

            // A replay with an edited body may replace a dead-lettered record's fingerprint.
            try await store.commit(KeyChange(
                stream: .shipment, key: key, expectedVersion: 2,
                records: [DedupWrite(eventId: "c", record: .posting(fingerprint(4)), sequence: 4)], now: t0
            ))
            #expect(try await store.snapshot(stream: .shipment, key: key, eventId: "c").record == .posting(fingerprint(4)))

            // Invalid records are refused.
            await expectStoreError(.invalidChange) {
                try await store.commit(KeyChange(
                    stream: .shipment, key: key, expectedVersion: 2,
                    records: [DedupWrite(eventId: "d", record: .notSeen, sequence: 5)], now: t0
                ))
            }
            await expectStoreError(.invalidChange) {
                try await store.commit(KeyChange(
                    stream: .shipment, key: key, expectedVersion: 2,
                    records: [DedupWrite(eventId: "d", record: .posting(fingerprint(5)), sequence: 5, documentId: "DOC-X")], now: t0
                ))
            }
            #expect(try await store.snapshot(stream: .shipment, key: key, eventId: "d").record == .notSeen)
        }
    }

    static func heldMessages(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            let key = "WH1/R-1"
            let message = heldMessage(sequence: 3, eventId: "e3")
            let holding = KeyState(nextExpected: 1, held: [3: message.heldEvent])

            // A state whose held disagrees with the messages is refused, and nothing is written.
            await expectStoreError(.invalidChange) {
                try await store.commit(KeyChange(
                    stream: .receipt, key: key, expectedVersion: 0, newState: KeyState(nextExpected: 1),
                    records: [DedupWrite(eventId: "e3", record: .held(fingerprint(3)), sequence: 3)], insertHeld: [message], now: t0
                ))
            }
            await expectStoreError(.invalidChange) {
                try await store.commit(KeyChange(stream: .receipt, key: key, expectedVersion: 0, newState: holding, now: t0))
            }
            await expectStoreError(.invalidChange) {
                try await store.commit(KeyChange(stream: .receipt, key: key, expectedVersion: 0, insertHeld: [message], now: t0))
            }
            let nothing = try await store.snapshot(stream: .receipt, key: key, eventId: "e3")
            #expect(nothing == KeySnapshot(state: nil, version: 0, record: .notSeen))
            #expect(try await store.heldMessage(stream: .receipt, key: key, sequence: 3) == nil)

            try await store.commit(KeyChange(
                stream: .receipt, key: key, expectedVersion: 0, newState: holding,
                records: [DedupWrite(eventId: "e3", record: .held(fingerprint(3)), sequence: 3)], insertHeld: [message], now: t0
            ))
            let held = try await store.snapshot(stream: .receipt, key: key, eventId: "e3")
            #expect(held == KeySnapshot(state: holding, version: 1, record: .held(fingerprint(3))))
            #expect(try await store.heldMessage(stream: .receipt, key: key, sequence: 3) == message)
            #expect(try await store.heldMessage(stream: .receipt, key: key, sequence: 4) == nil)

            // The same sequence cannot be held twice.
            let other = heldMessage(sequence: 3, eventId: "other")
            await expectStoreError(.invalidChange) {
                try await store.commit(KeyChange(
                    stream: .receipt, key: key, expectedVersion: 1,
                    newState: KeyState(nextExpected: 1, held: [3: other.heldEvent]), insertHeld: [other], now: t0
                ))
            }
            // Dropping a held message without the state that drops its entry is refused.
            await expectStoreError(.invalidChange) {
                try await store.commit(KeyChange(stream: .receipt, key: key, expectedVersion: 1, deleteHeldSequence: 3, now: t0))
            }
            #expect(try await store.heldMessage(stream: .receipt, key: key, sequence: 3) == message)

            // A second held event, then the first is settled: entry and message go together.
            let fifth = heldMessage(sequence: 5, eventId: "e5")
            let two = KeyState(nextExpected: 1, held: [3: message.heldEvent, 5: fifth.heldEvent])
            try await store.commit(KeyChange(stream: .receipt, key: key, expectedVersion: 1, newState: two, insertHeld: [fifth], now: t0))
            #expect(try await store.snapshot(stream: .receipt, key: key, eventId: "e5").state == two)

            let settled = KeyState(nextExpected: 4, held: [5: fifth.heldEvent])
            try await store.commit(KeyChange(
                stream: .receipt, key: key, expectedVersion: 2, newState: settled,
                records: [DedupWrite(eventId: "e3", record: .posted(fingerprint(3)), sequence: 3, documentId: "RC-3")],
                deleteHeldSequence: 3, now: t0
            ))
            let after = try await store.snapshot(stream: .receipt, key: key, eventId: "e3")
            #expect(after == KeySnapshot(state: settled, version: 3, record: .posted(fingerprint(3)), documentId: "RC-3"))
            #expect(try await store.heldMessage(stream: .receipt, key: key, sequence: 3) == nil)
            #expect(try await store.heldMessage(stream: .receipt, key: key, sequence: 5) == fifth)

            // Deleting a message that is not stored is a no-op (settle is idempotent).
            try await store.commit(KeyChange(stream: .receipt, key: key, expectedVersion: 3, deleteHeldSequence: 3, now: t0))
            #expect(try await store.snapshot(stream: .receipt, key: key, eventId: "e3").version == 3)
        }
    }

    static func keysWithHeldEvents(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            #expect(try await store.keysWithHeldEvents(stream: .inventory) == [])
            for key in ["WH2/B", "WH1/A", "WH1/C"] {
                let message = heldMessage(sequence: 2, eventId: "\(key)#2")
                let state = KeyState(nextExpected: 1, held: key == "WH1/C" ? [:] : [2: message.heldEvent])
                try await store.commit(KeyChange(
                    stream: .inventory, key: key, expectedVersion: 0, newState: state,
                    insertHeld: key == "WH1/C" ? [] : [message], now: t0
                ))
            }
            let shipment = heldMessage(sequence: 7, eventId: "ship#7")
            try await store.commit(KeyChange(
                stream: .shipment, key: "WH1/S", expectedVersion: 0,
                newState: KeyState(nextExpected: 1, held: [7: shipment.heldEvent]), insertHeld: [shipment], now: t0
            ))
            #expect(try await store.keysWithHeldEvents(stream: .inventory) == ["WH1/A", "WH2/B"])
            #expect(try await store.keysWithHeldEvents(stream: .shipment) == ["WH1/S"])
            #expect(try await store.keysWithHeldEvents(stream: .receipt) == [])

            try await store.commit(KeyChange(
                stream: .inventory, key: "WH1/A", expectedVersion: 1, newState: KeyState(nextExpected: 3), deleteHeldSequence: 2, now: t0
            ))
            #expect(try await store.keysWithHeldEvents(stream: .inventory) == ["WH2/B"])
        }
    }

    static func heldSummary(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            #expect(try await store.heldSummary(stream: .inventory) == [])
            // WH1/A holds 5, 3 and 9, inserted in that order (each message is held at t0 + its sequence + 0.5 s).
            var held: [Int64: KeyState.HeldEvent] = [:]
            for (version, sequence) in [Int64(5), 3, 9].enumerated() {
                let message = heldMessage(sequence: sequence, eventId: "A#\(sequence)")
                held[sequence] = message.heldEvent
                try await store.commit(KeyChange(
                    stream: .inventory, key: "WH1/A", expectedVersion: Int64(version),
                    newState: KeyState(nextExpected: 1, held: HeldEvents(all: held)), insertHeld: [message], now: t0
                ))
            }
            let b = heldMessage(sequence: 2, eventId: "B#2")
            try await store.commit(KeyChange(
                stream: .inventory, key: "WH2/B", expectedVersion: 0, newState: KeyState(nextExpected: 1, held: [2: b.heldEvent]),
                insertHeld: [b], now: t0
            ))
            let s = heldMessage(sequence: 7, eventId: "S#7")
            try await store.commit(KeyChange(
                stream: .shipment, key: "WH1/S", expectedVersion: 0, newState: KeyState(nextExpected: 1, held: [7: s.heldEvent]),
                insertHeld: [s], now: t0
            ))
            #expect(try await store.heldSummary(stream: .inventory) == [
                HeldKeySummary(key: "WH1/A", heldEvents: 3, oldestHeldAt: StoreTime.stored(t0.addingTimeInterval(3.5)), lowestHeld: 3, nextExpected: 1),
                HeldKeySummary(key: "WH2/B", heldEvents: 1, oldestHeldAt: StoreTime.stored(t0.addingTimeInterval(2.5)), lowestHeld: 2, nextExpected: 1),
            ])
            #expect(try await store.heldSummary(stream: .shipment).map(\.key) == ["WH1/S"])
            #expect(try await store.heldSummary(stream: .receipt) == [])

            // The oldest is released: the next oldest counts.
            held[3] = nil
            try await store.commit(KeyChange(
                stream: .inventory, key: "WH1/A", expectedVersion: 3, newState: KeyState(nextExpected: 4, held: HeldEvents(all: held)),
                deleteHeldSequence: 3, now: t0
            ))
            let afterRelease = try #require(try await store.heldSummary(stream: .inventory).first)
            #expect(afterRelease == HeldKeySummary(
                key: "WH1/A", heldEvents: 2, oldestHeldAt: StoreTime.stored(t0.addingTimeInterval(5.5)), lowestHeld: 5, nextExpected: 4))
            #expect(!afterRelease.hasReleaseInTurn, "4 is missing")
            // 4 is skipped: 5 is in turn and waits for a release.
            try await store.commit(KeyChange(
                stream: .inventory, key: "WH1/A", expectedVersion: 4, newState: KeyState(nextExpected: 5, held: HeldEvents(all: held)), now: t0))
            #expect(try await store.heldSummary(stream: .inventory).first?.hasReleaseInTurn == true)
            // A parked key's held event in turn waits for an operator, not for a release.
            try await store.commit(KeyChange(
                stream: .inventory, key: "WH2/B", expectedVersion: 1,
                newState: KeyState(nextExpected: 2, held: [2: b.heldEvent], parked: .init(since: t0, reason: .gapTimeout)), now: t0))
            let parked = try #require(try await store.heldSummary(stream: .inventory).last)
            #expect(parked.key == "WH2/B" && parked.isParked && parked.nextExpected == 2 && !parked.hasReleaseInTurn)
        }
    }

    static func parkedKeys(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            let parking = KeyState.Parking(since: t0, reason: .gapTimeout)
            for key in ["WH1/Z", "WH1/A", "WH1/M"] {
                try await store.commit(KeyChange(
                    stream: .receipt, key: key, expectedVersion: 0,
                    newState: KeyState(nextExpected: 1, parked: key == "WH1/M" ? nil : parking), now: t0
                ))
            }
            try await store.commit(KeyChange(
                stream: .inventory, key: "WH1/P", expectedVersion: 0, newState: KeyState(nextExpected: 1, parked: parking), now: t0
            ))
            #expect(try await store.parkedKeys(stream: .receipt) == ["WH1/A", "WH1/Z"])
            #expect(try await store.parkedKeys(stream: .inventory) == ["WH1/P"])
            #expect(try await store.parkedKeys(stream: .shipment) == [])

            // The operator's skip unparks.
            try await store.commit(KeyChange(stream: .receipt, key: "WH1/Z", expectedVersion: 1, newState: KeyState(nextExpected: 4), now: t0))
            #expect(try await store.parkedKeys(stream: .receipt) == ["WH1/A"])
        }
    }

    static func lastPosted(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            #expect(try await store.lastPosted(stream: .receipt, warehouse: "WH1") == nil)
            // WH1's keys, and keys of WH1-like warehouses that a prefix match would mistake for them.
            let writes: [(key: String, eventId: String, record: DedupRecord, documentId: String?, at: Date)] = [
                ("WH1/R-1", "r1", .posted(fingerprint(1)), "DOC-1", t0),
                ("WH1/R-2", "r2", .posted(fingerprint(2)), nil, t0.addingTimeInterval(60)),
                ("WH1/R-3", "r3", .deadLettered(fingerprint(3)), nil, t0.addingTimeInterval(120)),
                ("WH1/R-4", "r4", .held(fingerprint(4)), nil, t0.addingTimeInterval(180)),
                ("WH10/R-1", "w10", .posted(fingerprint(5)), "DOC-10", t0.addingTimeInterval(240)),
                ("WH1-B/R-1", "wb", .posted(fingerprint(6)), "DOC-B", t0.addingTimeInterval(300)),
            ]
            for write in writes {
                try await store.commit(KeyChange(
                    stream: .receipt, key: write.key, expectedVersion: 0, newState: KeyState(nextExpected: 2),
                    records: [DedupWrite(eventId: write.eventId, record: write.record, sequence: 1, documentId: write.documentId)],
                    now: write.at
                ))
            }
            try await store.commit(KeyChange(
                stream: .shipment, key: "WH1/S-1", expectedVersion: 0, newState: KeyState(nextExpected: 2),
                records: [DedupWrite(eventId: "s1", record: .posted(fingerprint(7)), sequence: 1, documentId: "DOC-S")],
                now: t0.addingTimeInterval(600)
            ))
            #expect(try await store.lastPosted(stream: .receipt, warehouse: "WH1") == PostedEvent(
                eventId: "r2", key: "WH1/R-2", sequence: 1, documentId: nil, postedAt: StoreTime.stored(t0.addingTimeInterval(60))))
            #expect(try await store.lastPosted(stream: .receipt, warehouse: "WH10")?.eventId == "w10")
            #expect(try await store.lastPosted(stream: .receipt, warehouse: "WH1-B")?.documentId == "DOC-B")
            #expect(try await store.lastPosted(stream: .shipment, warehouse: "WH1")?.eventId == "s1")
            #expect(try await store.lastPosted(stream: .inventory, warehouse: "WH1") == nil)
            #expect(try await store.lastPosted(stream: .receipt, warehouse: "WH") == nil)
        }
    }

    static func eventRecord(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            #expect(try await store.eventRecord(eventId: "e-1") == nil)
            try await store.commit(KeyChange(
                stream: .shipment, key: "WH2/S-7", expectedVersion: 0, newState: KeyState(nextExpected: 3),
                records: [DedupWrite(eventId: "e-1", record: .posting(fingerprint(1)), sequence: 3)], now: t0
            ))
            let later = t0.addingTimeInterval(42.5)
            try await store.commit(KeyChange(
                stream: .shipment, key: "WH2/S-7", expectedVersion: 1, newState: KeyState(nextExpected: 4),
                records: [DedupWrite(eventId: "e-1", record: .posted(fingerprint(1)), sequence: 3, documentId: "DOC-7")], now: later
            ))
            #expect(try await store.eventRecord(eventId: "e-1") == EventRecord(
                eventId: "e-1", stream: .shipment, key: "WH2/S-7", sequence: 3, record: .posted(fingerprint(1)), documentId: "DOC-7",
                firstRecordedAt: StoreTime.stored(t0), lastRecordedAt: StoreTime.stored(later)))
            try await store.commit(KeyChange(
                stream: .inventory, key: "WH1/A", expectedVersion: 0, newState: KeyState(nextExpected: 1),
                records: [DedupWrite(eventId: "e-2", record: .deadLettered(fingerprint(2)), sequence: 1)], now: t0
            ))
            let dead = try await store.eventRecord(eventId: "e-2")
            #expect(dead?.record == .deadLettered(fingerprint(2)) && dead?.stream == .inventory && dead?.documentId == nil)
            #expect(try await store.eventRecord(eventId: "e-") == nil)
        }
    }

    static func pruneKeepsNonPosted(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            let key = "WH1/SKU-P"
            try await store.commit(KeyChange(stream: .inventory, key: key, expectedVersion: 0, newState: KeyState(nextExpected: 1), now: t0))
            let old: [(String, DedupRecord)] = [
                ("old-posted", .posted(fingerprint(1))), ("old-posting", .posting(fingerprint(2))),
                ("old-held", .held(fingerprint(3))), ("old-dead", .deadLettered(fingerprint(4))),
            ]
            try await store.commit(KeyChange(
                stream: .inventory, key: key, expectedVersion: 1,
                records: old.enumerated().map { DedupWrite(eventId: $1.0, record: $1.1, sequence: Int64($0 + 1)) }, now: t0
            ))
            let later = t0.addingTimeInterval(3600)
            try await store.commit(KeyChange(
                stream: .inventory, key: key, expectedVersion: 1,
                records: [DedupWrite(eventId: "new-posted", record: .posted(fingerprint(5)), sequence: 5, documentId: "D5")], now: later
            ))

            #expect(try await store.pruneProcessed(olderThan: t0) == 0, "a record exactly at the cutoff is kept")
            #expect(try await store.pruneProcessed(olderThan: t0.addingTimeInterval(60)) == 1)
            #expect(try await store.snapshot(stream: .inventory, key: key, eventId: "old-posted").record == .notSeen)
            for (eventId, record) in old.dropFirst() {
                #expect(try await store.snapshot(stream: .inventory, key: key, eventId: eventId).record == record)
            }
            #expect(try await store.snapshot(stream: .inventory, key: key, eventId: "new-posted").record == .posted(fingerprint(5)))
            #expect(try await store.pruneProcessed(olderThan: t0.addingTimeInterval(60)) == 0)
            #expect(try await store.snapshot(stream: .inventory, key: key, eventId: "x").version == 1, "prune leaves keys alone")
        }
    }

    static func persistence(_ fixture: some WorkerStoreFixture) async throws {
        let message = heldMessage(sequence: 9, eventId: "e9")
        let state = KeyState(
            nextExpected: 7, held: [9: message.heldEvent], parked: KeyState.Parking(since: t0.addingTimeInterval(90.5), reason: .gapTimeout)
        )
        try await withStore(fixture) { store in
            try await store.commit(KeyChange(stream: .shipment, key: "WH3/S-9", expectedVersion: 0, newState: KeyState(nextExpected: 1), now: t0))
            try await store.commit(KeyChange(
                stream: .shipment, key: "WH3/S-9", expectedVersion: 1, newState: state,
                records: [
                    DedupWrite(eventId: "e9", record: .held(fingerprint(9)), sequence: 9),
                    DedupWrite(eventId: "e6", record: .posted(fingerprint(6)), sequence: 6, documentId: "SH-6"),
                ],
                insertHeld: [message], now: t0
            ))
        }
        try await withStore(fixture) { (store: any WorkerStore) async throws in
            #expect(try await store.snapshot(stream: .shipment, key: "WH3/S-9", eventId: "e9")
                == KeySnapshot(state: state, version: 2, record: .held(fingerprint(9))))
            #expect(try await store.snapshot(stream: .shipment, key: "WH3/S-9", eventId: "e6")
                == KeySnapshot(state: state, version: 2, record: .posted(fingerprint(6)), documentId: "SH-6"))
            #expect(try await store.heldMessage(stream: .shipment, key: "WH3/S-9", sequence: 9) == message)
            #expect(try await store.keysWithHeldEvents(stream: .shipment) == ["WH3/S-9"])
            #expect(try await store.parkedKeys(stream: .shipment) == ["WH3/S-9"])
            // The reopened store goes on from the stored version.
            await expectStoreError(.versionConflict) {
                try await store.commit(KeyChange(stream: .shipment, key: "WH3/S-9", expectedVersion: 1, newState: state, now: t0))
            }
        }
        // A closed store is unavailable.
        let closed = try await fixture.open()
        await closed.close()
        await expectStoreError(.unavailable) {
            _ = try await closed.snapshot(stream: .shipment, key: "WH3/S-9", eventId: "e9")
        }
    }

    /// One read-decide-commit that moves `key` on by one, retried on version conflicts (up to
    /// 1000): the racing client of the lost-update checks, here and in store-specific suites.
    /// Returns how many conflicts it met; records an issue when it gives up or fails otherwise.
    public static func incrementUntilCommitted(_ store: any WorkerStore, key: String, eventId: String) async -> Int {
        var conflicts = 0
        for _ in 0..<1000 {
            do {
                let snapshot = try await store.snapshot(stream: .inventory, key: key, eventId: eventId)
                await Task.yield()
                let next = (snapshot.state?.nextExpected ?? 0) + 1
                try await store.commit(KeyChange(
                    stream: .inventory, key: key, expectedVersion: snapshot.version,
                    newState: KeyState(nextExpected: next),
                    records: [DedupWrite(eventId: eventId, record: .posted(fingerprint(next)), sequence: next)],
                    now: t0
                ))
                return conflicts
            } catch let error as StoreError where error.code == .versionConflict {
                conflicts += 1
            } catch {
                Issue.record("unexpected error \(error)")
                return conflicts
            }
        }
        Issue.record("\(eventId) gave up after 1000 conflicts")
        return conflicts
    }

    static func concurrentReadDecideCommit(_ fixture: some WorkerStoreFixture) async throws {
        let tasks = 8
        let incrementsPerTask = 5
        let key = "WH1/HOT"
        try await withStore(fixture) { store in
            let conflicts = await withTaskGroup(of: Int.self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        var conflicts = 0
                        for increment in 0..<incrementsPerTask {
                            conflicts += await incrementUntilCommitted(store, key: key, eventId: "t\(task)-\(increment)")
                        }
                        return conflicts
                    }
                }
                return await group.reduce(0, +)
            }
            let total = Int64(tasks * incrementsPerTask)
            let final = try await store.snapshot(stream: .inventory, key: key, eventId: "t0-0")
            #expect(final.state == KeyState(nextExpected: total), "after \(conflicts) conflicts")
            #expect(final.version == total)
            // Each commit saw a distinct value: the records' fingerprints are 1...total, each once.
            var seen = Set<EventFingerprint>()
            for task in 0..<tasks {
                for increment in 0..<incrementsPerTask {
                    let record = try await store.snapshot(stream: .inventory, key: key, eventId: "t\(task)-\(increment)").record
                    guard case .posted(let fingerprint) = record else {
                        Issue.record("t\(task)-\(increment): \(record)")
                        continue
                    }
                    seen.insert(fingerprint)
                }
            }
            #expect(seen == Set((1...total).map(fingerprint)))
        }
    }

    static func commitDecision(_ fixture: some WorkerStoreFixture) async throws {
        let key = "WH1/DECIDE"
        try await withStore(fixture) { store in
            // Racing decisions, and a plain read-decide-commit client beside them.
            let seenByDecisions = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for task in 0..<8 {
                    group.addTask {
                        var seen: [Int64] = []
                        for increment in 0..<5 {
                            let eventId = "d\(task)-\(increment)"
                            seen.append(try await store.commitDecision(stream: .inventory, key: key, eventId: eventId) { snapshot in
                                let next = (snapshot.state?.nextExpected ?? 0) + 1
                                let change = KeyChange(
                                    stream: .inventory, key: key, expectedVersion: snapshot.version,
                                    newState: KeyState(nextExpected: next),
                                    records: [DedupWrite(eventId: eventId, record: .posted(fingerprint(next)), sequence: next)], now: t0)
                                return (change, next)
                            })
                        }
                        return seen
                    }
                }
                group.addTask {
                    for increment in 0..<5 { _ = await incrementUntilCommitted(store, key: key, eventId: "p-\(increment)") }
                    return []
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            let final = try await store.snapshot(stream: .inventory, key: key, eventId: "d0-0")
            #expect(final.state == KeyState(nextExpected: 45))
            #expect(final.version == 45)
            // Each decision's outcome is the value it committed: 40 distinct ones.
            #expect(Set(seenByDecisions).count == 40)

            // No change: the outcome comes back and nothing is written.
            let untouched = try await store.commitDecision(stream: .inventory, key: key, eventId: "none") { snapshot in
                (nil, snapshot.version)
            }
            #expect(untouched == 45)
            #expect(try await store.snapshot(stream: .inventory, key: key, eventId: "none") == KeySnapshot(
                state: KeyState(nextExpected: 45), version: 45, record: .notSeen))

            // An invalid change (a held message without the state that holds it) writes nothing.
            await expectStoreError(.invalidChange) {
                _ = try await store.commitDecision(stream: .inventory, key: key, eventId: "bad") { snapshot in
                    var change = KeyChange(
                        stream: .inventory, key: key, expectedVersion: snapshot.version,
                        records: [DedupWrite(eventId: "bad", record: .posting(fingerprint(99)), sequence: 99)], now: t0)
                    change.insertHeld = [heldMessage(sequence: 99, eventId: "bad")]
                    return (change, 0)
                }
            }
            #expect(try await store.snapshot(stream: .inventory, key: key, eventId: "bad").record == .notSeen)
            #expect(try await store.heldMessage(stream: .inventory, key: key, sequence: 99) == nil)

            // One that is refused only after the key row was updated (its state holds an event
            // without the message): nothing of it stays, the key keeps its version.
            let holdsWithoutMessage = KeyState(nextExpected: 46, held: [99: KeyState.HeldEvent(eventId: "half", heldAt: t0)])
            await expectStoreError(.invalidChange) {
                _ = try await store.commitDecision(stream: .inventory, key: key, eventId: "half") { snapshot -> (change: KeyChange?, outcome: Int) in
                    let change = KeyChange(
                        stream: .inventory, key: key, expectedVersion: snapshot.version, newState: holdsWithoutMessage,
                        records: [DedupWrite(eventId: "half", record: .held(fingerprint(99)), sequence: 99)], now: t0)
                    return (change, 0)
                }
            }
            #expect(try await store.snapshot(stream: .inventory, key: key, eventId: "half") == KeySnapshot(
                state: KeyState(nextExpected: 45), version: 45, record: .notSeen))
        }
    }

    static func roundOfDecisions(_ fixture: some WorkerStoreFixture) async throws {
        let gate = SequenceGate(policy: SequencingPolicy(gapTimeout: .seconds(60)))
        try await withStore(fixture) { store in
            // Before the round: "WH1/HOLDS" holds sequence 2 (waiting for 1); "WH1/MOVED" is at
            // version 2, though the round will assume version 1.
            try await store.commit(KeyChange(
                stream: .inventory, key: "WH1/HOLDS", expectedVersion: 0,
                newState: KeyState(nextExpected: 1, held: [2: KeyState.HeldEvent(eventId: "h2", heldAt: t0)]),
                records: [DedupWrite(eventId: "h2", record: .held(fingerprint(2)), sequence: 2)],
                insertHeld: [HeldMessage(sequence: 2, eventId: "h2", heldAt: t0, routingKey: "inventory.WH1", headers: [:], body: [2])],
                now: t0))
            for version in Int64(0)..<2 {
                try await store.commit(KeyChange(
                    stream: .inventory, key: "WH1/MOVED", expectedVersion: version, newState: KeyState(nextExpected: version + 1), now: t0))
            }
            let staleAssumption = KeySnapshot(state: KeyState(nextExpected: 1), version: 1, record: .notSeen)

            /// A gate decision on `event` of `key`, as the pipeline makes it.
            func gated(_ key: String, _ eventId: String, _ sequence: Int64, assumed: KeySnapshot? = nil) -> KeyDecision {
                let incoming = IncomingEvent(eventId: eventId, sequence: sequence, fingerprint: fingerprint(sequence), isReplay: false)
                return KeyDecision(stream: .inventory, key: key, eventId: eventId, sequence: sequence, assumed: assumed) { snapshot in
                    let decision = gate.decide(snapshot.state, event: incoming, record: snapshot.record, now: t0)
                    var change = KeyChange(
                        stream: .inventory, key: key, expectedVersion: snapshot.version, newState: decision.updatedState,
                        records: decision.updatedRecord.map { [DedupWrite(eventId: eventId, record: $0, sequence: sequence)] } ?? [],
                        now: t0)
                    if decision.action == .hold {
                        change.insertHeld = [HeldMessage(
                            sequence: sequence, eventId: eventId, heldAt: t0, routingKey: "inventory.WH1", headers: [:], body: [UInt8(sequence)])]
                    }
                    return (decision.updatedState == nil && decision.updatedRecord == nil ? nil : change, decision.action)
                }
            }
            let invalid = KeyDecision(stream: .inventory, key: "WH1/BAD", eventId: "bad") { snapshot in
                // A state holding an event without its message.
                let change = KeyChange(
                    stream: .inventory, key: "WH1/BAD", expectedVersion: snapshot.version,
                    newState: KeyState(nextExpected: 1, held: [5: KeyState.HeldEvent(eventId: "bad", heldAt: t0)]), now: t0)
                return (change, GateAction.hold)
            }
            let round = [
                gated("WH1/NEW", "n1", 1),  // a new key: applied
                gated("WH1/HOLDS", "h1", 1),  // the missing predecessor: applied (claims the key)
                invalid,
                gated("WH1/GAP", "g3", 3),  // a new key's later sequence: held (with policy acceptFirstSeen off, 1 is awaited)
                gated("WH1/MOVED", "m2", 2, assumed: staleAssumption),  // decided again on version 2: applied
            ]
            let results = try await store.commitDecisions(round)
            #expect(results.count == round.count)
            let actions = results.map { try? $0.get() as? GateAction }
            #expect(actions[0] == .apply)
            #expect(actions[1] == .apply)
            #expect(actions[3] == .hold)
            #expect(actions[4] == .apply)
            if case .failure(let error) = results[2] {
                #expect((error as? StoreError)?.code == .invalidChange)
            } else {
                Issue.record("the invalid decision was not refused")
            }

            #expect(try await store.snapshot(stream: .inventory, key: "WH1/NEW", eventId: "n1").record == .posting(fingerprint(1)))
            #expect(try await store.snapshot(stream: .inventory, key: "WH1/BAD", eventId: "bad") == KeySnapshot(
                state: nil, version: 0, record: .notSeen))
            let gap = try await store.snapshot(stream: .inventory, key: "WH1/GAP", eventId: "g3", sequence: 3)
            #expect(gap.record == .held(fingerprint(3)))
            #expect(gap.state?.lowestHeld == 3)
            #expect(try await store.heldMessage(stream: .inventory, key: "WH1/GAP", sequence: 3)?.body == [3])
            let moved = try await store.snapshot(stream: .inventory, key: "WH1/MOVED", eventId: "m2")
            #expect(moved.version == 3)
            #expect(moved.record == .posting(fingerprint(2)))

            // The next round settles "WH1/HOLDS" (1 posted: 2 is released) beside a redelivery of
            // "n1", still let through (its record says posting: a crash may have lost its post).
            let holds = try await store.snapshot(stream: .inventory, key: "WH1/HOLDS", eventId: "h1")
            let settle = KeyDecision(stream: .inventory, key: "WH1/HOLDS", eventId: "h1", assumed: holds) { snapshot in
                let settlement = gate.settle(snapshot.state!, sequence: 1)
                let change = KeyChange(
                    stream: .inventory, key: "WH1/HOLDS", expectedVersion: snapshot.version, newState: settlement.updatedState,
                    records: [DedupWrite(eventId: "h1", record: .posted(fingerprint(1)), sequence: 1)], now: t0)
                return (change, settlement.release?.sequence)
            }
            let settled = try await store.commitDecisions([settle, gated("WH1/NEW", "n1", 1)])
            #expect(try settled[0].get() as? Int64 == 2)
            #expect(try settled[1].get() as? GateAction == .apply)
            #expect(try await store.snapshot(stream: .inventory, key: "WH1/HOLDS", eventId: "h1").record == .posted(fingerprint(1)))

            // A round that only moves existing keys with nothing held (the pipeline's usual round,
            // which PostgreSQL writes as one statement), one decided on a stale assumption: that
            // one is decided again on what the store reads, and only the second decision is
            // written (its state says which version it was decided on).
            func moving(_ key: String, _ eventId: String, assumed: KeySnapshot? = nil) -> KeyDecision {
                KeyDecision(stream: .inventory, key: key, eventId: eventId, assumed: assumed) { snapshot in
                    let change = KeyChange(
                        stream: .inventory, key: key, expectedVersion: snapshot.version,
                        newState: KeyState(nextExpected: 100 * snapshot.version),
                        records: [DedupWrite(eventId: eventId, record: .posted(fingerprint(snapshot.version)), sequence: 1)], now: t0)
                    return (change, snapshot.version)
                }
            }
            let newVersion = try await store.snapshot(stream: .inventory, key: "WH1/NEW", eventId: "").version
            let moves = try await store.commitDecisions([
                moving("WH1/MOVED", "mv", assumed: staleAssumption), moving("WH1/NEW", "nv"),
            ])
            #expect(try moves.map { try $0.get() as? Int64 } == [3, newVersion])
            let movedAgain = try await store.snapshot(stream: .inventory, key: "WH1/MOVED", eventId: "mv")
            #expect(movedAgain.version == 4)
            #expect(movedAgain.state == KeyState(nextExpected: 300))
            #expect(movedAgain.record == .posted(fingerprint(3)))
            let newMoved = try await store.snapshot(stream: .inventory, key: "WH1/NEW", eventId: "nv")
            #expect(newMoved.version == newVersion + 1)
            #expect(newMoved.state == KeyState(nextExpected: 100 * newVersion))
            #expect(newMoved.record == .posted(fingerprint(newVersion)))

            // A key or an event twice in one round is refused before anything is read.
            await expectStoreError(.invalidChange) {
                _ = try await store.commitDecisions([gated("WH1/TWICE", "t1", 1), gated("WH1/TWICE", "t2", 2)])
            }
            await expectStoreError(.invalidChange) {
                _ = try await store.commitDecisions([gated("WH1/ONE", "same", 1), gated("WH1/TWO", "same", 1)])
            }
            #expect(try await store.snapshot(stream: .inventory, key: "WH1/TWICE", eventId: "t1").version == 0)

            // Two decisions whose changes write a record of the same event (not the pipeline's,
            // a caller's): both commit, in round order, as one by one.
            func recording(_ key: String, _ eventId: String, _ record: DedupRecord) -> KeyDecision {
                KeyDecision(stream: .inventory, key: key, eventId: eventId) { snapshot in
                    let change = KeyChange(
                        stream: .inventory, key: key, expectedVersion: snapshot.version, newState: KeyState(nextExpected: 2),
                        records: [DedupWrite(eventId: "shared", record: record, sequence: 1)], now: t0)
                    return (change, key)
                }
            }
            let shared = try await store.commitDecisions([
                recording("WH1/SHARE-A", "sa", .posting(fingerprint(1))), recording("WH1/SHARE-B", "sb", .posted(fingerprint(1))),
            ])
            #expect(try shared.map { try $0.get() as? String } == ["WH1/SHARE-A", "WH1/SHARE-B"])
            #expect(try await store.snapshot(stream: .inventory, key: "WH1/SHARE-B", eventId: "shared").record == .posted(fingerprint(1)))
        }
    }

    static func laterEvents(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            // "WH1/FOLD" holds 10…16, more than a read's window; "f3" is posted under another key.
            let held = Dictionary(uniqueKeysWithValues: (Int64(10)...16).map { ($0, heldMessage(sequence: $0, eventId: "h\($0)").heldEvent) })
            try await store.commit(KeyChange(
                stream: .inventory, key: "WH1/FOLD", expectedVersion: 0, newState: KeyState(nextExpected: 1, held: HeldEvents(all: held)),
                records: held.map { DedupWrite(eventId: $0.value.eventId, record: .held(fingerprint($0.key)), sequence: $0.key) },
                insertHeld: held.map { heldMessage(sequence: $0.key, eventId: $0.value.eventId) }, now: t0))
            try await store.commit(KeyChange(
                stream: .inventory, key: "WH1/OTHER", expectedVersion: 0, newState: KeyState(nextExpected: 4),
                records: [DedupWrite(eventId: "f3", record: .posted(fingerprint(3)), sequence: 3)], now: t0))

            let decision = KeyDecision(
                stream: .inventory, key: "WH1/FOLD", eventId: "f2", sequence: 2,
                laterEvents: [("h16", 16), ("x20", 20), ("f3", 3)]
            ) { snapshot in
                let state = snapshot.state!
                let read = [
                    snapshot.record == .notSeen,
                    snapshot.laterRecords["h16"] == .held(fingerprint(16)),
                    snapshot.laterRecords["f3"] == .posted(fingerprint(3)),
                    snapshot.laterRecords["x20"] == nil,
                    state.held.isKnown(16) && state.held[16]?.eventId == "h16",
                    state.held.isKnown(20) && state.held[20] == nil,
                    state.held.isKnown(2) && state.held[2] == nil,
                    snapshot.version == 1,
                ]
                var newState = held
                newState[2] = heldMessage(sequence: 2, eventId: "f2").heldEvent
                newState[20] = heldMessage(sequence: 20, eventId: "x20").heldEvent
                let change = KeyChange(
                    stream: .inventory, key: "WH1/FOLD", expectedVersion: snapshot.version,
                    newState: KeyState(nextExpected: 1, held: HeldEvents(all: newState)),
                    records: [
                        DedupWrite(eventId: "f2", record: .held(fingerprint(2)), sequence: 2),
                        DedupWrite(eventId: "x20", record: .held(fingerprint(20)), sequence: 20),
                    ],
                    insertHeld: [heldMessage(sequence: 2, eventId: "f2"), heldMessage(sequence: 20, eventId: "x20")], now: t0)
                return (change, read)
            }
            let results = try await store.commitDecisions([decision])
            let read = try #require(try results.first?.get() as? [Bool])
            #expect(read == Array(repeating: true, count: 8), "what the decision read of each event")
            #expect(try await store.heldSequences(stream: .inventory, key: "WH1/FOLD") == [2] + Array(10...16) + [20])
            #expect(try await store.heldMessage(stream: .inventory, key: "WH1/FOLD", sequence: 20)?.eventId == "x20")
            let after = try await store.snapshot(stream: .inventory, key: "WH1/FOLD", eventId: "x20")
            #expect(after.version == 2, "one change, one version")
            #expect(after.record == .held(fingerprint(20)))

            // A change holding two messages at one sequence is refused, and writes nothing.
            await expectStoreError(.invalidChange) {
                try await store.commit(KeyChange(
                    stream: .inventory, key: "WH1/FOLD", expectedVersion: 2,
                    newState: KeyState(nextExpected: 1, held: HeldEvents(all: held)),
                    insertHeld: [heldMessage(sequence: 30, eventId: "a"), heldMessage(sequence: 30, eventId: "b")], now: t0))
            }
            #expect(try await store.snapshot(stream: .inventory, key: "WH1/FOLD", eventId: "").version == 2)
        }
    }

    static func racingRounds(_ fixture: some WorkerStoreFixture) async throws {
        let keys = (0..<12).map { "WH9/RACE-\($0)" }
        let roundsPerReplica = 8
        try await withStore(fixture) { first in
            let second = try await fixture.open()
            do {
                // Two replicas (two store instances), each committing rounds that increment every
                // key, in opposite key orders.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (replica, (store, order)) in [(first, keys), (second, keys.reversed())].enumerated() {
                        group.addTask {
                            for round in 0..<roundsPerReplica {
                                let decisions = order.map { key in
                                    KeyDecision(stream: .inventory, key: key, eventId: "r\(replica)-\(round)-\(key)") { snapshot in
                                        let next = (snapshot.state?.nextExpected ?? 0) + 1
                                        let change = KeyChange(
                                            stream: .inventory, key: key, expectedVersion: snapshot.version, newState: KeyState(nextExpected: next),
                                            now: t0)
                                        return (change, next)
                                    }
                                }
                                for result in try await store.commitDecisions(decisions) { _ = try result.get() }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                for key in keys {
                    let snapshot = try await first.snapshot(stream: .inventory, key: key, eventId: "")
                    #expect(snapshot.state?.nextExpected == Int64(2 * roundsPerReplica), "key \(key)")
                    #expect(snapshot.version == Int64(2 * roundsPerReplica), "key \(key)")
                }
            } catch {
                await second.close()
                throw error
            }
            await second.close()
        }
    }

    static func heldWindow(_ fixture: some WorkerStoreFixture) async throws {
        let gate = SequenceGate(policy: SequencingPolicy(gapTimeout: .seconds(60)))
        let key = "WH2/SKU-W"
        let count: Int64 = 30
        try await withStore(fixture) { store in
            // Sequences 2…31 arrive in reverse order (the oldest held is the highest), each
            // decided the pipeline's way: on a snapshot that read the sequence it decides on.
            for sequence in stride(from: count + 1, through: 2, by: -1) {
                let event = IncomingEvent(eventId: "w\(sequence)", sequence: sequence, fingerprint: fingerprint(sequence), isReplay: false)
                let heldAt = t0.addingTimeInterval(Double(count + 1 - sequence))
                try await store.commitDecision(stream: .inventory, key: key, eventId: event.eventId, sequence: sequence) { snapshot in
                    let decision = gate.decide(snapshot.state, event: event, record: snapshot.record, now: heldAt)
                    #expect(decision.action == .hold)
                    let message = HeldMessage(
                        sequence: sequence, eventId: event.eventId, heldAt: heldAt, routingKey: "inventory.WH2", headers: [:],
                        body: Array("{\"eventId\":\"w\(sequence)\"}".utf8))
                    let change = KeyChange(
                        stream: .inventory, key: key, expectedVersion: snapshot.version, newState: decision.updatedState,
                        records: [DedupWrite(eventId: event.eventId, record: .held(event.fingerprint), sequence: sequence)],
                        insertHeld: [message], now: heldAt)
                    return (change, ())
                }
            }
            #expect(try await store.heldSequences(stream: .inventory, key: key) == Array(2...(count + 1)))

            // The view is bounded: the lowest ones, the one asked about, the oldest time of all.
            let asked = try await store.snapshot(stream: .inventory, key: key, eventId: "w20", sequence: 20)
            let held = try #require(asked.state?.held)
            #expect(held.knownSequences == Array(2..<(2 + Int64(HeldEvents.windowSize))) + [20])
            #expect(held.knownThrough == 1 + Int64(HeldEvents.windowSize))
            #expect(held.isKnown(20) && !held.isKnown(21) && !held.isEmpty)
            #expect(held.oldestHeldAt == t0)
            #expect(asked.state?.lowestHeld == 2)
            #expect(asked.state?.missingSequences == 1...1)
            #expect(held[20]?.eventId == "w20")
            // Another eventId under a held sequence far above the lowest is still a conflict.
            let twin = IncomingEvent(eventId: "w20-rescan", sequence: 20, fingerprint: fingerprint(99), isReplay: false)
            #expect(gate.decide(asked.state, event: twin, record: .notSeen, now: t0).action == .conflict(.sequenceHeld(byEventId: "w20")))

            // A state whose view leaves out a row in the range it claims to know is refused.
            var missingOne = try #require(asked.state)
            missingOne = KeyState(
                nextExpected: missingOne.nextExpected,
                held: HeldEvents(
                    lowest: [(2, KeyState.HeldEvent(eventId: "w2", heldAt: held[2]!.heldAt)), (4, KeyState.HeldEvent(eventId: "w4", heldAt: held[4]!.heldAt))],
                    moreAbove: true, oldestHeldAt: t0))
            await expectStoreError(.invalidChange) {
                try await store.commit(KeyChange(stream: .inventory, key: key, expectedVersion: asked.version, newState: missingOne, now: t0))
            }

            // Sequence 1 arrives and is settled; every held event is then released in order,
            // each settled the way the pipeline settles (on a snapshot read for it).
            try await store.commitDecision(stream: .inventory, key: key, eventId: "w1", sequence: 1) { snapshot in
                let first = IncomingEvent(eventId: "w1", sequence: 1, fingerprint: fingerprint(1), isReplay: false)
                #expect(gate.decide(snapshot.state, event: first, record: snapshot.record, now: t0).action == .apply)
                let settled = gate.settle(snapshot.state!, sequence: 1)
                #expect(settled.release == Release(sequence: 2, eventId: "w2"))
                return (KeyChange(
                    stream: .inventory, key: key, expectedVersion: snapshot.version, newState: settled.updatedState,
                    records: [DedupWrite(eventId: "w1", record: .posted(fingerprint(1)), sequence: 1)], deleteHeldSequence: 1, now: t0), ())
            }
            var released: [Int64] = []
            var next: Release? = Release(sequence: 2, eventId: "w2")
            while let release = next {
                released.append(release.sequence)
                next = try await store.commitDecision(stream: .inventory, key: key, eventId: release.eventId) { snapshot in
                    let settled = gate.settle(snapshot.state!, sequence: release.sequence)
                    return (KeyChange(
                        stream: .inventory, key: key, expectedVersion: snapshot.version, newState: settled.updatedState,
                        records: [DedupWrite(eventId: release.eventId, record: .posted(fingerprint(release.sequence)), sequence: release.sequence)],
                        deleteHeldSequence: release.sequence, now: t0), settled.release)
                }
            }
            #expect(released == Array(2...(count + 1)))
            let done = try await store.snapshot(stream: .inventory, key: key, eventId: "")
            #expect(done.state == KeyState(nextExpected: count + 2))
            #expect(try await store.keysWithHeldEvents(stream: .inventory) == [])
        }
    }

    static func gateWalkthrough(_ fixture: some WorkerStoreFixture) async throws {
        let gate = SequenceGate(policy: SequencingPolicy(gapTimeout: .seconds(60)))
        let key = "WH1/SKU-G"
        try await withStore(fixture) { store in
            // Sequence 2 arrives first: held.
            let second = IncomingEvent(eventId: "g2", sequence: 2, fingerprint: fingerprint(2), isReplay: false)
            var snapshot = try await store.snapshot(stream: .inventory, key: key, eventId: "g2")
            let hold = gate.decide(snapshot.state, event: second, record: snapshot.record, now: t0)
            #expect(hold.action == .hold)
            let message = HeldMessage(
                sequence: 2, eventId: "g2", heldAt: t0, routingKey: "inventory.WH1", headers: ["type": "inventory.delta/1"],
                body: Array(#"{"eventId":"g2"}"#.utf8)
            )
            try await store.commit(KeyChange(
                stream: .inventory, key: key, expectedVersion: snapshot.version, newState: hold.updatedState,
                records: hold.updatedRecord.map { [DedupWrite(eventId: "g2", record: $0, sequence: 2)] } ?? [], insertHeld: [message], now: t0
            ))
            #expect(try await store.keysWithHeldEvents(stream: .inventory) == [key])

            // Sequence 1: applied, posted, settled; the settlement releases 2.
            let first = IncomingEvent(eventId: "g1", sequence: 1, fingerprint: fingerprint(1), isReplay: false)
            snapshot = try await store.snapshot(stream: .inventory, key: key, eventId: "g1")
            let apply = gate.decide(snapshot.state, event: first, record: snapshot.record, now: t0)
            #expect(apply.action == .apply)
            // A twin under another eventId, decided by another replica on the same snapshot.
            let twin = IncomingEvent(eventId: "g1-rescan", sequence: 1, fingerprint: fingerprint(11), isReplay: false)
            let twinApply = gate.decide(snapshot.state, event: twin, record: .notSeen, now: t0)
            #expect(twinApply.action == .apply)
            try await store.commit(KeyChange(
                stream: .inventory, key: key, expectedVersion: snapshot.version, newState: apply.updatedState,
                records: apply.updatedRecord.map { [DedupWrite(eventId: "g1", record: $0, sequence: 1)] } ?? [], now: t0
            ))
            // The claim made the first commit move the key: the twin's commit loses, and deciding
            // again on the key as it is now makes it a conflict.
            await #expect(throws: StoreError.self) {
                try await store.commit(KeyChange(
                    stream: .inventory, key: key, expectedVersion: snapshot.version, newState: twinApply.updatedState,
                    records: [DedupWrite(eventId: "g1-rescan", record: .posting(fingerprint(11)), sequence: 1)], now: t0
                ))
            }
            let twinSnapshot = try await store.snapshot(stream: .inventory, key: key, eventId: "g1-rescan")
            #expect(twinSnapshot.record == .notSeen)
            #expect(gate.decide(twinSnapshot.state, event: twin, record: twinSnapshot.record, now: t0).action
                == .conflict(.sequenceClaimed(byEventId: "g1")))
            snapshot = try await store.snapshot(stream: .inventory, key: key, eventId: "g1")
            #expect(snapshot.record == .posting(fingerprint(1)))
            let state = try #require(snapshot.state)
            let settled = gate.settle(state, sequence: 1)
            try await store.commit(KeyChange(
                stream: .inventory, key: key, expectedVersion: snapshot.version, newState: settled.updatedState,
                records: [DedupWrite(eventId: "g1", record: .posted(fingerprint(1)), sequence: 1, documentId: "D1")],
                deleteHeldSequence: 1, now: t0
            ))
            let release = try #require(settled.release)
            #expect(release == Release(sequence: 2, eventId: "g2"))

            // The release: load the stored message, post it, settle it.
            #expect(try await store.heldMessage(stream: .inventory, key: key, sequence: release.sequence) == message)
            snapshot = try await store.snapshot(stream: .inventory, key: key, eventId: "g2")
            #expect(snapshot.record == .held(fingerprint(2)))
            let releasedState = try #require(snapshot.state)
            let done = gate.settle(releasedState, sequence: 2)
            #expect(done.release == nil)
            try await store.commit(KeyChange(
                stream: .inventory, key: key, expectedVersion: snapshot.version, newState: done.updatedState,
                records: [DedupWrite(eventId: "g2", record: .posted(fingerprint(2)), sequence: 2, documentId: "D2")],
                deleteHeldSequence: 2, now: t0
            ))
            snapshot = try await store.snapshot(stream: .inventory, key: key, eventId: "g2")
            #expect(snapshot == KeySnapshot(state: KeyState(nextExpected: 3), version: 4, record: .posted(fingerprint(2)), documentId: "D2"))
            #expect(try await store.heldMessage(stream: .inventory, key: key, sequence: 2) == nil)
            #expect(try await store.keysWithHeldEvents(stream: .inventory) == [])
        }
    }

    // MARK: Helpers

    /// A fixed instant on a whole second (exact in every store's time precision).
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    /// A distinct valid fingerprint per `n`.
    static func fingerprint(_ n: Int64) -> EventFingerprint {
        let digits = String(UInt64(bitPattern: n), radix: 16)
        return EventFingerprint(hex: String(repeating: "0", count: 64 - digits.count) + digits)!
    }

    static func heldMessage(sequence: Int64, eventId: String) -> HeldMessage {
        HeldMessage(
            sequence: sequence, eventId: eventId, heldAt: t0.addingTimeInterval(Double(sequence) + 0.5),
            routingKey: "receipt.WH1",
            headers: ["whsync-attempt": "2", "type": "receipt.event/1", "x-note": "ünïcødé \"quoted\" / slash"],
            body: [0x7b, 0x00, 0xff, 0x0a] + Array("{\"eventId\":\"\(eventId)\"}".utf8)
        )
    }

    /// Opens a store from `fixture`, runs `body`, closes the store (also when `body` throws).
    static func withStore(_ fixture: some WorkerStoreFixture, _ body: (any WorkerStore) async throws -> Void) async throws {
        let store = try await fixture.open()
        do {
            try await body(store)
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }

    static func expectStoreError(
        _ code: StoreError.Code,
        sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () async throws -> Void
    ) async {
        do {
            try await body()
            Issue.record("expected a StoreError \(code), nothing was thrown", sourceLocation: sourceLocation)
        } catch let error as StoreError {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected a StoreError \(code), got \(error)", sourceLocation: sourceLocation)
        }
    }
}
