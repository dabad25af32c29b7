import Foundation
import WarehouseSyncCore

/// A message as the broker holds it: a body and the two headers the pipeline reads.
struct SimulatedMessage: Equatable {
    var body: String
    /// `whsync-attempt`.
    var attempt: Int?
    /// `whsync-replay-of`.
    var replayOf: String?

    var envelope: EventJourney.Envelope {
        var headers: [String: String] = [:]
        headers[WireHeader.attempt] = attempt.map(String.init)
        headers[WireHeader.replayOf] = replayOf
        // Routed as the WMS publishes it: `inventory.<warehouse>`.
        let warehouse = (try? EventDecoder().decode(Array(body.utf8)))?.header.warehouse ?? "WH1"
        return EventJourney.Envelope(routingKey: "inventory.\(warehouse)", headers: headers, body: Array(body.utf8))
    }
}

extension SimulatedMessage {
    init(_ envelope: EventJourney.Envelope) {
        self.init(
            body: String(decoding: envelope.body, as: UTF8.self), attempt: envelope.headers[WireHeader.attempt].flatMap { Int($0) },
            replayOf: envelope.headers[WireHeader.replayOf])
    }
}

/// An ERP with its own ledger: it books each `Idempotency-Key` once and answers 409 after that,
/// like the contract says. It can reject events (422) until the
/// operator fixes them, fail transiently (503), and "lose" an answer: book, then time out.
struct FakeERP {
    struct Booking: Equatable {
        var eventId: String
        var warehouse: String
        var sku: String
        var sequence: Int64
        var quantity: Quantity
        var sequencingKey: String { warehouse + "/" + sku }
    }

    enum Answer {
        case http(status: Int, body: String)
        case timeout
    }

    /// In booking order.
    private(set) var bookings: [Booking] = []
    private var booked: Set<String> = []
    /// 409 answers: a posting the pipeline repeated.
    private(set) var repeatedPostings = 0
    /// Booked, then timed out.
    private(set) var lostAnswers = 0
    /// Transient failures each eventId may still get; none beyond, so no event runs out of retries.
    var transientBudget: [String: Int] = [:]
    var transientProbability = 0.0
    /// The share of transient failures that book first and lose the answer.
    var lostAnswerShare = 0.0
    /// EventIds rejected (422) on every posting: a business error, until the operator fixes it.
    var rejecting: Set<String> = []

