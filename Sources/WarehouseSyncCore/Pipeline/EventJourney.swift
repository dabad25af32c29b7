import Foundation

/// One event's way through a worker (docs/pipeline-core.md, "What to persist together, and when
/// to ack"), as a state machine: the runtime carries out each ``Action`` and answers with what
/// came of it (``replayChecked(letterEventIds:)``, ``stored(_:)``, ``heldLoaded(_:)``,
/// ``answered(_:)``, ``published()``, ``failed()``); the journey answers with the next action,
/// until ``Action/finish(_:)``. Every rule of the pipeline lives here (what the store writes
/// and when, post, dead-letter, retry copy, ack, hold, release, hand back); the runtime has none.
///
/// Pure: no I/O, no clock (a ``KeyStep`` takes `now`). One journey is one event of one key; the
/// runtime runs a key's journeys one at a time and gathers the store steps and postings of
/// many keys' journeys into rounds (docs/worker.md, "Rounds").
public struct EventJourney: Sendable {
    /// What every journey of one worker goes by. A class: every journey, action and key step
    /// carries it, and a copy of a reference costs a retain where these structs (the status
    /// mapping, the topology in the retry policy) would cost one each.
    public final class Rules: Sendable {
        public let stream: EventStream
        public let decoder: EventDecoder
        public let gate: SequenceGate
        public let retryPolicy: RetryPolicy

        public init(stream: EventStream, decoder: EventDecoder, gate: SequenceGate, retryPolicy: RetryPolicy) {
            self.stream = stream
            self.decoder = decoder
            self.gate = gate
            self.retryPolicy = retryPolicy
        }
    }

    /// A message as the journey sees it: a delivery's, or a held event's as stored.
    public struct Envelope: Sendable, Hashable {
        public var routingKey: String
        /// The string-valued AMQP headers (kept with a held event).
        public var headers: [String: String]
        public var body: [UInt8]

        public init(routingKey: String, headers: [String: String], body: [UInt8]) {
            self.routingKey = routingKey
            self.headers = headers
            self.body = body
        }

        public init(held: HeldMessage) {
            self.init(routingKey: held.routingKey, headers: held.headers, body: held.body)
        }

        /// `whsync-attempt`: the posting attempt this message is.
        public var attempt: Int { RetryPolicy.attempt(fromHeader: headers[WireHeader.attempt]) }
        /// `whsync-replay-of`: the dead letter it claims to replay (believed once the store vouches).
        public var claimedReplayOf: String? { headers[WireHeader.replayOf] }
    }

    /// A held event whose turn has come, with the key as the commit that released it left it.
    public struct ReleaseInTurn: Sendable, Hashable {
        public var release: Release
        public var key: String
        public var snapshot: KeySnapshot

        public init(release: Release, key: String, snapshot: KeySnapshot) {
            self.release = release
            self.key = key
            self.snapshot = snapshot
        }
    }

    /// What the runtime does next.
    public enum Action: Sendable {
        /// Look up the dead letter `whsync-replay-of` names (an id that is no stored letter finds
        /// nothing); answer ``replayChecked(letterEventIds:)``.
        case checkReplay(letterId: String)
        /// Commit the step through the store (in the next store round); answer ``stored(_:)``.
        case store(KeyStep)
        /// Read the held message of `key` at `sequence`; answer ``heldLoaded(_:)``.
        case loadHeld(key: String, sequence: Int64)
        /// Post the document (through the circuit breaker, in the next batch on the batch
        /// route); answer ``answered(_:)``.
        case post(PostingDocument)
        /// Publish the message as a dead letter and wait for the broker's confirm; answer
        /// ``published()``.
        case publishDeadLetter(DeadLetterReason, error: String, attempt: Int)
        /// Publish the message to the retry exchange and wait for the confirm; answer ``published()``.
        case publishRetry(tier: Topology.RetryTier, nextAttempt: Int)
        /// The journey is over: settle the delivery with the broker as the ending says, then
        /// start the journey of the release in turn, if any.
        case finish(Ending)
    }

