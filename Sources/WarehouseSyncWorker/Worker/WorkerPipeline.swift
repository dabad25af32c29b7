import AMQPClient
import Foundation
import Logging
import Synchronization
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncLogging
import WarehouseSyncStore
import WarehouseSyncTracing

/// The pipeline of one message (DESIGN §5, docs/worker.md): decode → validate → dedup →
/// sequence gate → map → post → record → ack, and the releases of held events that follow.
///
/// The decisions come from the core (``SequenceGate``, ``ERPResponseClass``, ``RetryPolicy``,
/// ``CircuitBreaker``); this type carries them out against the store, the ERP and the broker, in
/// the order docs/pipeline-core.md fixes: every write durable before its ack, every dead letter
/// and retry copy confirmed by the broker before its ack.
final class WorkerPipeline: Sendable {
    struct Settings: Sendable {
        var stream: EventStream
        /// `whsync-worker` on dead letters: executable and host.
        var workerName: String
        var topology: Topology
        var sequencing: SequencingPolicy
        var retryPolicy: RetryPolicy
        /// How long a failed publish (dead letter, retry copy) or a store error that is not an
        /// outage is retried in place before the message is handed back to the broker. A store
        /// outage is waited out for as long as it lasts (``StoreOutage``).
        var patience: Duration = .seconds(30)
        /// `ERP_BATCH_MAX`: 0 posts on the single routes; N gathers postings into batch requests
        /// of at most N items (``PostingBatcher``).
        var erpBatchMax: Int = 0
        /// `ROUND_MAX`: the most decisions one store round commits (``DecisionRounds``).
        var roundMax: Int = WorkerService.defaultRoundMax
    }

    let settings: Settings
    private let decoder: EventDecoder
    private let gate: SequenceGate
    private let store: any WorkerStore
    private let rounds: DecisionRounds
    private let erp: any ERPClient
    private let batcher: PostingBatcher?
    private let publisher: AMQPConnection
    let circuit: CircuitGate
    let storeOutage: StoreOutage
    private let metrics: WorkerMetrics
    private let logger: Logger
    let chain = KeyedTaskChain()
    private let clock = ContinuousClock()
    private let stopping = Atomic<Bool>(false)
    /// Keys whose release could not be finished (store or broker trouble): the maintenance pass
    /// tries them again.
    private let stalledReleases = Mutex<Set<String>>([])
    /// How long each key's gap has waited, on the monotonic clock (wall-clock jumps park nothing).
    private let gapTimer = Mutex(GapTimer<ContinuousClock.Instant>())

    init(
        settings: Settings, decoder: EventDecoder, store: any WorkerStore, erp: any ERPClient, publisher: AMQPConnection,
        circuit: CircuitGate, metrics: WorkerMetrics, logger: Logger
    ) {
        self.settings = settings
        self.decoder = decoder
        gate = SequenceGate(policy: settings.sequencing)
        self.store = store
        rounds = DecisionRounds(store: store, maxItems: settings.roundMax)
        self.erp = erp
        batcher = settings.erpBatchMax > 0 ? PostingBatcher(erp: erp, maxItems: settings.erpBatchMax) : nil
        self.publisher = publisher
        self.circuit = circuit
        self.metrics = metrics
        self.logger = logger
        storeOutage = StoreOutage(logger: logger) { metrics.storeUnavailable.record($0 ? 1 : 0) }
    }

    private var stream: EventStream { settings.stream }

    /// From now on, messages that would wait for the ERP are handed back instead.
    func beginStopping() {
        stopping.store(true, ordering: .releasing)
    }

    private var isStopping: Bool { stopping.load(ordering: .acquiring) }

    // MARK: Deliveries

    /// Takes one delivery: decodes it now (in the consume loop, so that the key's order is the
    /// delivery order) and queues its processing behind the earlier work of its key.
    func submit(_ delivery: AMQPDelivery) {
        metrics.consumed.increment()
        let message = PipelineMessage(delivery: delivery, topology: settings.topology)
        let trace = EventTrace(message, stream: stream)
        let event: WarehouseEvent
        do {
            event = try trace.decode { () throws(EventValidationError) in try decode(message) }
        } catch {
            chain.submit(key: "\u{0}invalid") { [self] in
                await trace.run { await rejectInvalid(message, error: error) }
            }
            return
        }
        trace.annotate(event)
        let inHand = metrics.inHand(event, publishedAt: message.publishedAt)
        chain.submit(key: event.sequencingKey) { [self] in
            await trace.run { await process(event, message) }
            inHand.end()
        }
    }