    mutating func post(_ document: PostingDocument, random: inout SeededRandom) -> Answer {
        let key = document.idempotencyKey
        if rejecting.contains(key) {
            return .http(status: 422, body: #"{"message":"rejected by the ledger"}"#)
        }
        if booked.contains(key) {
            repeatedPostings += 1
            return .http(status: 409, body: #"{"message":"already posted"}"#)
        }
        if transientBudget[key, default: 0] > 0, random.chance(transientProbability) {
            transientBudget[key, default: 0] -= 1
            guard random.chance(lostAnswerShare) else { return .http(status: 503, body: "down for maintenance") }
            book(document)
            lostAnswers += 1
            return .timeout
        }
        book(document)
        return .http(status: 201, body: #"{"documentId":"D\#(bookings.count)"}"#)
    }

    /// Books from the document's body alone, as an ERP would.
    private mutating func book(_ document: PostingDocument) {
        let body = document.body
        guard let warehouse = body["warehouse"]?.stringValue, let sku = body["sku"]?.stringValue,
            let sequence = body["sequence"]?.numberLiteral.flatMap({ Int64($0) }),
            let quantity = body["quantity"]?.numberLiteral.flatMap({ Quantity(parsing: $0) })
        else { preconditionFailure("not an inventory movement: \(body)") }
        booked.insert(document.idempotencyKey)
        bookings.append(Booking(eventId: document.idempotencyKey, warehouse: warehouse, sku: sku, sequence: sequence, quantity: quantity))
    }
}

/// A crash of the worker process.
struct SimulatedCrash: Error {}

/// One worker in memory, driving the pipeline's own state machine (``EventJourney``: decode →
/// dedup → gate → map → post → record → ack → release) the way the runtime does: every action
/// carried out, its answer fed back. Only the store, the broker and the ERP are simulated: a
/// ``KeyStep`` commits atomically (a transaction, with the store's version check), and the worker
/// can crash after any action took effect, before its journey hears the answer. After a crash the
/// unacked delivery comes again and start-up resumes interrupted releases; the store survives.
struct PipelineSimulation {
    struct Store {
        var keys: [String: KeyState] = [:]
        var versions: [String: Int64] = [:]
        var records: [String: DedupRecord] = [:]
        /// Held messages by key and sequence.
        var heldMessages: [String: [Int64: HeldMessage]] = [:]
        var deadLetters: [(message: SimulatedMessage, reason: DeadLetterReason)] = []

        /// `later`: the eventIds of a key's queued events decided in the same step.
        func snapshot(key: String, eventId: String, later: [String] = []) -> KeySnapshot {
            var snapshot = KeySnapshot(state: keys[key], version: versions[key, default: 0], record: records[eventId] ?? .notSeen)
            for eventId in later { snapshot.laterRecords[eventId] = records[eventId] }
            return snapshot
        }

        /// What a store's commit of one step does: decide on the assumed snapshot while it is
        /// current, else on a fresh read; write the change atomically.
        mutating func commit(_ step: KeyStep, now: Date) -> KeyStep.Outcome {
            let current = versions[step.key, default: 0]
            let snapshot =
                step.assumed.flatMap { $0.version == current ? $0 : nil }
                ?? snapshot(key: step.key, eventId: step.eventId, later: step.laterEvents.map(\.eventId))
            let (change, outcome) = step.run(on: snapshot, now: now)
            if let change { apply(change) }
            return outcome
        }

        mutating func apply(_ change: KeyChange) {
            precondition(change.expectedVersion == versions[change.key, default: 0], "a change on a stale version")
            if let state = change.newState {
                keys[change.key] = state
                versions[change.key, default: 0] += 1
            }
            for write in change.records { records[write.eventId] = write.record }
            for held in change.insertHeld { heldMessages[change.key, default: [:]][held.sequence] = held }
            if let sequence = change.deleteHeldSequence { heldMessages[change.key]?[sequence] = nil }
        }

        /// An operator's or the maintenance pass's new state for a key.
        mutating func replace(_ key: String, with state: KeyState) {
            keys[key] = state
            versions[key, default: 0] += 1
        }
    }

    let rules: EventJourney.Rules
    var gate: SequenceGate { rules.gate }
    var store = Store()
    var erp = FakeERP()
    /// Ready messages, in queue order.
    var queue: [SimulatedMessage] = []
    var random: SeededRandom
    var now = PipelineFixtures.epoch
    /// How far ahead of the queue's head a delivery may come (prefetch reorders within it).
    var window = 1
    var crashProbability = 0.0
    var maxCrashes = 20
    /// How often a delivery is taken with its key's next ones in the window and their gate
    /// decisions made in one step (``KeyStep/inOrder(_:)``), as the runtime does with a key's queue.
    var foldProbability = 0.5

    private(set) var crashes = 0
    private(set) var duplicates = 0
    private(set) var stale = 0
    /// The deliveries being processed until each is acked, by delivery number.
    private var inFlight: [Int: SimulatedMessage] = [:]
    private var deliveries = 0
    /// Every event ever dead-lettered: the store's letters, which vouch for replays.
    private var letteredEventIds: Set<String> = []

    init(gate: SequenceGate, retryPolicy: RetryPolicy, seed: UInt64) {
        rules = EventJourney.Rules(stream: .inventory, decoder: EventDecoder(), gate: gate, retryPolicy: retryPolicy)
        random = SeededRandom(seed: seed)
    }

    /// Delivers until the queue is empty. `false` if that takes more than `maxSteps` deliveries.
    mutating func run(maxSteps: Int = 100_000) -> Bool {
        var steps = 0
        while !queue.isEmpty {
            steps += 1
            guard steps <= maxSteps else { return false }
            now = now.addingTimeInterval(1)
            var taken = [queue.remove(at: Int.random(in: 0..<min(window, queue.count), using: &random))]
            if random.chance(foldProbability), let key = EventJourney(delivery: taken[0].envelope, rules: rules).key {
                var index = 0
                while index < min(window - 1, queue.count), taken.count < 8 {
                    if EventJourney(delivery: queue[index].envelope, rules: rules).key == key {
                        taken.append(queue.remove(at: index))
                    } else {
                        index += 1
                    }
                }
            }
            do {
                try deliver(taken)
            } catch {
                restart()
            }
        }
        return true
    }

    /// Deliveries of one key taken together: their leading gate decisions in one step, then each
    /// decided journey in order; those the step did not decide go back to the queue's head.
    private mutating func deliver(_ messages: [SimulatedMessage]) throws {
        let numbers = messages.map { message -> Int in
            deliveries += 1
            inFlight[deliveries] = message
            return deliveries
        }
        var journeys = messages.map { EventJourney(delivery: $0.envelope, rules: rules) }
        var steps: [KeyStep] = []
        var firsts: [EventJourney.Action] = []
        for index in journeys.indices {
            let first = journeys[index].start()
            firsts.append(first)
            if case .store(let step) = first, step.isGateDecision, steps.count == index { steps.append(step) }
        }
        var decided = 1
        if steps.count > 1 {
            let outcome = store.commit(KeyStep.inOrder(steps), now: now)
            try crashPoint()  // committed, nothing acked
            guard case .decidedInOrder(let decisions) = outcome else { preconditionFailure("a fold decides in order") }
            decided = decisions.count
            for (index, decision) in decisions.enumerated() {
                let action = journeys[index].stored(.decided(decision.action, decision.after))
                try drive(journeys[index], from: action, delivery: numbers[index])
            }
        } else {
            try drive(journeys[0], from: firsts[0], delivery: numbers[0])
        }
        for index in (decided..<messages.count).reversed() {
            inFlight[numbers[index]] = nil
            queue.insert(messages[index], at: 0)
        }
    }

    /// The worker crashed: the unacked deliveries are redelivered, releases are resumed.
    mutating func restart() {
        for number in inFlight.keys.sorted(by: >) { queue.insert(inFlight[number]!, at: 0) }
        inFlight = [:]
        while true {
            do {
                for key in store.keys.keys.sorted() {
                    if let release = gate.pendingRelease(store.keys[key]!) {
                        try resume(release, of: key)
                    }
                }
                return
            } catch {
                continue
            }
        }
    }

    /// The operator skips the gap of `key`; `false` when nothing was held.
    mutating func skip(_ key: String) -> Bool {
        guard let state = store.keys[key], let outcome = gate.skip(state) else { return false }
        store.replace(key, with: outcome.updatedState)
        do {
            try resume(outcome.release, of: key)
        } catch {
            restart()
        }
        return true
    }

    /// Parks every key whose gap is older than the gap timeout; returns the parked keys.
    mutating func checkGaps() -> [String] {
        var parked: [String] = []
        for key in store.keys.keys.sorted() {
            if let state = gate.checkGap(store.keys[key]!, now: now) {
                store.replace(key, with: state)
                parked.append(key)
            }
        }
        return parked
    }

    private mutating func resume(_ release: Release, of key: String) throws {
        let snapshot = store.snapshot(key: key, eventId: release.eventId)
        var journey = EventJourney(release: .init(release: release, key: key, snapshot: snapshot), rules: rules)
        let first = journey.start()
        try drive(journey, from: first, delivery: nil)
    }

    /// Carries out a journey's actions from `first`, and those of the releases it hands on, as
    /// the runtime does; `delivery`: the number of the delivery it acks.
    private mutating func drive(_ journey: EventJourney, from first: EventJourney.Action, delivery: Int?) throws {
        var journey = journey
        var action = first
        while true {
            switch action {
            case .checkReplay:
                let vouched = journey.event.map { letteredEventIds.contains($0.eventId) } ?? false
                action = journey.replayChecked(letterEventIds: vouched ? [journey.event!.eventId] : [])
            case .store(let step):
                let outcome = store.commit(step, now: now)
                try crashPoint()  // committed, not yet acted on
                action = journey.stored(outcome)
            case .loadHeld(let key, let sequence):
                action = journey.heldLoaded(store.heldMessages[key]?[sequence])
            case .post(let document):
                let answer = erp.post(document, random: &random)
                try crashPoint()  // the ERP may have booked it; nothing is recorded yet
                switch answer {
                case .http(let status, let body):
                    action = journey.answered(ERPResponseClass.classify(status: status, retryAfter: nil, body: Array(body.utf8), now: now))
                case .timeout:
                    // Booked, answer lost: a timeout, or a batch answer that lacks this item.
                    let reason: ERPResponseClass.TransientReason =
                        random.chance(0.5) ? .timeout : .misanswered(status: 200, .noBatchResult)
                    action = journey.answered(.transient(reason: reason, retryAfter: nil))
                }
            case .publishDeadLetter(let reason, _, _):
                let letter = SimulatedMessage(journey.envelope!)
                store.deadLetters.append((letter, reason))
                if let event = journey.event { letteredEventIds.insert(event.eventId) }
                try crashPoint()  // confirmed, the key not settled yet: it is dead-lettered again
                action = journey.published()
            case .publishRetry(_, let nextAttempt):
                var copy = SimulatedMessage(journey.envelope!)
                copy.attempt = nextAttempt
                queue.append(copy)  // the TTL queue hands it back after the others
                try crashPoint()
                action = journey.published()
            case .finish(let ending):
                switch ending.outcome {
                case .duplicate: duplicates += 1
                case .stale: stale += 1
                default: break
                }
                if ending.delivery == .ack, let delivery { inFlight[delivery] = nil }
                guard let next = ending.next else { return }
                journey = EventJourney(release: next, rules: rules)
                action = journey.start()
            }
        }
    }

    private mutating func crashPoint() throws {
        guard crashes < maxCrashes, random.chance(crashProbability) else { return }
        crashes += 1
        throw SimulatedCrash()
    }
}