    /// How a journey ended.
    public struct Ending: Sendable, Hashable {
        public enum Outcome: Sendable, Hashable {
            case duplicate
            case stale
            case held(parked: Bool)
            case posted(documentId: String?)
            case deadLettered(DeadLetterReason)
            case retryScheduled(tier: String, nextAttempt: Int)
            /// A release whose held message is gone (settled by another process meanwhile).
            case nothingHeld
            /// An action failed: a delivery goes back to the broker, a release to the maintenance
            /// pass.
            case gaveUp
        }

        public var outcome: Outcome
        /// What to do with the delivery; a release has none.
        public var delivery: DeliverySettlement
        /// The held event whose turn came with this journey's settle.
        public var next: ReleaseInTurn?

        public init(outcome: Outcome, delivery: DeliverySettlement, next: ReleaseInTurn? = nil) {
            self.outcome = outcome
            self.delivery = delivery
            self.next = next
        }
    }

    public enum DeliverySettlement: Sendable, Hashable {
        case ack
        /// Requeue: the broker delivers it again (and counts it towards the delivery limit).
        case handBack
        /// A release: acked when it was held.
        case none
    }

    private enum Origin: Sendable {
        case delivery
        case release(ReleaseInTurn)
    }

    private enum State: Sendable, CustomStringConvertible {
        case start
        case checkingReplay
        case deciding
        case loadingHeld
        case posting(KeySnapshot)
        /// The dead letter is on its way; then settle the key (an event let through) or not.
        case deadLettering(DeadLetterReason, settle: KeyStep?)
        case retrying(tier: String, nextAttempt: Int)
        case settling(Ending.Outcome)
        case markingInRetry(Ending.Outcome)
        case finished

        var description: String {
            switch self {
            case .start: "start"
            case .checkingReplay: "checking a replay"
            case .deciding: "deciding"
            case .loadingHeld: "loading a held message"
            case .posting: "posting"
            case .deadLettering(let reason, _): "dead-lettering (\(reason))"
            case .retrying: "publishing a retry copy"
            case .settling: "settling"
            case .markingInRetry: "marking a retry"
            case .finished: "finished"
            }
        }
    }

    public let rules: Rules
    private let origin: Origin
    private var state = State.start
    /// The message worked on; a release's once its held message is loaded.
    public private(set) var envelope: Envelope?
    /// The decoded event; `nil` for an invalid message (and a release not loaded yet).
    public private(set) var event: WarehouseEvent?
    /// Why the message is invalid, when it is.
    public private(set) var invalid: EventValidationError?
    /// The message's `whsync-replay-of` named a letter the store holds for this event.
    public private(set) var isVouchedReplay = false
    private var fingerprint: EventFingerprint?

    /// The journey of a delivery: decoded here, so that the consumer knows its key at once.
    public init(delivery envelope: Envelope, rules: Rules) {
        self.rules = rules
        origin = .delivery
        self.envelope = envelope
        accept(envelope)
    }

    /// The journey of a held event whose turn came.
    public init(release: ReleaseInTurn, rules: Rules) {
        self.rules = rules
        origin = .release(release)
    }

    /// The sequencing key: the event's, the release's; `nil` for an invalid delivery.
    public var key: String? {
        switch origin {
        case .delivery: event?.sequencingKey
        case .release(let release): release.key
        }
    }

    private var attempt: Int { envelope?.attempt ?? 1 }

    private var settlement: DeliverySettlement {
        if case .delivery = origin { return .ack }
        return .none
    }

    private mutating func accept(_ envelope: Envelope) {
        do throws(EventValidationError) {
            let event = try rules.decoder.decode(envelope.body, routingKey: envelope.routingKey)
            guard event.stream == rules.stream else {
                // The routing key matched the body, but the topology sent it to another stream's queue.
                throw EventValidationError(violations: [
                    .init(field: "schema", rule: "must be \(rules.stream.schema) on the \(rules.stream) work queue (was \(event.schema))")
                ])
            }
            self.event = event
            // SHA-256 of the canonical event: computed once, for the gate and for the record.
            fingerprint = EventFingerprint(of: event)
        } catch {
            invalid = error
        }
    }

