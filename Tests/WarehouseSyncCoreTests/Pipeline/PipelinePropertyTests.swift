import Foundation
import PropertyBased
import Testing
import WarehouseSyncCore

/// Sequencing and dedup invariants over random event streams, run through ``PipelineSimulation``.
@Suite("Pipeline properties")
struct PipelinePropertyTests {
    /// One event the simulated WMS emits.
    struct WMSEvent {
        var eventId: String
        var warehouse: String
        var sku: String
        var sequence: Int64
        var quantity: Quantity
        var key: String { warehouse + "/" + sku }

        func message(variant: Int = 0) -> SimulatedMessage {
            SimulatedMessage(body: PipelineFixtures.inventoryBody(
                eventId: eventId, warehouse: warehouse, sku: sku, sequence: sequence, quantity: quantity, variant: variant
            ))
        }
    }

    static let maxAttempts = 4
    static let gapTimeoutSeconds: TimeInterval = 1000
    static let gapTimeout = Duration.seconds(gapTimeoutSeconds)

    /// Per key, sequences 1...n with random non-zero quantities; keys spread over two warehouses.
    static func makeStreams(keys: Int, maxLength: Int, random: inout SeededRandom) -> [[WMSEvent]] {
        (0..<keys).map { index in
            let warehouse = index % 2 == 0 ? "WH1" : "WH2"
            let sku = "SKU-\(index)"
            return (1...Int64(Int.random(in: 1...maxLength, using: &random))).map { sequence in
                var micro = Int64.random(in: -5_000_000_000...5_000_000_000, using: &random)
                if random.chance(0.3) { micro -= micro % 1_000_000 }  // some whole numbers
                if micro == 0 { micro = 1_000_000 }
                return WMSEvent(
                    eventId: "\(warehouse)-\(sku)-\(sequence)", warehouse: warehouse, sku: sku, sequence: sequence,
                    quantity: Quantity(microUnits: micro)
                )
            }
        }
    }

    /// The streams interleaved at random, each key in order (the consumer's window permutes them),
    /// plus re-sent copies written differently, anywhere in the queue.
    static func makeQueue(_ streams: [[WMSEvent]], duplicateProbability: Double, random: inout SeededRandom) -> [SimulatedMessage] {
        var positions = streams.map { _ in 0 }
        var queue: [SimulatedMessage] = []
        var copies: [SimulatedMessage] = []
        while let stream = positions.indices.filter({ positions[$0] < streams[$0].count }).randomElement(using: &random) {
            let event = streams[stream][positions[stream]]
            positions[stream] += 1
            queue.append(event.message())
            if random.chance(duplicateProbability) { copies.append(event.message(variant: 1)) }
        }
        for copy in copies {
            queue.insert(copy, at: Int.random(in: 0...queue.count, using: &random))
        }
        return queue
    }

    static func simulation(seed: UInt64, window: Int) -> PipelineSimulation {
        var simulation = PipelineSimulation(
            gate: SequenceGate(policy: SequencingPolicy(gapTimeout: gapTimeout)),
            retryPolicy: RetryPolicy(maxAttempts: maxAttempts, topology: PipelineFixtures.topology())!,
            seed: seed
        )
        simulation.window = window
        return simulation
    }

    /// Each event of `expected` booked exactly once, nothing else booked, sums per
    /// warehouse/SKU exact.
    static func expectLedger(_ erp: FakeERP, equals expected: [WMSEvent], sourceLocation: SourceLocation = #_sourceLocation) {
        let booked = erp.bookings.map(\.eventId)
        #expect(booked.count == Set(booked).count, "an eventId was booked twice", sourceLocation: sourceLocation)
        #expect(Set(booked) == Set(expected.map(\.eventId)), sourceLocation: sourceLocation)
        var expectedSums: [String: Quantity] = [:]
        for event in expected { expectedSums[event.key, default: .zero] += event.quantity }
        var bookedSums: [String: Quantity] = [:]
        for booking in erp.bookings { bookedSums[booking.sequencingKey, default: .zero] += booking.quantity }
        #expect(bookedSums == expectedSums, sourceLocation: sourceLocation)
    }

    /// The sequences booked per key, in booking order.
    static func bookedSequences(_ erp: FakeERP) -> [String: [Int64]] {
        erp.bookings.reduce(into: [:]) { $0[$1.sequencingKey, default: []].append($1.sequence) }
    }