    private func decode(_ message: PipelineMessage) throws(EventValidationError) -> WarehouseEvent {
        let event = try decoder.decode(message.body, routingKey: message.routingKey)
        guard event.stream == stream else {
            // The routing key matched the body, but the topology sent it to the wrong stream's queue.
            throw EventValidationError(violations: [
                .init(field: "schema", rule: "must be \(stream.schema) on the \(stream) work queue (was \(event.schema))")
            ])
        }
        return event
    }

    private func rejectInvalid(_ message: PipelineMessage, error: EventValidationError) async {
        var logger = self.logger.traced()
        if let id = message.properties.messageId { logger[metadataKey: LogMetadataKey.eventId.rawValue] = "\(id.prefix(128))" }
        do {
            try await deadLetter(message, reason: .invalid, error: error.description, attempt: message.attempt, logger: logger)
            message.ack()
        } catch {
            handBack(message, after: error, logger: logger)
        }
    }

    private func process(_ event: WarehouseEvent, _ message: PipelineMessage) async {
        let logger = eventLogger(event)
        do {
            // SHA-256 of the canonical event: computed once, for the gate and for the record.
            let fingerprint = EventFingerprint(of: event)
            let isReplay = try await isVouchedReplay(event, message, logger: logger)
            let (action, snapshot) = try await EventStep.gate.run {
                try await decideAndRecord(event, fingerprint: fingerprint, isReplay: isReplay, message)
            }
            switch action {
            case .duplicate:
                metrics.recordDuplicate(event)
                logger.debug("duplicate dropped")
                message.ack()
            case .stale:
                metrics.recordStale(event)
                logger.info("stale event dropped: its key is past this sequence")
                message.ack()
            case .conflict(let detail):
                try await deadLetter(message, reason: .conflict, error: detail.description, attempt: message.attempt, logger: logger)
                message.ack()
            case .skipped:
                let error = "sequence \(event.sequence) arrived after `whsync gaps skip` gave up on it; replay it to post it out of order"
                try await deadLetter(message, reason: .gapTimeout, error: error, attempt: message.attempt, logger: logger)
                message.ack()
            case .hold, .holdParked:
                metrics.recordHeld(event)
                logger.debug(action == .hold ? "held until its predecessors arrive" : "held: its key is parked")
                message.ack()
            case .apply:
                let release = try await post(event, fingerprint: fingerprint, message, snapshot: snapshot, logger: logger)
                await runReleases(from: release, key: event.sequencingKey)
            }
        } catch is HandedBack {
            // Already given back.
        } catch {
            handBack(message, after: error, logger: logger)
        }
    }

    /// Whether `message` is a replay of a dead letter (DESIGN §6): it carries `whsync-replay-of`
    /// and the store holds that letter for this event's `eventId` (as recorded, or in its body as
    /// edited). A replay may be posted below its key's position, so a header anybody can set
    /// must not be enough: a forged or stale one is ignored, and the event is gated as any other.
    private func isVouchedReplay(_ event: WarehouseEvent, _ message: PipelineMessage, logger: Logger) async throws -> Bool {
        guard let claimed = message.claimedReplayOf else { return false }
        var letter: DeadLetterRecord?
        if let id = Int64(claimed) {
            letter = try await patiently { [store] in try await store.deadLetter(id: id) }
        }
        let bodyEventId = letter.flatMap { (try? JSONValue(parsing: $0.body))?["eventId"]?.stringValue }
        guard let letter, letter.eventId == event.eventId || bodyEventId == event.eventId else {
            logger.warning(
                "whsync-replay-of names no stored dead letter of this eventId: the header is ignored",
                metadata: ["replayOf": "\(claimed.prefix(32))"])
            return false
        }
        return true
    }