    // MARK: Inputs

    public mutating func start() -> Action {
        precondition(isIn(.start), "a journey starts once")
        switch origin {
        case .release(let release):
            state = .loadingHeld
            return .loadHeld(key: release.key, sequence: release.release.sequence)
        case .delivery:
            if let invalid { return deadLetter(.invalid, error: invalid.description, settle: nil) }
            if let claimed = envelope?.claimedReplayOf {
                state = .checkingReplay
                return .checkReplay(letterId: claimed)
            }
            return decide()
        }
    }

    /// The eventIds of the letter `whsync-replay-of` named (as recorded, and in its body as
    /// edited); empty when the store holds no such letter.
    public mutating func replayChecked(letterEventIds: [String]) -> Action {
        precondition(isIn(.checkingReplay))
        // A replay may be posted below its key's position, so a header anybody can set is not
        // enough: a forged or stale one is ignored, and the event is gated as any other.
        isVouchedReplay = event.map { letterEventIds.contains($0.eventId) } ?? false
        return decide()
    }

    public mutating func stored(_ outcome: KeyStep.Outcome) -> Action {
        switch (state, outcome) {
        case (.deciding, .decided(let action, let after)):
            return decided(action, after: after)
        case (.settling(let ending), .settled(let next)):
            return finish(ending, next: next)
        case (.markingInRetry(let ending), .marked):
            return finish(ending)
        default:
            preconditionFailure("store outcome \(outcome) does not answer \(state)")
        }
    }

    public mutating func heldLoaded(_ held: HeldMessage?) -> Action {
        precondition(isIn(.loadingHeld))
        guard case .release(let release) = origin else { preconditionFailure("only a release loads a held message") }
        guard let held else { return finish(.nothingHeld) }
        let envelope = Envelope(held: held)
        self.envelope = envelope
        accept(envelope)
        guard let invalid else {
            state = .posting(release.snapshot)
            return post()
        }
        // Held as valid, invalid now (the status mapping changed?): give it to a person and move
        // the key on; its record is written from the key as the store has it then.
        let settle = KeyStep(
            rules: rules, key: release.key, eventId: held.eventId, sequence: nil, assumed: nil,
            kind: .settle(sequence: release.release.sequence, record: .deadLetteredIfHeld))
        return deadLetter(.invalid, error: invalid.description, settle: settle)
    }

    public mutating func answered(_ answer: ERPResponseClass) -> Action {
        guard case .posting(let snapshot) = state, let event, let fingerprint else {
            preconditionFailure("an ERP answer while \(state)")
        }
        switch answer.disposition(attempt: attempt, retryPolicy: rules.retryPolicy) {
        case .recordPosted(let documentId):
            state = .settling(.posted(documentId: documentId))
            return .store(settleStep(event, record: .posted(fingerprint), documentId: documentId, snapshot: snapshot))
        case .deadLetter(let reason, let error):
            return deadLetter(
                reason, error: error, settle: settleStep(event, record: .deadLettered(fingerprint), documentId: nil, snapshot: snapshot))
        case .retry(let tier, let nextAttempt):
            state = .retrying(tier: tier.name, nextAttempt: nextAttempt)
            return .publishRetry(tier: tier, nextAttempt: nextAttempt)
        }
    }

    public mutating func published() -> Action {
        switch state {
        case .deadLettering(let reason, let settle):
            guard let settle else { return finish(.deadLettered(reason)) }
            state = .settling(.deadLettered(reason))
            return .store(settle)
        case .retrying(let tier, let nextAttempt):
            let outcome = Ending.Outcome.retryScheduled(tier: tier, nextAttempt: nextAttempt)
            guard case .release = origin, let event, let fingerprint else { return finish(outcome) }
            // A released event has no delivery: its record says its copy is in a retry queue, so
            // that the maintenance pass does not release it again meanwhile.
            state = .markingInRetry(outcome)
            return .store(KeyStep(
                rules: rules, key: event.sequencingKey, eventId: event.eventId, sequence: nil, assumed: nil,
                kind: .markInRetry(sequence: event.sequence, fingerprint: fingerprint)))
        default:
            preconditionFailure("a confirm while \(state)")
        }
    }