    @Test("property: permuted, duplicated, retried and crashed deliveries book the exact ledger, each key in sequence order")
    func exactlyOnceInOrder() async {
        await propertyCheck(
            input: Gen.uint64(), Gen.int(in: 1...4), Gen.int(in: 1...12), Gen.int(in: 1...6)
        ) { seed, keys, maxLength, window in
            var random = SeededRandom(seed: seed)
            let streams = Self.makeStreams(keys: keys, maxLength: maxLength, random: &random)
            var simulation = Self.simulation(seed: seed, window: window)
            simulation.queue = Self.makeQueue(streams, duplicateProbability: 0.3, random: &random)
            let copies = simulation.queue.count - streams.joined().count
            simulation.crashProbability = 0.04
            simulation.erp.transientProbability = 0.25
            simulation.erp.lostAnswerShare = 0.5
            for event in streams.joined() { simulation.erp.transientBudget[event.eventId] = Self.maxAttempts - 1 }

            let completed = simulation.run()
            #expect(completed)
            Self.expectLedger(simulation.erp, equals: Array(streams.joined()))
            let sequences = Self.bookedSequences(simulation.erp)
            for stream in streams {
                #expect(sequences[stream[0].key] == stream.map(\.sequence))
            }
            #expect(simulation.store.deadLetters.isEmpty)
            #expect(simulation.stale == 0)
            #expect(simulation.duplicates >= copies)
            // The ERP sees a key again only after a crash or a lost answer.
            #expect(simulation.erp.repeatedPostings <= simulation.crashes + simulation.erp.lostAnswers)
            for stream in streams {
                #expect(simulation.store.keys[stream[0].key] == KeyState(nextExpected: Int64(stream.count) + 1))
            }
            #expect(simulation.store.heldMessages.values.allSatisfy { $0.isEmpty })
        }
    }

    @Test("property: business rejections do not stall their keys, and replays of them are posted once")
    func rejectionsThenReplays() async {
        await propertyCheck(input: Gen.uint64(), Gen.int(in: 1...3), Gen.int(in: 1...10), Gen.int(in: 1...4)) { seed, keys, maxLength, window in
            var random = SeededRandom(seed: seed)
            let streams = Self.makeStreams(keys: keys, maxLength: maxLength, random: &random)
            let all = Array(streams.joined())
            var simulation = Self.simulation(seed: seed, window: window)
            simulation.queue = Self.makeQueue(streams, duplicateProbability: 0.2, random: &random)
            simulation.crashProbability = 0.03
            simulation.erp.rejecting = Set(all.filter { _ in random.chance(0.3) }.map(\.eventId))
            let rejected = simulation.erp.rejecting

            let completed = simulation.run()
            #expect(completed)
            // Every key moved to its end, although some of its events were rejected.
            for stream in streams {
                #expect(simulation.store.keys[stream[0].key]?.nextExpected == Int64(stream.count) + 1)
            }
            let letters = simulation.store.deadLetters
            #expect(letters.allSatisfy { $0.reason == .erpRejected })
            let rejectedIds = Set(letters.map { PipelineFixtures.decode($0.message.body).eventId })
            #expect(rejectedIds.isSubset(of: rejected))
            // Everything else is booked, in sequence order per key.
            let sequences = Self.bookedSequences(simulation.erp)
            for stream in streams {
                let expected = stream.filter { !rejectedIds.contains($0.eventId) }.map(\.sequence)
                #expect((sequences[stream[0].key] ?? []) == expected)
            }

            // The operator fixes what the ERP refused and replays every dead letter (twice, by
            // mistake; a crash after a letter's confirm letters its event twice): each is posted once.
            simulation.erp.rejecting = []
            simulation.queue = letters.flatMap { letter in
                [SimulatedMessage(body: letter.message.body, replayOf: "dl-1"), SimulatedMessage(body: letter.message.body, replayOf: "dl-1")]
            }
            simulation.store.deadLetters = []
            let replaysCompleted = simulation.run()
            #expect(replaysCompleted)
            Self.expectLedger(simulation.erp, equals: all)
            #expect(simulation.store.deadLetters.isEmpty)
        }
    }