    /// Reads the key, lets the gate decide, and writes what the decision says, atomically, in
    /// the next store round (``DecisionRounds``; the store decides again when another process
    /// moved the key). Returns the action and the key as it is after the commit.
    private func decideAndRecord(
        _ event: WarehouseEvent, fingerprint: EventFingerprint, isReplay: Bool, _ message: PipelineMessage
    ) async throws -> (GateAction, KeySnapshot) {
        let key = event.sequencingKey
        let incoming = IncomingEvent(
            eventId: event.eventId, sequence: event.sequence, fingerprint: fingerprint, isReplay: isReplay)
        let (stream, gate) = (stream, gate)
        let (routingKey, headers, body) = (message.routingKey, message.headers, message.body)
        return try await patiently { [rounds] in
            try await rounds.commitDecision(stream: stream, key: key, eventId: event.eventId, sequence: event.sequence) { snapshot in
                let now = Date()
                let decision = gate.decide(snapshot.state, event: incoming, record: snapshot.record, now: now)
                guard decision.updatedState != nil || decision.updatedRecord != nil else {
                    return (nil, (decision.action, snapshot))
                }
                var change = KeyChange(
                    stream: stream, key: key, expectedVersion: snapshot.version, newState: decision.updatedState,
                    records: decision.updatedRecord.map { [DedupWrite(eventId: event.eventId, record: $0, sequence: event.sequence)] } ?? [],
                    now: now)
                if let held = decision.updatedState?.held[event.sequence], decision.action == .hold || decision.action == .holdParked {
                    change.insertHeld = HeldMessage(
                        sequence: event.sequence, eventId: event.eventId, heldAt: held.heldAt, routingKey: routingKey,
                        headers: headers, body: body)
                }
                let after = KeySnapshot(
                    state: decision.updatedState ?? snapshot.state,
                    version: snapshot.version + (decision.updatedState == nil ? 0 : 1), record: decision.updatedRecord ?? snapshot.record)
                return (change, (decision.action, after))
            }
        }
    }

    // MARK: Posting

    /// Posts an event the gate let through and carries out the ERP's answer. Returns the held
    /// event whose turn it is now, if any.
    private func post(
        _ event: WarehouseEvent, fingerprint: EventFingerprint, _ message: PipelineMessage, snapshot: KeySnapshot, logger: Logger
    ) async throws -> (Release, KeySnapshot)? {
        let document = PostingDocument(event: event)
        let attempt = message.attempt
        var answer: ERPResponseClass
        while true {
            await circuit.waitUntilPostingAllowed()
            if isStopping, await circuit.isOpen {
                throw handBack(message, reason: "stopping while the ERP is unavailable", logger: logger)
            }
            let started = clock.now
            answer = await EventStep.post.run { [batcher, erp] in
                if let batcher { await batcher.post(document, key: event.sequencingKey) } else { await erp.post(document) }
            }
            metrics.recordERPLatency(clock.now - started)
            guard case .transient(let reason, _) = answer else {
                await circuit.recordAnswer()
                break
            }
            // While the circuit is open the failure says nothing about this event: keep it in
            // hand and post it again at the same attempt once the ERP answers.
            guard await circuit.recordTransientFailure(reason, key: event.sequencingKey) else { break }
            logger.debug("ERP unavailable; the event waits for the circuit to close", metadata: ["erp.answer": "\(answer)"])
        }

        switch answer.disposition(attempt: attempt, retryPolicy: settings.retryPolicy) {
        case .recordPosted(let documentId):
            let next = try await settle(
                event, record: .posted(fingerprint), documentId: documentId, snapshot: snapshot)
            message.ack()
            metrics.recordPosted(event, publishedAt: message.publishedAt)
            logger.debug("posted", metadata: ["erp.documentId": "\(documentId ?? "-")"])
            return next
        case .deadLetter(let reason, let error):
            try await deadLetter(message, reason: reason, error: error, attempt: attempt, logger: logger)
            let next = try await settle(event, record: .deadLettered(fingerprint), documentId: nil, snapshot: snapshot)
            message.ack()
            return next
        case .retry(let tier, let nextAttempt):
            let copy = message.retryCopy(stream: stream, tier: tier, nextAttempt: nextAttempt, topology: settings.topology)
            try await publishConfirmed(copy)
            if message.delivery == nil {
                // A released event: mark it in flight, so the maintenance pass does not release
                // it again while its copy waits in the retry queue.
                try await markInRetry(event, fingerprint: fingerprint)
            }
            message.ack()
            metrics.recordRetry(event)
            logger.info(
                "ERP failed transiently; retry scheduled",
                metadata: ["erp.answer": "\(answer)", "retry.tier": "\(tier.name)", "retry.attempt": "\(nextAttempt)"])
            return nil
        }
    }