    /// The action asked for failed for good (the store or the broker past the runtime's patience,
    /// a stop while the ERP is unavailable): hand the delivery back; a release is left to the
    /// maintenance pass.
    public mutating func failed() -> Action {
        precondition(!isIn(.finished), "a journey fails once, before it finishes")
        state = .finished
        let delivery: DeliverySettlement = if case .delivery = origin { .handBack } else { .none }
        return .finish(Ending(outcome: .gaveUp, delivery: delivery))
    }

    // MARK: Steps

    private mutating func decide() -> Action {
        guard let event, let fingerprint, let envelope else { preconditionFailure("deciding an invalid event") }
        state = .deciding
        let incoming = IncomingEvent(
            eventId: event.eventId, sequence: event.sequence, fingerprint: fingerprint, isReplay: isVouchedReplay)
        return .store(KeyStep(
            rules: rules, key: event.sequencingKey, eventId: event.eventId, sequence: event.sequence, assumed: nil,
            kind: .decide(incoming, envelope)))
    }

    private mutating func decided(_ action: GateAction, after: KeySnapshot) -> Action {
        switch action {
        case .duplicate: return finish(.duplicate)
        case .stale: return finish(.stale)
        case .hold: return finish(.held(parked: false))
        case .holdParked: return finish(.held(parked: true))
        case .conflict(let detail):
            return deadLetter(.conflict, error: detail.description, settle: nil)
        case .skipped:
            let sequence = event.map { String($0.sequence) } ?? "?"
            return deadLetter(
                .gapTimeout,
                error: "sequence \(sequence) arrived after `whsync gaps skip` gave up on it; replay it to post it out of order",
                settle: nil)
        case .apply:
            state = .posting(after)
            return post()
        }
    }

    private func post() -> Action {
        guard let event else { preconditionFailure("posting an invalid event") }
        return .post(PostingDocument(event: event))
    }

    private mutating func deadLetter(_ reason: DeadLetterReason, error: String, settle: KeyStep?) -> Action {
        state = .deadLettering(reason, settle: settle)
        return .publishDeadLetter(reason, error: error, attempt: attempt)
    }

    private mutating func finish(_ outcome: Ending.Outcome, next: ReleaseInTurn? = nil) -> Action {
        state = .finished
        return .finish(Ending(outcome: outcome, delivery: settlement, next: next))
    }

    /// The settle of an event let through (posted, or dead-lettered after its post), decided on
    /// the snapshot the journey holds: the store reads the key only when another process moved
    /// it meanwhile, or when a long release chain has gone past the held events that snapshot read.
    private func settleStep(_ event: WarehouseEvent, record: DedupRecord, documentId: String?, snapshot: KeySnapshot) -> KeyStep {
        let settled = snapshot.state.flatMap { rules.gate.settle($0, sequence: event.sequence).updatedState }
        let assumedHolds = settled.map { $0.held.isKnown($0.nextExpected) } ?? true
        return KeyStep(
            rules: rules, key: event.sequencingKey, eventId: event.eventId, sequence: nil, assumed: assumedHolds ? snapshot : nil,
            kind: .settle(
                sequence: event.sequence,
                record: .write(DedupWrite(eventId: event.eventId, record: record, sequence: event.sequence, documentId: documentId))))
    }

    private func isIn(_ expected: State) -> Bool {
        switch (state, expected) {
        case (.start, .start), (.checkingReplay, .checkingReplay), (.loadingHeld, .loadingHeld), (.finished, .finished): true
        default: false
        }
    }
}