    @Test("property: a re-used eventId with another payload is dead-lettered as a conflict: one payload is booked, never both")
    func conflicts() async {
        await propertyCheck(input: Gen.uint64(), Gen.int(in: 1...3), Gen.int(in: 1...10), Gen.int(in: 1...4)) { seed, keys, maxLength, window in
            var random = SeededRandom(seed: seed)
            let streams = Self.makeStreams(keys: keys, maxLength: maxLength, random: &random)
            var simulation = Self.simulation(seed: seed, window: window)
            simulation.queue = Self.makeQueue(streams, duplicateProbability: 0.2, random: &random)
            // A buggy WMS re-sends some eventIds with another quantity, anywhere in the stream.
            var impostors: [String: WMSEvent] = [:]
            for event in streams.joined() where random.chance(0.3) {
                var impostor = event
                impostor.quantity = event.quantity + 1
                if impostor.quantity.isZero { impostor.quantity = 7 }
                impostors[event.eventId] = impostor
                simulation.queue.insert(impostor.message(), at: Int.random(in: 0...simulation.queue.count, using: &random))
            }
            simulation.crashProbability = 0.03
            simulation.erp.transientProbability = 0.25
            simulation.erp.lostAnswerShare = 0.5
            for event in streams.joined() { simulation.erp.transientBudget[event.eventId] = Self.maxAttempts - 1 }

            let completed = simulation.run()
            #expect(completed)
            #expect(simulation.store.deadLetters.allSatisfy { $0.reason == .conflict })
            let letters = simulation.store.deadLetters.map { PipelineFixtures.decode($0.message.body) }
            let booked = Dictionary(uniqueKeysWithValues: simulation.erp.bookings.map { ($0.eventId, $0.quantity) })
            for event in streams.joined() {
                let bookedQuantity = booked[event.eventId]
                let rejected = letters.filter { $0.eventId == event.eventId }
                guard let impostor = impostors[event.eventId] else {
                    #expect(bookedQuantity == event.quantity)
                    #expect(rejected.isEmpty)
                    continue
                }
                // Whichever payload came first is booked; every copy of the other is a conflict.
                #expect(bookedQuantity == event.quantity || bookedQuantity == impostor.quantity)
                #expect(!rejected.isEmpty)
                for letter in rejected {
                    guard case .inventory(let delta) = letter else { continue }
                    #expect(delta.quantity != bookedQuantity)
                }
            }
            #expect(simulation.erp.bookings.count == streams.joined().count)
        }
    }

    @Test("property: lost events park their keys; skipping releases the held events in order, nothing else is lost")
    func gapsParkAndSkip() async {
        await propertyCheck(input: Gen.uint64(), Gen.int(in: 1...3), Gen.int(in: 2...12), Gen.int(in: 1...4)) { seed, keys, maxLength, window in
            var random = SeededRandom(seed: seed)
            let streams = Self.makeStreams(keys: keys, maxLength: maxLength, random: &random)
            // Some events never reach the broker; the last few of each key come late.
            let lost = Set(streams.joined().filter { _ in random.chance(0.2) }.map(\.eventId))
            let delivered = streams.map { $0.filter { !lost.contains($0.eventId) } }
            let lateCounts = delivered.map { Int.random(in: 0...min(2, $0.count), using: &random) }
            let early = zip(delivered, lateCounts).map { Array($0.dropLast($1)) }
            let late = zip(delivered, lateCounts).map { Array($0.suffix($1)) }
            var simulation = Self.simulation(seed: seed, window: window)
            simulation.queue = Self.makeQueue(early, duplicateProbability: 0.2, random: &random)
            simulation.crashProbability = 0.03
            let completed = simulation.run()
            #expect(completed)

            // Time passes: every key that holds events behind a lost one parks, no other.
            simulation.now = simulation.now.addingTimeInterval(Self.gapTimeoutSeconds)
            let parked = Set(simulation.checkGaps())
            let waiting = Set(simulation.store.keys.filter { !$0.value.held.isEmpty }.map(\.key))
            #expect(parked == waiting)

            // Late events of a parked key are held, even those of its held events' re-sends.
            let bookedBefore = Self.bookedSequences(simulation.erp)
            simulation.queue = Self.makeQueue(late, duplicateProbability: 0.5, random: &random)
            let lateCompleted = simulation.run()
            #expect(lateCompleted)
            let bookedWhileParked = Self.bookedSequences(simulation.erp)
            for key in parked {
                #expect(bookedWhileParked[key] == bookedBefore[key])
            }

            // The operator skips each gap, until nothing is held.
            var rounds = 0
            while let key = simulation.store.keys.keys.sorted().first(where: { !simulation.store.keys[$0]!.held.isEmpty }) {
                rounds += 1
                guard rounds <= 100 else {
                    Issue.record("skipping did not drain the held events")
                    return
                }
                let skipped = simulation.skip(key)
                #expect(skipped)
            }

            Self.expectLedger(simulation.erp, equals: Array(delivered.joined()))
            let sequences = Self.bookedSequences(simulation.erp)
            for stream in delivered where !stream.isEmpty {
                #expect(sequences[stream[0].key] == stream.map(\.sequence))
            }
            #expect(simulation.stale == 0)

            // The lost events turn up after all. Those of a skipped gap are dead-lettered for a
            // person (gap-timeout), never dropped; the rest are in turn and post. Replaying the
            // dead letters posts them too: in the end nothing is lost.
            let turnedUp = streams.map { $0.filter { lost.contains($0.eventId) } }
            // Behind its key now: only an operator's skip can have moved the key past a lost event.
            let skippedPast = Set(turnedUp.joined().filter { event in
                simulation.store.keys[event.key].map { event.sequence < $0.nextExpected } ?? false
            }.map(\.eventId))
            simulation.queue = Self.makeQueue(turnedUp, duplicateProbability: 0.2, random: &random)
            let turnedUpCompleted = simulation.run()
            #expect(turnedUpCompleted)
            #expect(simulation.stale == 0)
            #expect(simulation.store.deadLetters.allSatisfy { $0.reason == .gapTimeout })
            let lettered = Set(simulation.store.deadLetters.map { PipelineFixtures.decode($0.message.body).eventId })
            #expect(lettered == skippedPast, "exactly the events of skipped gaps are dead-lettered")
            let letters = simulation.store.deadLetters
            simulation.store.deadLetters = []
            simulation.queue = letters.enumerated().map { SimulatedMessage(body: $1.0.body, replayOf: "dl-\($0)") }
            let replaysCompleted = simulation.run()
            #expect(replaysCompleted)
            Self.expectLedger(simulation.erp, equals: Array(streams.joined()))
        }
    }

