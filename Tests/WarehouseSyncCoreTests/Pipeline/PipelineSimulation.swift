import Foundation
import WarehouseSyncCore

/// A message as the broker holds it: a body and the two headers the pipeline reads.
struct SimulatedMessage: Equatable {
    var body: String
    /// `whsync-attempt`.
    var attempt: Int?
    /// `whsync-replay-of`.
    var replayOf: String?
}

/// An ERP with its own ledger: it books each `Idempotency-Key` once and answers 409 after that,
/// like the contract says. It can reject an event once (422), fail transiently (503), and
/// "lose" an answer: book, then time out.
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
    /// EventIds rejected (422) on their first posting.
    var rejectOnce: Set<String> = []

    mutating func post(_ document: PostingDocument, random: inout SeededRandom) -> Answer {
        let key = document.idempotencyKey
        if rejectOnce.remove(key) != nil {
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

/// One worker's pipeline in memory — decode → dedup → gate → map → post → record → ack — whose
/// every decision comes from the core (`SequenceGate`, `ERPResponseClass`, `RetryPolicy`,
/// `PostingDocument`, `EventFingerprint`). Only the store, the broker and the ERP are simulated:
/// the store's writes of one step happen together (a transaction), and a crash can come between
/// any two steps that the real pipeline separates. After a crash the unacked delivery comes
/// again and start-up resumes interrupted releases; the store survives.
struct PipelineSimulation {
    struct Store {
        var keys: [String: KeyState] = [:]
        var records: [String: DedupRecord] = [:]
        /// Held messages by key and sequence.
        var heldMessages: [String: [Int64: SimulatedMessage]] = [:]
        var deadLetters: [(message: SimulatedMessage, reason: DeadLetterReason)] = []
    }

    let gate: SequenceGate
    let retryPolicy: RetryPolicy
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

    private(set) var crashes = 0
    private(set) var duplicates = 0
    private(set) var stale = 0
    /// The delivery being processed until it is acked.
    private var inFlight: SimulatedMessage?

    init(gate: SequenceGate, retryPolicy: RetryPolicy, seed: UInt64) {
        self.gate = gate
        self.retryPolicy = retryPolicy
        random = SeededRandom(seed: seed)
    }

    /// Delivers until the queue is empty. `false` if that takes more than `maxSteps` deliveries.
    mutating func run(maxSteps: Int = 100_000) -> Bool {
        var steps = 0
        while !queue.isEmpty {
            steps += 1
            guard steps <= maxSteps else { return false }
            now = now.addingTimeInterval(1)
            let message = queue.remove(at: Int.random(in: 0..<min(window, queue.count), using: &random))
            inFlight = message
            do {
                try deliver(message)
            } catch {
                restart()
            }
        }
        return true
    }

    /// The worker crashed: the unacked delivery is redelivered, releases are resumed.
    mutating func restart() {
        if let message = inFlight {
            queue.insert(message, at: 0)
            inFlight = nil
        }
        while true {
            do {
                for key in store.keys.keys.sorted() {
                    if let release = gate.pendingRelease(store.keys[key]!) {
                        try process(release, of: key)
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
        store.keys[key] = outcome.updatedState
        do {
            try process(outcome.release, of: key)
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
                store.keys[key] = state
                parked.append(key)
            }
        }
        return parked
    }

    private mutating func deliver(_ message: SimulatedMessage) throws {
        let event = PipelineFixtures.decode(message.body)
        let incoming = IncomingEvent(event, isReplay: message.replayOf != nil)
        let key = event.sequencingKey
        let decision = gate.decide(
            store.keys[key], event: incoming, record: store.records[event.eventId] ?? .notSeen, now: now
        )
        switch decision.action {
        case .duplicate:
            duplicates += 1
            ack()
        case .stale:
            stale += 1
            ack()
        case .conflict:
            store.deadLetters.append((message, .conflict))
            ack()
        case .skipped:
            store.deadLetters.append((message, .gapTimeout))
            ack()
        case .hold, .holdParked:
            store.keys[key] = decision.updatedState
            store.records[event.eventId] = decision.updatedRecord
            store.heldMessages[key, default: [:]][event.sequence] = message
            try crashPoint()  // held, not yet acked: it comes again, as a duplicate
            ack()
        case .apply:
            if let state = decision.updatedState { store.keys[key] = state }
            store.records[event.eventId] = decision.updatedRecord
            try post(event, message: message, fingerprint: incoming.fingerprint, isDelivery: true)
        }
    }

    private mutating func process(_ release: Release, of key: String) throws {
        guard let message = store.heldMessages[key]?[release.sequence] else {
            preconditionFailure("released \(key)#\(release.sequence) without a held message")
        }
        let event = PipelineFixtures.decode(message.body)
        precondition(event.eventId == release.eventId)
        try post(event, message: message, fingerprint: EventFingerprint(of: event), isDelivery: false)
    }

    private mutating func post(_ event: WarehouseEvent, message: SimulatedMessage, fingerprint: EventFingerprint, isDelivery: Bool) throws {
        let attempt = RetryPolicy.attempt(fromHeader: message.attempt.map(String.init))
        let answer = erp.post(PostingDocument(event: event), random: &random)
        try crashPoint()  // the ERP may have booked it; nothing is recorded yet
        let response: ERPResponseClass
        switch answer {
        case .http(let status, let body):
            response = ERPResponseClass.classify(status: status, retryAfter: nil, body: Array(body.utf8), now: now)
        case .timeout:
            response = .transient(reason: .timeout, retryAfter: nil)
        }
        let key = event.sequencingKey
        switch response.disposition(attempt: attempt, retryPolicy: retryPolicy) {
        case .recordPosted:
            store.records[event.eventId] = .posted(fingerprint)
            let release = settle(key: key, sequence: event.sequence)
            try crashPoint()  // recorded, not yet acked: it comes again, as a duplicate
            if isDelivery { ack() }
            if let release { try process(release, of: key) }
        case .deadLetter(let reason, _):
            store.deadLetters.append((message, reason))
            store.records[event.eventId] = .deadLettered(fingerprint)
            let release = settle(key: key, sequence: event.sequence)
            if isDelivery { ack() }
            if let release { try process(release, of: key) }
        case .retry(_, let nextAttempt):
            var retry = message
            retry.attempt = nextAttempt
            queue.append(retry)  // the TTL queue hands it back after the others
            if isDelivery { ack() }
        }
    }

    /// Settles in the same transaction as the record: the key moves on and the held message goes.
    private mutating func settle(key: String, sequence: Int64) -> Release? {
        let settlement = gate.settle(store.keys[key]!, sequence: sequence)
        guard let state = settlement.updatedState else { return nil }
        store.keys[key] = state
        store.heldMessages[key]?[sequence] = nil
        return settlement.release
    }

    private mutating func ack() {
        inFlight = nil
    }

    private mutating func crashPoint() throws {
        guard crashes < maxCrashes, random.chance(crashProbability) else { return }
        crashes += 1
        throw SimulatedCrash()
    }
}