/// One read-modify-write of a key that a journey asks the store for: the store reads the key (the
/// event's record, the held event at ``sequence``), ``run(on:now:)`` turns the snapshot into the
/// change to commit and the outcome to answer the journey with. Pure: the store may run it again
/// on a fresh read when the key's version moved.
public struct KeyStep: Sendable {
    public enum Outcome: Sendable, Hashable {
        /// The gate's action, and the key as it is after the commit.
        case decided(GateAction, KeySnapshot)
        /// The key moved on; the held event whose turn came, if any.
        case settled(EventJourney.ReleaseInTurn?)
        /// The record says the event's retry copy is on its way.
        case marked
        /// A key's queued events decided in one step (``inOrder(_:)``): each decided event's
        /// gate action and the key after the commit, in delivery order; the events after the
        /// first one let through (or sent to a person) are not decided yet.
        case decidedInOrder([Decided])
    }

    /// One event's part of ``Outcome/decidedInOrder(_:)``.
    public struct Decided: Sendable, Hashable {
        public var action: GateAction
        public var after: KeySnapshot
    }

    enum Kind: Sendable {
        case decide(IncomingEvent, EventJourney.Envelope)
        case decideInOrder([(IncomingEvent, EventJourney.Envelope)])
        case settle(sequence: Int64, record: SettleRecord)
        case markInRetry(sequence: Int64, fingerprint: EventFingerprint)
    }

    enum SettleRecord: Sendable {
        case write(DedupWrite)
        /// A released event dead-lettered before it was posted: its `held` record becomes
        /// `deadLettered`; any other record stays.
        case deadLetteredIfHeld
    }

    let rules: EventJourney.Rules
    public let key: String
    public let eventId: String
    /// The sequence whose held row the read includes (a decision on an arriving event).
    public let sequence: Int64?
    /// The events after the first that the read includes (their records and held rows): a key's
    /// queued events decided in one step (``inOrder(_:)``).
    public var laterEvents: [(eventId: String, sequence: Int64)] {
        guard case .decideInOrder(let events) = kind else { return [] }
        return events.dropFirst().map { ($0.0.eventId, $0.0.sequence) }
    }
    /// A snapshot the journey already holds: the store decides on it unless its version is stale.
    public let assumed: KeySnapshot?
    let kind: Kind

    public var stream: EventStream { rules.stream }

    /// The gate's decision on an arriving event (else a settle or a retry mark): for the trace's span.
    public var isGateDecision: Bool {
        switch kind {
        case .decide, .decideInOrder: true
        case .settle, .markInRetry: false
        }
    }

    /// The gate's decisions on a key's queued events (``isGateDecision`` steps of one key, in
    /// delivery order) as one store step: one read of the key, one write. The events are decided
    /// one after the other on the key as the previous one left it, as if each had its own step,
    /// up to and including the first that is let through to the ERP or sent to a person (a
    /// conflict, a skipped sequence): the key waits for that one before its next event is
    /// decided, so at most one event per key is in flight. A burst of held, duplicate or stale
    /// events costs one transaction instead of one each (the head-of-line finding in docs/proof.md).
    public static func inOrder(_ steps: [KeyStep]) -> KeyStep {
        precondition(!steps.isEmpty, "nothing to decide")
        guard steps.count > 1 else { return steps[0] }
        let events = steps.map { step -> (IncomingEvent, EventJourney.Envelope) in
            guard case .decide(let incoming, let envelope) = step.kind, step.key == steps[0].key else {
                preconditionFailure("only gate decisions of one key are decided in order")
            }
            return (incoming, envelope)
        }
        let first = steps[0]
        return KeyStep(
            rules: first.rules, key: first.key, eventId: first.eventId, sequence: first.sequence, assumed: nil,
            kind: .decideInOrder(events))
    }

    public func run(on snapshot: KeySnapshot, now: Date) -> (change: KeyChange?, outcome: Outcome) {
        switch kind {
        case .decide(let incoming, let envelope):
            return decide(incoming, envelope, on: snapshot, now: now)
        case .decideInOrder(let events):
            return decideInOrder(events, on: snapshot, now: now)
        case .settle(let sequence, let record):
            return settle(sequence, record: record, on: snapshot, now: now)
        case .markInRetry(let sequence, let fingerprint):
            let write = DedupWrite(eventId: eventId, record: .posting(fingerprint), sequence: sequence)
            return (KeyChange(stream: stream, key: key, expectedVersion: snapshot.version, records: [write], now: now), .marked)
        }
    }