    @Test("property: behind the key only replays and events let through before are posted; a posted payload is a duplicate")
    func staleAndReplay() async {
        await propertyCheck(
            input: Gen.int64(in: 2...1_000), Gen.int64(in: 1...999), Gen.bool, Gen.int(in: 0...3)
        ) { nextExpected, offset, isReplay, recordKind in
            let sequence = max(1, nextExpected - offset)
            let event = PipelineFixtures.incoming("e", sequence: sequence, isReplay: isReplay)
            let record: DedupRecord = [
                .notSeen, .deadLettered(event.fingerprint), .posting(event.fingerprint), .posted(event.fingerprint),
            ][recordKind]
            let gate = SequenceGate(policy: SequencingPolicy(gapTimeout: .seconds(1)))
            let decision = gate.decide(KeyState(nextExpected: nextExpected), event: event, record: record, now: PipelineFixtures.epoch)
            #expect(decision.updatedState == nil)
            switch record {
            case .posted: #expect(decision.action == .duplicate)
            case .posting: #expect(decision.action == .apply)
            default: #expect(decision.action == (isReplay ? .apply : .stale))
            }
        }
    }

    @Test("property: after a park, skip releases exactly the contiguous held run from the lowest held sequence, in order")
    func skipReleasesInOrder() async {
        await propertyCheck(input: Gen.int64(in: 1...50), Gen.int64(in: 1...5).array(of: 1...12), Gen.int(in: 0...30)) { start, steps, lateness in
            // Held sequences above a gap at `start`, at increasing distances.
            var sequences: [Int64] = []
            var next = start
            for step in steps {
                next += step
                sequences.append(next)
            }
            let gate = SequenceGate(policy: SequencingPolicy(gapTimeout: .seconds(30)))
            var state = KeyState(nextExpected: start)
            for (index, sequence) in sequences.enumerated() {
                let event = PipelineFixtures.incoming("e\(sequence)", sequence: sequence)
                let decision = gate.decide(state, event: event, record: .notSeen, now: PipelineFixtures.time(Double(index)))
                #expect(decision.action == .hold)
                state = decision.updatedState ?? state
            }
            let checkedAt = PipelineFixtures.time(Double(lateness))
            guard let parked = gate.checkGap(state, now: checkedAt) else {
                #expect(lateness < 30)
                return
            }
            #expect(lateness >= 30)
            guard let outcome = gate.skip(parked) else {
                Issue.record("a parked key with held events must be skippable")
                return
            }
            #expect(outcome.skipped == start...(sequences[0] - 1))
            // Settle each released event as the pipeline would, collecting the releases.
            var released = [outcome.release.sequence]
            var current = outcome.updatedState
            while true {
                let settlement = gate.settle(current, sequence: released[released.count - 1])
                guard let updated = settlement.updatedState else {
                    Issue.record("a released event must be the one in turn")
                    return
                }
                current = updated
                guard let release = settlement.release else { break }
                released.append(release.sequence)
            }
            var run = [sequences[0]]
            for sequence in sequences.dropFirst() {
                guard sequence == run[run.count - 1] + 1 else { break }
                run.append(sequence)
            }
            #expect(released == run)
            #expect(current.parked == nil)
            #expect(current.nextExpected == run[run.count - 1] + 1)
            #expect(current.held.knownSequences == Array(sequences.dropFirst(run.count)))
        }
    }
}