    /// Records the outcome of the event in turn and moves its key on (``SequenceGate/settle``),
    /// in one commit. Returns the next held event in turn.
    private func settle(
        _ event: WarehouseEvent, record: DedupRecord, documentId: String?, snapshot: KeySnapshot
    ) async throws -> (Release, KeySnapshot)? {
        try await settle(
            key: event.sequencingKey, eventId: event.eventId, sequence: event.sequence, snapshot: snapshot
        ) { _ in DedupWrite(eventId: event.eventId, record: record, sequence: event.sequence, documentId: documentId) }
    }

    /// ``settle(_:record:documentId:snapshot:)`` for any event: `record` gives the dedup record
    /// to write from the key's current snapshot (`nil`: none).
    private func settle(
        key: String, eventId: String, sequence: Int64, snapshot: KeySnapshot,
        record: @escaping @Sendable (KeySnapshot) -> DedupWrite?
    ) async throws -> (Release, KeySnapshot)? {
        let (stream, gate) = (stream, gate)
        let decide = { @Sendable (current: KeySnapshot) -> (change: KeyChange?, outcome: (Release, KeySnapshot)?) in
            let settlement = current.state.map { gate.settle($0, sequence: sequence) }
            let newState = settlement?.updatedState
            let change = KeyChange(
                stream: stream, key: key, expectedVersion: current.version, newState: newState,
                records: record(current).map { [$0] } ?? [], deleteHeldSequence: newState == nil ? nil : sequence, now: Date())
            guard let newState, let release = settlement?.release else { return (change, nil) }
            return (change, (release, KeySnapshot(state: newState, version: current.version + 1, record: .notSeen)))
        }
        // The snapshot in hand is usually still the key's: the store decides on it, and reads
        // the key only when another process moved it meanwhile, or when a long release chain has
        // gone past the held events that snapshot read.
        let settledState = decide(snapshot).change?.newState
        let assumed = (settledState.map { $0.held.isKnown($0.nextExpected) } ?? true) ? snapshot : nil
        return try await EventStep.settle.run {
            try await patiently { [rounds] in
                try await rounds.commitDecision(stream: stream, key: key, eventId: eventId, assumed: assumed, decide)
            }
        }
    }

    private func markInRetry(_ event: WarehouseEvent, fingerprint: EventFingerprint) async throws {
        let (stream, key) = (stream, event.sequencingKey)
        let write = DedupWrite(eventId: event.eventId, record: .posting(fingerprint), sequence: event.sequence)
        try await patiently { [rounds] in
            try await rounds.commitDecision(stream: stream, key: key, eventId: event.eventId) { snapshot in
                (KeyChange(stream: stream, key: key, expectedVersion: snapshot.version, records: [write], now: Date()), ())
            }
        }
    }

    // MARK: Releases

    /// Processes released held events one after the other while each settles and hands out the
    /// next. Runs inside the key's chain.
    private func runReleases(from first: (Release, KeySnapshot)?, key: String) async {
        var next = first
        while let (release, snapshot) = next {
            do {
                next = try await processRelease(release, key: key, snapshot: snapshot)
            } catch {
                logger.warning(
                    "could not finish a release; the maintenance pass tries again",
                    metadata: [LogMetadataKey.key.rawValue: "\(key)", LogMetadataKey.sequence.rawValue: "\(release.sequence)", "error": "\(error)"])
                _ = stalledReleases.withLock { $0.insert(key) }
                return
            }
        }
    }

    private func processRelease(_ release: Release, key: String, snapshot: KeySnapshot) async throws -> (Release, KeySnapshot)? {
        guard let held = try await patiently({ [store, stream] in
            try await store.heldMessage(stream: stream, key: key, sequence: release.sequence)
        }) else {
            logger.warning("released event has no held message; nothing to post", metadata: [LogMetadataKey.key.rawValue: "\(key)", LogMetadataKey.sequence.rawValue: "\(release.sequence)"])
            return nil
        }
        // The held message's own trace goes on (its headers were stored), not the releaser's.
        let trace = EventTrace(headers: held.headers, stream: stream, released: true)
        return try await trace.run { try await processHeld(held, release: release, key: key, snapshot: snapshot) }
    }