    private func decide(
        _ incoming: IncomingEvent, _ envelope: EventJourney.Envelope, on snapshot: KeySnapshot, now: Date
    ) -> (change: KeyChange?, outcome: Outcome) {
        let decision = rules.gate.decide(snapshot.state, event: incoming, record: snapshot.record, now: now)
        guard decision.updatedState != nil || decision.updatedRecord != nil else {
            return (nil, .decided(decision.action, snapshot))
        }
        var change = KeyChange(
            stream: stream, key: key, expectedVersion: snapshot.version, newState: decision.updatedState,
            records: decision.updatedRecord.map { [DedupWrite(eventId: incoming.eventId, record: $0, sequence: incoming.sequence)] } ?? [],
            now: now)
        if decision.action == .hold || decision.action == .holdParked, let held = decision.updatedState?.held[incoming.sequence] {
            change.insertHeld = [HeldMessage(
                sequence: incoming.sequence, eventId: incoming.eventId, heldAt: held.heldAt, routingKey: envelope.routingKey,
                headers: envelope.headers, body: envelope.body)]
        }
        let after = KeySnapshot(
            state: decision.updatedState ?? snapshot.state,
            version: snapshot.version + (decision.updatedState == nil ? 0 : 1),
            record: decision.updatedRecord ?? snapshot.record)
        return (change, .decided(decision.action, after))
    }

    private func decideInOrder(
        _ events: [(IncomingEvent, EventJourney.Envelope)], on snapshot: KeySnapshot, now: Date
    ) -> (change: KeyChange?, outcome: Outcome) {
        var current = snapshot
        var written: [String: DedupRecord] = [:]
        var merged: KeyChange?
        var decided: [Decided] = []
        deciding: for (index, (incoming, envelope)) in events.enumerated() {
            current.record =
                written[incoming.eventId]
                ?? (index == 0 ? snapshot.record : snapshot.laterRecords[incoming.eventId] ?? .notSeen)
            let (change, outcome) = decide(incoming, envelope, on: current, now: now)
            guard case .decided(let action, let after) = outcome else { preconditionFailure("a gate decision decides") }
            decided.append(Decided(action: action, after: after))
            if let change {
                merged = merged.map { $0.followed(by: change) } ?? change
                for write in change.records { written[write.eventId] = write.record }
            }
            current = after
            switch action {
            case .hold, .holdParked, .duplicate, .stale: continue deciding
            case .apply, .conflict, .skipped: break deciding
            }
        }
        // One write moves the key's version by one however many events it decided.
        let version = snapshot.version + (merged?.newState == nil ? 0 : 1)
        for index in decided.indices { decided[index].after.version = version }
        return (merged, .decidedInOrder(decided))
    }

    private func settle(
        _ sequence: Int64, record: SettleRecord, on current: KeySnapshot, now: Date
    ) -> (change: KeyChange?, outcome: Outcome) {
        let settlement = current.state.map { rules.gate.settle($0, sequence: sequence) }
        let newState = settlement?.updatedState
        let write: DedupWrite? =
            switch record {
            case .write(let write): write
            case .deadLetteredIfHeld:
                if case .held(let fingerprint) = current.record {
                    DedupWrite(eventId: eventId, record: .deadLettered(fingerprint), sequence: sequence)
                } else {
                    nil
                }
            }
        // An event let through on arrival was never held: no held message to delete (a
        // statement of every round in PostgreSQL). One the view cannot tell about is deleted.
        let wasHeld = current.state.map { !$0.held.isKnown(sequence) || $0.held[sequence] != nil } ?? false
        let change = KeyChange(
            stream: stream, key: key, expectedVersion: current.version, newState: newState, records: write.map { [$0] } ?? [],
            deleteHeldSequence: newState != nil && wasHeld ? sequence : nil, now: now)
        guard let newState, let release = settlement?.release else { return (change, .settled(nil)) }
        let next = EventJourney.ReleaseInTurn(
            release: release, key: key, snapshot: KeySnapshot(state: newState, version: current.version + 1, record: .notSeen))
        return (change, .settled(next))
    }
}
