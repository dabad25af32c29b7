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
/// Every decision comes from the core: a message's whole way is an ``EventJourney`` (with
/// ``SequenceGate``, ``ERPResponseClass``, ``RetryPolicy``), the circuit a ``CircuitBreaker``.
/// This type carries the journeys' actions out against the store (in rounds), the ERP and the
/// broker, and has no rule of its own: every write durable before its ack, every dead letter and
/// retry copy confirmed by the broker before its ack, as docs/pipeline-core.md fixes.
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
    /// What every event's journey goes by (``EventJourney``).
    private let rules: EventJourney.Rules
    private var gate: SequenceGate { rules.gate }
    private let store: any WorkerStore
    private let rounds: DecisionRounds
    private let erp: any ERPClient
    private let batcher: PostingBatcher?
    private let publisher: any ConfirmingPublisher
    let circuit: CircuitGate
    let storeOutage: StoreOutage
    private let metrics: WorkerMetrics
    private let logger: Logger
    /// Each key's work in order, one turn at a time (``KeyedQueues``).
    private let queues = KeyedQueues<KeyWork>()
    private let clock = ContinuousClock()
    private let stopping = Atomic<Bool>(false)
    /// Keys whose release could not be finished (store or broker trouble): the maintenance pass
    /// tries them again.
    private let stalledReleases = Mutex<Set<String>>([])
    /// How long each key's gap has waited, on the monotonic clock (wall-clock jumps park nothing).
    private let gapTimer = Mutex(GapTimer<ContinuousClock.Instant>())

    init(
        settings: Settings, decoder: EventDecoder, store: any WorkerStore, erp: any ERPClient, publisher: any ConfirmingPublisher,
        circuit: CircuitGate, metrics: WorkerMetrics, logger: Logger
    ) {
        self.settings = settings
        rules = EventJourney.Rules(
            stream: settings.stream, decoder: decoder, gate: SequenceGate(policy: settings.sequencing), retryPolicy: settings.retryPolicy)
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

    /// One piece of a key's work (``KeyedQueues``).
    private enum KeyWork: Sendable {
        case delivery(QueuedDelivery)
        /// Other work on the key (the maintenance pass), in its turn.
        case run(@Sendable () async -> Void)
    }

    /// A delivery waiting for its key's turn, with its journey's first action. A class: a key's
    /// queue moves its work between arrays at every turn, and copying the journey, the message and
    /// the trace each time showed in the profile (4% of the worker's CPU on the batch route).
    private final class QueuedDelivery: Sendable {
        let journey: EventJourney
        let first: EventJourney.Action
        let message: PipelineMessage
        let trace: EventTrace
        let inHand: InHandToken?

        init(journey: EventJourney, first: EventJourney.Action, message: PipelineMessage, trace: EventTrace, inHand: InHandToken?) {
            self.journey = journey
            self.first = first
            self.message = message
            self.trace = trace
            self.inHand = inHand
        }

        /// The gate's decision it starts with, when it does (not a replay check, not invalid).
        var gateDecision: KeyStep? {
            guard case .store(let step) = first, step.isGateDecision else { return nil }
            return step
        }
    }

    /// Takes one delivery: decodes it now (in the consume loop, so that the key's order is the
    /// delivery order) and queues its journey behind the earlier work of its key.
    func submit(_ delivery: AMQPDelivery) {
        submit(PipelineMessage(delivery: delivery, topology: settings.topology))
    }

    func submit(_ message: PipelineMessage) {
        metrics.consumed.increment()
        let trace = EventTrace(message, stream: stream)
        var journey = trace.decode { EventJourney(delivery: message.envelope, rules: rules) }
        let first = journey.start()
        guard let event = journey.event else {
            enqueue(.delivery(QueuedDelivery(journey: journey, first: first, message: message, trace: trace, inHand: nil)), key: "\u{0}invalid")
            return
        }
        trace.annotate(event)
        let inHand = metrics.inHand(event, publishedAt: message.publishedAt)
        enqueue(.delivery(QueuedDelivery(journey: journey, first: first, message: message, trace: trace, inHand: inHand)), key: event.sequencingKey)
    }

    /// Waits until the work in hand is done (a stop; tests).
    func drain() async { await queues.drain() }

    private func enqueue(_ work: KeyWork, key: String) {
        guard queues.enqueue(work, key: key) else { return }
        Task { await runKey(key) }
    }

    /// Runs `body` in `key`'s turn and returns when it is done.
    private func inTurn(of key: String, _ body: @escaping @Sendable () async -> Void) async {
        await withCheckedContinuation { continuation in
            enqueue(.run { await body(); continuation.resume() }, key: key)
        }
    }

    /// A key's runner: turn after turn until its queue is empty.
    ///
    /// A step over a key's queued events reads each one's record, though it stops at the first
    /// let through: folding a whole queue of events in turn would read the rest again at every
    /// turn (quadratic). So the fold starts at two events and doubles while every event it
    /// reads is decided (a held burst), and drops back to twice what was decided when it stops
    /// early (events in turn: at most one record read in vain per event).
    private func runKey(_ key: String) async {
        var putBack: [KeyWork] = []
        var foldSize = 2
        while true {
            let turn = queues.nextTurn(key: key, putBack: putBack)
            guard !turn.isEmpty else { return }
            (putBack, foldSize) = await take(turn, foldSize: foldSize)
        }
    }

    /// One turn of a key: its leading deliveries that start with a gate decision (at most
    /// `foldSize`) are decided in one store step (``KeyStep/inOrder(_:)``), else the first piece
    /// of work runs alone. Returns what the turn did not get to, in order, and the next fold size.
    private func take(_ turn: [KeyWork], foldSize: Int) async -> ([KeyWork], foldSize: Int) {
        var deciding: [QueuedDelivery] = []
        for work in turn.prefix(min(foldSize, settings.roundMax)) {
            guard case .delivery(let queued) = work, queued.gateDecision != nil else { break }
            deciding.append(queued)
        }
        if deciding.count > 1 {
            guard let decided = await decideInOrder(deciding) else {
                // Refused as a whole: this key's events go one step each until its queue empties,
                // so that only an event at fault fails, not the ones folded beside it.
                await run(deciding[0])
                return (Array(turn.dropFirst()), foldSize: 1)
            }
            return (Array(turn.dropFirst(decided)), min(max(2, 2 * decided), settings.roundMax))
        }
        switch turn[0] {
        case .delivery(let queued): await run(queued)
        case .run(let body): await body()
        }
        return (Array(turn.dropFirst()), foldSize)
    }

    /// A delivery's journey (`journey`, when it went on from the queued one) from its first
    /// action, then the journeys of the held events it releases, one after the other.
    private func run(_ queued: QueuedDelivery, journey: EventJourney? = nil, from action: EventJourney.Action? = nil) async {
        var journey = journey ?? queued.journey
        await queued.trace.run {
            let next = await drive(&journey, queued.message, from: action ?? queued.first)
            await runReleases(from: next)
        }
        queued.inHand?.end()
    }

    /// Decides a key's queued deliveries in one store step, then carries on each decided journey
    /// in turn; returns how many were decided (those after the first one let through wait for
    /// the next turn), or `nil` when the store refused the step itself (nothing is decided: the
    /// caller takes the events one at a time).
    private func decideInOrder(_ deliveries: [QueuedDelivery]) async -> Int? {
        let step = KeyStep.inOrder(deliveries.map { $0.gateDecision! })
        let outcome: KeyStep.Outcome
        do {
            // The first event's `gate` span stands for the step.
            outcome = try await deliveries[0].trace.within {
                try await EventStep.gate.run { try await commit(step) }
            }
        } catch let error as StoreError where Self.refusesTheStep(error) {
            logger.warning(
                "the store refused a key's queued events as one step; deciding them one at a time",
                metadata: [LogMetadataKey.key.rawValue: "\(step.key)", "events": "\(deliveries.count)", "error": "\(error)"])
            return nil
        } catch {
            logger.error(
                "could not decide a key's queued events; handed back to the broker for another try",
                metadata: [LogMetadataKey.key.rawValue: "\(step.key)", "events": "\(deliveries.count)", "error": "\(error)"])
            for queued in deliveries {
                var journey = queued.journey
                let failed = journey.failed()
                await run(queued, journey: journey, from: failed)
            }
            return deliveries.count
        }
        guard case .decidedInOrder(let decided) = outcome, !decided.isEmpty, decided.count <= deliveries.count else {
            preconditionFailure("a key's queued events decided as \(outcome)")
        }
        for (queued, decision) in zip(deliveries, decided) {
            var journey = queued.journey
            let action = journey.stored(.decided(decision.action, decision.after))
            await run(queued, journey: journey, from: action)
        }
        return decided.count
    }

    /// Commits `step` in the next store round (patiently) and records how long it took, the
    /// round's wait included.
    private func commit(_ step: KeyStep) async throws -> KeyStep.Outcome {
        let started = clock.now
        defer { metrics.recordStoreLatency(clock.now - started, decide: step.isGateDecision) }
        return try await patiently { [rounds] in try await rounds.commit(step) }
    }

    /// A store error that says the step was refused (its change is invalid, the data it read is
    /// not readable), where events decided one by one may fare differently; not an unavailable
    /// store or a key that other replicas keep moving, which one-by-one steps would meet as well.
    private static func refusesTheStep(_ error: StoreError) -> Bool {
        error.code != .unavailable && error.code != .versionConflict
    }

    /// Released held events one after the other while each settles and hands out the next.
    /// Once the worker stops, a release in turn stays in the store (it has no delivery to hand
    /// back): the next start's maintenance pass releases it. Going on meant posting and publishing
    /// retry copies the broker may be blocking (proof suite, `alarm`: a stop past the grace period).
    private func runReleases(from first: EventJourney.ReleaseInTurn?) async {
        var next = first
        while let release = next, !isStopping {
            next = await runRelease(release)
        }
    }

    /// A release's journey: its held message is loaded first, and its own trace (stored with its
    /// headers) goes on from there, not the releaser's.
    private func runRelease(_ release: EventJourney.ReleaseInTurn) async -> EventJourney.ReleaseInTurn? {
        var journey = EventJourney(release: release, rules: rules)
        guard case .loadHeld(let key, let sequence) = journey.start() else { preconditionFailure("a release loads its held message first") }
        let held: HeldMessage?
        do {
            held = try await patiently { [store, stream] in try await store.heldMessage(stream: stream, key: key, sequence: sequence) }
        } catch {
            let logger = journeyLogger(journey, nil)
            logger.warning("could not finish a release; the maintenance pass tries again", metadata: ["error": "\(error)"])
            return await drive(&journey, nil, from: journey.failed())
        }
        let action = journey.heldLoaded(held)
        guard let held else {
            journeyLogger(journey, nil).warning(
                "released event has no held message; nothing to post", metadata: [LogMetadataKey.sequence.rawValue: "\(sequence)"])
            return await drive(&journey, nil, from: action)
        }
        let message = PipelineMessage(held: held, event: journey.event, topology: settings.topology)
        let trace = EventTrace(headers: held.headers, stream: stream, released: true)
        if let event = journey.event { trace.annotate(event) }
        return await trace.run {
            journeyLogger(journey, message).debug("released: its predecessors are settled")
            return await drive(&journey, message, from: action)
        }
    }

    /// Carries out `journey`'s actions from `first` (``EventJourney``: every rule is there) until
    /// it finishes; returns the held event it released, if any.
    private func drive(
        _ journey: inout EventJourney, _ message: PipelineMessage?, from first: EventJourney.Action
    ) async -> EventJourney.ReleaseInTurn? {
        let (event, key) = (journey.event, journey.key)
        // Made at its first use: an event posted in turn logs nothing at the default level.
        lazy var logger = journeyLogger(event: event, key: key, message)
        var lastAnswer: ERPResponseClass?
        var action = first
        while true {
            do {
                switch action {
                case .checkReplay(let letterId):
                    action = journey.replayChecked(letterEventIds: try await replayLetterEventIds(letterId))
                    if !journey.isVouchedReplay {
                        logger.warning(
                            "whsync-replay-of names no stored dead letter of this eventId: the header is ignored",
                            metadata: ["replayOf": "\(letterId.prefix(32))"])
                    }
                case .store(let step):
                    let outcome = try await (step.isGateDecision ? EventStep.gate : EventStep.settle).run { try await commit(step) }
                    action = journey.stored(outcome)
                case .loadHeld:
                    preconditionFailure("a release's held message is loaded before its journey is driven")
                case .post(let document):
                    let answer = try await post(document, key: journey.key ?? "", logger: { logger })
                    lastAnswer = answer
                    action = journey.answered(answer)
                case .publishDeadLetter(let reason, let error, let attempt):
                    guard let message else { preconditionFailure("a dead letter before its message was loaded") }
                    try await deadLetter(message, reason: reason, error: error, attempt: attempt, logger: logger)
                    action = journey.published()
                case .publishRetry(let tier, let nextAttempt):
                    guard let message else { preconditionFailure("a retry copy before its message was loaded") }
                    try await publishConfirmed(message.retryCopy(stream: stream, tier: tier, nextAttempt: nextAttempt, topology: settings.topology))
                    action = journey.published()
                case .finish(let ending):
                    finish(journey, ending, message, answer: lastAnswer, logger: { logger })
                    return ending.next
                }
            } catch {
                if error is StoppingWhileERPUnavailable {
                    logger.info("handed back to the broker", metadata: ["reason": "stopping while the ERP is unavailable"])
                } else if message?.delivery != nil {
                    logger.error("could not process; handed back to the broker for another try", metadata: ["error": "\(error)"])
                } else {
                    logger.warning("could not finish a release; the maintenance pass tries again", metadata: ["error": "\(error)"])
                }
                action = journey.failed()
            }
        }
    }

    /// Settles the delivery as `ending` says and counts what happened.
    private func finish(
        _ journey: EventJourney, _ ending: EventJourney.Ending, _ message: PipelineMessage?, answer: ERPResponseClass?,
        logger: () -> Logger
    ) {
        switch ending.delivery {
        case .ack: message?.ack()
        case .handBack: message?.handBack()
        case .none:
            // A release that could not finish: the maintenance pass takes its key up again.
            if ending.outcome == .gaveUp, let key = journey.key { _ = stalledReleases.withLock { $0.insert(key) } }
        }
        guard let event = journey.event else { return }
        switch ending.outcome {
        case .duplicate:
            metrics.recordDuplicate(event)
            if isDebugLogged { logger().debug("duplicate dropped") }
        case .stale:
            metrics.recordStale(event)
            logger().info("stale event dropped: its key is past this sequence")
        case .held(let parked):
            metrics.recordHeld(event)
            if isDebugLogged { logger().debug(parked ? "held: its key is parked" : "held until its predecessors arrive") }
        case .posted(let documentId):
            metrics.recordPosted(event, publishedAt: message?.publishedAt)
            if isDebugLogged { logger().debug("posted", metadata: ["erp.documentId": "\(documentId ?? "-")"]) }
        case .retryScheduled(let tier, let nextAttempt):
            metrics.recordRetry(event)
            logger().info(
                "ERP failed transiently; retry scheduled",
                metadata: ["erp.answer": "\(answer.map { "\($0)" } ?? "-")", "retry.tier": "\(tier)", "retry.attempt": "\(nextAttempt)"])
        case .deadLettered, .nothingHeld, .gaveUp:
            break  // dead letters are counted where they are published; the rest were logged in drive
        }
    }

    /// The eventIds of the dead letter `whsync-replay-of` names: as recorded, and in its body as
    /// edited; none when the id names no stored letter.
    private func replayLetterEventIds(_ letterId: String) async throws -> [String] {
        guard let id = Int64(letterId) else { return [] }
        guard let letter = try await patiently({ [store] in try await store.deadLetter(id: id) }) else { return [] }
        let bodyEventId = (try? JSONValue(parsing: letter.body))?["eventId"]?.stringValue
        return [letter.eventId, bodyEventId].compactMap { $0 }
    }

    // MARK: Posting

    /// Thrown instead of posting while the circuit is open and the worker stops: the message goes
    /// back to the broker rather than wait for the ERP.
    private struct StoppingWhileERPUnavailable: Error {}

    /// Posts `document` and returns the ERP's answer: through the circuit (while it is open, a
    /// transient failure says nothing about this event, which waits in hand and is posted again
    /// once the ERP answers), on the batch route when `ERP_BATCH_MAX` > 0.
    private func post(_ document: PostingDocument, key: String, logger: () -> Logger) async throws -> ERPResponseClass {
        while true {
            // A quiet circuit (closed, nothing counted) lets the post through without a hop to it.
            if !circuit.isQuiet {
                await circuit.waitUntilPostingAllowed()
                if isStopping, await circuit.isOpen { throw StoppingWhileERPUnavailable() }
            }
            let started = clock.now
            let answer = await EventStep.post.run { [batcher, erp] in
                if let batcher { await batcher.post(document, key: key) } else { await erp.post(document) }
            }
            metrics.recordERPLatency(clock.now - started)
            guard case .transient(let reason, _) = answer else {
                if !circuit.isQuiet { await circuit.recordAnswer() }
                return answer
            }
            guard await circuit.recordTransientFailure(reason, key: key) else { return answer }
            logger().debug("ERP unavailable; the event waits for the circuit to close", metadata: ["erp.answer": "\(answer)"])
        }
    }

    // MARK: Maintenance

    /// One pass over the keys with held events: parks those whose gap outlived `GAP_TIMEOUT`,
    /// and releases held events in turn that nobody works on (after a crash, after an operator's
    /// `whsync gaps skip`, after a release that failed). `startup` also releases events whose
    /// record says a retry copy is in flight: after a crash that copy may be all that is left.
    ///
    /// One aggregate read (``WorkerStore/heldSummary(stream:)``) says which keys need a look: a
    /// held event in turn, a gap past `GAP_TIMEOUT`, a release that stalled. Only those are read
    /// and worked on (a release in turn not while this process works on its key), at most
    /// ``maintenanceWidth`` at a time: a backlog leaves ~15,000 keys
    /// holding a swapped event, and reading every one of them every 5 s flooded PostgreSQL's
    /// pool until the worker took it for an outage (proof suite, `backlog-postgres` at 10^6).
    func maintain(startup: Bool = false) async {
        let summary: [HeldKeySummary]
        do {
            summary = try await store.heldSummary(stream: stream)
        } catch {
            logger.warning("maintenance pass could not read the held keys", metadata: ["error": "\(error)"])
            return
        }
        let stalled = stalledReleases.withLock { stalled in
            defer { stalled.removeAll() }
            return stalled
        }
        let wallNow = Date()
        let now = clock.now
        let (releasesInTurn, gapDue) = gapTimer.withLock { timer in
            timer.retain(only: Set(summary.map(\.key)))
            let releasesInTurn = summary.filter(\.hasReleaseInTurn).map(\.key)
            let gapDue = summary.filter { key in
                !key.hasReleaseInTurn && !key.isParked
                    && timer.waited(key: key.key, oldestHeldAt: key.oldestHeldAt, wallNow: wallNow, now: now) >= gate.policy.gapTimeout
            }.map(\.key)
            return (releasesInTurn, gapDue)
        }
        // A release this process is working on right now (a delivery's chain of releases) is left
        // to that work: the pass would only wait behind it in the key's queue (a chain of 10^4
        // releases takes minutes) and hold up every key after it. The next pass looks again. A
        // key due for parking is always taken: a key busy with arrivals behind its gap is the one
        // that must park, and its queue holds only short decisions (nothing is in turn).
        let inHand = Set(releasesInTurn).union(stalled).filter(queues.isActive)
        stalledReleases.withLock { $0.formUnion(stalled.intersection(inHand)) }
        var keys = Set(releasesInTurn).union(stalled).subtracting(inHand).union(gapDue).sorted().makeIterator()
        await withTaskGroup(of: Void.self) { group in
            // At most `maintenanceWidth` keys at once: one more each time one is done.
            func startNext() -> Bool {
                guard let key = keys.next() else { return false }
                group.addTask { [self] in await inTurn(of: key) { [self] in await maintain(key: key, startup: startup) } }
                return true
            }
            for _ in 0..<Self.maintenanceWidth where !startNext() { break }
            while await group.next() != nil { _ = startNext() }
        }
    }

    /// How many keys the maintenance pass works on at once.
    static let maintenanceWidth = 16

    private func maintain(key: String, startup: Bool) async {
        do {
            var snapshot = try await store.snapshot(stream: stream, key: key, eventId: "")
            guard let state = snapshot.state else { return }
            if let release = gate.pendingRelease(state) {
                snapshot = try await store.snapshot(stream: stream, key: key, eventId: release.eventId)
                if case .posting = snapshot.record, !startup { return }  // its retry copy is on its way
                await runReleases(from: .init(release: release, key: key, snapshot: snapshot))
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

    /// Whether debug lines are written: an event's logger is made only for a line that will be.
    private var isDebugLogged: Bool { logger.logLevel <= .debug }

    private func journeyLogger(_ journey: EventJourney, _ message: PipelineMessage?) -> Logger {
        journeyLogger(event: journey.event, key: journey.key, message)
    }

    private func journeyLogger(event: WarehouseEvent?, key: String?, _ message: PipelineMessage?) -> Logger {
        var logger = self.logger
        guard let event else {
            if let id = message?.properties.messageId { logger[metadataKey: LogMetadataKey.eventId.rawValue] = "\(id.prefix(128))" }
            if let key { logger[metadataKey: LogMetadataKey.key.rawValue] = "\(key)" }
            return logger.traced()
        }
        logger[metadataKey: LogMetadataKey.eventId.rawValue] = "\(event.eventId)"
        logger[metadataKey: LogMetadataKey.key.rawValue] = "\(event.sequencingKey)"
        logger[metadataKey: LogMetadataKey.sequence.rawValue] = "\(event.sequence)"
        if let correlationId = event.header.correlationId {
            logger[metadataKey: LogMetadataKey.correlationId.rawValue] = "\(correlationId)"
        }
        return logger.traced()
    }
}