    private func processHeld(_ held: HeldMessage, release: Release, key: String, snapshot: KeySnapshot) async throws -> (Release, KeySnapshot)? {
        do {
            let event = try decoder.decode(held.body, routingKey: held.routingKey)
            let message = PipelineMessage(held: held, event: event, topology: settings.topology)
            let logger = eventLogger(event)
            logger.debug("released: its predecessors are settled")
            return try await post(event, fingerprint: EventFingerprint(of: event), message, snapshot: snapshot, logger: logger)
        } catch let error as EventValidationError {
            // Held as valid, invalid now (the status mapping changed?): give it to a person and move on.
            let message = PipelineMessage(held: held, event: nil, topology: settings.topology)
            try await deadLetter(message, reason: .invalid, error: error.description, attempt: message.attempt, logger: logger)
            let current = try await patiently { [store, stream] in
                try await store.snapshot(stream: stream, key: key, eventId: held.eventId)
            }
            return try await settle(key: key, eventId: held.eventId, sequence: release.sequence, snapshot: current) { current in
                guard case .held(let fingerprint) = current.record else { return nil }
                return DedupWrite(eventId: held.eventId, record: .deadLettered(fingerprint), sequence: release.sequence)
            }
        }
    }

    // MARK: Maintenance

    /// One pass over the keys with held events: parks those whose gap outlived `GAP_TIMEOUT`,
    /// and releases held events in turn that nobody works on (after a crash, after an operator's
    /// `whsync gaps skip`, after a release that failed). `startup` also releases events whose
    /// record says a retry copy is in flight: after a crash that copy may be all that is left.
    func maintain(startup: Bool = false) async {
        let keys: [String]
        do {
            keys = try await store.keysWithHeldEvents(stream: stream)
        } catch {
            logger.warning("maintenance pass could not list held keys", metadata: ["error": "\(error)"])
            return
        }
        gapTimer.withLock { $0.retain(only: Set(keys)) }
        let stalled = stalledReleases.withLock { stalled in
            defer { stalled.removeAll() }
            return stalled
        }
        var tasks: [Task<Void, Never>] = []
        for key in Set(keys).union(stalled) {
            tasks.append(chain.submit(key: key) { [self] in await maintain(key: key, startup: startup) })
        }
        for task in tasks { await task.value }
    }

    private func maintain(key: String, startup: Bool) async {
        do {
            var snapshot = try await store.snapshot(stream: stream, key: key, eventId: "")
            guard let state = snapshot.state else { return }
            if let release = gate.pendingRelease(state) {
                snapshot = try await store.snapshot(stream: stream, key: key, eventId: release.eventId)
                if case .posting = snapshot.record, !startup { return }  // its retry copy is on its way
                await runReleases(from: (release, snapshot), key: key)
                return
            }
            guard let oldest = state.oldestHeldAt else { return }
            let waited = gapTimer.withLock { $0.waited(key: key, oldestHeldAt: oldest, wallNow: Date(), now: clock.now) }
            guard let parked = gate.checkGap(state, waited: waited, now: Date()) else { return }
            try await store.commit(KeyChange(stream: stream, key: key, expectedVersion: snapshot.version, newState: parked, now: Date()))
            metrics.recordParked(key: key)
            let missing = state.missingSequences.map { "\($0.lowerBound)…\($0.upperBound)" } ?? "?"
            logger.warning(
                "key parked: a sequence gap outlived GAP_TIMEOUT; see `whsync gaps list`",
                metadata: [LogMetadataKey.key.rawValue: "\(key)", "gap.missing": "\(missing)", "gap.lowestHeld": "\(state.lowestHeld.map(String.init) ?? "?")"])
        } catch let error as StoreError where error.code == .versionConflict {
            // Another process moved the key meanwhile; the next pass looks again.
        } catch {
            logger.warning("maintenance of a key failed", metadata: [LogMetadataKey.key.rawValue: "\(key)", "error": "\(error)"])
        }
    }

    // MARK: Broker side effects

    /// Publishes the dead letter and waits for the broker's confirm.
    private func deadLetter(
        _ message: PipelineMessage, reason: DeadLetterReason, error: String, attempt: Int, logger: Logger
    ) async throws {
        let headers = DeadLetterHeaders(
            reason: reason, error: error, worker: settings.workerName, failedAt: Date(), attempt: attempt)
        let letter = message.deadLetter(headers, topology: settings.topology)
        try await publishConfirmed(letter)
        metrics.deadLettered(reason: reason.rawValue, routingKey: message.routingKey)
        logger.warning("dead-lettered", metadata: [LogMetadataKey.reason.rawValue: "\(reason)", "deadLetter.error": "\(error.prefix(256))"])
    }

    /// How long one publish waits for the broker's confirm. A confirm takes milliseconds; one
    /// that takes seconds means the broker blocked the connection (a memory or disk alarm) or
    /// lost it, and a stop must not wait for an alarm to clear (proof suite, "alarm").
    static let confirmTimeout: Duration = .seconds(5)

    /// Publishes `message` (a dead letter, a retry copy) and waits for the broker's confirm, each
    /// attempt for at most ``confirmTimeout``, retried for up to ``Settings/patience`` (none once
    /// stopping: the caller hands the delivery back). A copy confirmed after its attempt timed out
    /// may still arrive: the gate drops a second retry copy, the replay worker stores a second
    /// letter of the same failure once.
    private func publishConfirmed(_ message: OutboundMessage) async throws {
        try await patiently(publishing: true) { [publisher, clock] in
            try await publisher.publish([message], deadline: clock.now.advanced(by: Self.confirmTimeout))[0].get()
        }
    }

    /// Thrown after a message was handed back, so that nothing else settles it.
    private struct HandedBack: Error {}

    private func handBack(_ message: PipelineMessage, reason: String, logger: Logger) -> HandedBack {
        logger.info("handed back to the broker", metadata: ["reason": "\(reason)"])
        message.handBack()
        return HandedBack()
    }

    private func handBack(_ message: PipelineMessage, after error: any Error, logger: Logger) {
        logger.error("could not process; handed back to the broker for another try", metadata: ["error": "\(error)"])
        message.handBack()
    }

    /// Runs `operation`, waiting out a store outage for as long as it lasts (``StoreOutage``),
    /// and retrying other store unavailability and broker failures with backoff for up to
    /// ``Settings/patience`` from the first of them: an outage delays messages instead of cycling
    /// them through the broker (each hand-back counts towards the queue's delivery limit).
    /// Version conflicts and caller errors are not retried here. A publish (`publishing`) does not
    /// touch the store, so it does not go through ``StoreOutage``.
    private func patiently<T: Sendable>(
        publishing: Bool = false, _ operation: @Sendable () async throws -> T
    ) async throws -> T {
        // Counted from the first failure retried here, so that time spent waiting out an outage
        // does not use up the patience of an error that follows it.
        var deadline: ContinuousClock.Instant?
        func mayRetry() -> Bool {
            let giveUpAt = deadline ?? clock.now.advanced(by: settings.patience)
            deadline = giveUpAt
            return clock.now < giveUpAt && !isStopping
        }
        var delay = Duration.milliseconds(50)
        while true {
            do {
                if publishing { return try await operation() }
                return try await storeOutage.waitOut(isStopping: { isStopping }, operation)
            } catch let error as StoreError where error.code == .unavailable {
                // Not an outage (waitOut waits those out), or stopping: a bounded retry, then the
                // broker's delivery limit makes an error that persists visible.
                guard mayRetry() else { throw error }
                logger.warning("store failed; retrying", metadata: ["error": "\(error)"])
            } catch let error as AMQPError {
                guard mayRetry() else { throw error }
                logger.warning("publish failed; retrying", metadata: ["error": "\(error)"])
            }
            try await clock.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }

    private func eventLogger(_ event: WarehouseEvent) -> Logger {
        var logger = self.logger
        logger[metadataKey: LogMetadataKey.eventId.rawValue] = "\(event.eventId)"
        logger[metadataKey: LogMetadataKey.key.rawValue] = "\(event.sequencingKey)"
        logger[metadataKey: LogMetadataKey.sequence.rawValue] = "\(event.sequence)"
        if let correlationId = event.header.correlationId {
            logger[metadataKey: LogMetadataKey.correlationId.rawValue] = "\(correlationId)"
        }
        return logger.traced()
    }
}
