import AMQPClient
import Foundation
import Logging
import Prometheus
import Synchronization
import Testing
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncProcessKit
import WarehouseSyncSQLiteStore
import WarehouseSyncStore
import WarehouseSyncStoreConformance
import WarehouseSyncTesting

@testable import WarehouseSyncWorker

/// The worker's runtime in-process: ``WorkerPipeline`` carrying out the journeys of deliveries
/// against a real SQLite store, a scripted ERP and a recording publisher (no broker: what is
/// tested is what the runtime does with each action; the real-broker tests are in IntegrationTests).
@Suite("Worker pipeline in-process")
struct WorkerPipelineTests {
    /// The ERP: books each eventId once (409 after), answers what `script` says for an eventId
    /// first (then books), counts what it saw.
    final class ScriptedERP: ERPClient {
        struct State {
            var booked: [String] = []
            var script: [String: [ERPResponseClass]] = [:]
            var batches = 0
        }

        let state = Mutex(State())

        func post(_ document: PostingDocument) async -> ERPResponseClass {
            await waitIfBlocked(document.idempotencyKey)
            return state.withLock { state in
                let eventId = document.idempotencyKey
                if var answers = state.script[eventId], !answers.isEmpty {
                    let answer = answers.removeFirst()
                    state.script[eventId] = answers
                    return answer
                }
                if state.booked.contains(eventId) { return .alreadyPosted }
                state.booked.append(eventId)
                return .posted(documentId: "D-\(state.booked.count)")
            }
        }

        func post(batch: PostingBatch) async -> [ERPResponseClass] {
            state.withLock { $0.batches += 1 }
            var answers: [ERPResponseClass] = []
            for document in batch.documents { answers.append(await post(document)) }
            return answers
        }

        func health() async -> Bool { true }
        var booked: [String] { state.withLock { $0.booked } }

        /// An eventId whose posting waits until ``unblock()``, and the posting waiting.
        private let blocking = Mutex<(eventId: String?, waiter: CheckedContinuation<Void, Never>?)>((nil, nil))

        func block(_ eventId: String) { blocking.withLock { $0.eventId = eventId } }
        var isHoldingAPosting: Bool { blocking.withLock { $0.waiter != nil } }

        func unblock() {
            let waiter = blocking.withLock { blocking in
                defer { blocking = (nil, nil) }
                return blocking.waiter
            }
            waiter?.resume()
        }

        private func waitIfBlocked(_ eventId: String) async {
            guard blocking.withLock({ $0.eventId == eventId }) else { return }
            await withCheckedContinuation { continuation in
                let goOn = blocking.withLock { blocking -> Bool in
                    guard blocking.eventId == eventId else { return true }
                    blocking.waiter = continuation
                    return false
                }
                if goOn { continuation.resume() }
            }
        }
    }

    /// The broker's confirming side: records what was published; `failing` refuses every publish.
    final class RecordingPublisher: ConfirmingPublisher {
        let published = Mutex<[OutboundMessage]>([])
        let failing = Atomic<Bool>(false)

        func publish(_ messages: [OutboundMessage], deadline: ContinuousClock.Instant?) async -> [Result<Void, AMQPError>] {
            if failing.load(ordering: .acquiring) {
                return messages.map { _ in .failure(AMQPError(.connectionLost, "test: the broker is away")) }
            }
            published.withLock { $0.append(contentsOf: messages) }
            return messages.map { _ in .success(()) }
        }
    }

    /// How each delivery was settled, by eventId (in order of settlement).
    final class Settlements: Sendable {
        let log = Mutex<[(eventId: String, acked: Bool)]>([])
        func handle(_ eventId: String) -> DeliveryHandle {
            .recorded(
                ack: { self.log.withLock { $0.append((eventId, true)) } },
                handBack: { self.log.withLock { $0.append((eventId, false)) } })
        }
        var acked: [String] { log.withLock { $0.filter(\.acked).map(\.eventId) } }
        var handedBack: [String] { log.withLock { $0.filter { !$0.acked }.map(\.eventId) } }
    }

    /// Per store round, how many events its gate decisions read (each decides some of them).
    final class GateRounds: Sendable {
        private let rounds = Mutex<[Int]>([])

        @Sendable func observe(_ round: [KeyDecision]) {
            var decided = 0
            for decision in round where decision.sequence != nil { decided += 1 + decision.laterEvents.count }
            if decided > 0 { rounds.withLock { $0.append(decided) } }
        }

        var all: [Int] { rounds.withLock { $0 } }
    }

    struct Harness {
        let pipeline: WorkerPipeline
        let erp: ScriptedERP
        let publisher: RecordingPublisher
        let settlements: Settlements
        let store: SQLiteWorkerStore
        let topology: Topology
        /// Per store round the pipeline committed, the events its gate decisions decided.
        let gateRounds: GateRounds

        func deliver(_ eventId: String, key sku: String = "SKU-0001", sequence: Int64, quantity: String = "1", attempt: Int? = nil) {
            let body = #"{"schema":"inventory.delta/1","eventId":"\#(eventId)","occurredAt":"2026-01-15T10:00:00Z","warehouse":"WH1","sequence":\#(sequence),"sku":"\#(sku)","quantity":\#(quantity),"uom":"EA","status":"available","reason":"adjustment"}"#
            deliverRaw(eventId, body: body, attempt: attempt)
        }

        func deliverRaw(_ eventId: String, body: String, attempt: Int? = nil) {
            var properties = AMQPProperties()
            properties.messageId = eventId
            if let attempt { properties.headers[WireHeader.attempt] = .string(String(attempt)) }
            pipeline.submit(PipelineMessage(
                exchange: topology.eventsExchange, routingKey: "inventory.WH1", properties: properties, body: Array(body.utf8),
                topology: topology, handle: settlements.handle(eventId)))
        }

        func settle() async { await pipeline.drain() }

        func published(to exchange: String) -> [OutboundMessage] {
            publisher.published.withLock { $0.filter { $0.exchange == exchange } }
        }
    }

    static func withPipeline(
        erpBatchMax: Int = 0, patience: Duration = .seconds(30), refuse: (@Sendable (KeyDecision) -> StoreError?)? = nil,
        metrics: WorkerMetrics = WorkerMetrics(stream: "inventory"), _ body: (Harness) async throws -> Void
    ) async throws {
        try await TestDirectory.with("worker-pipeline") { directory in
            let topology = try Topology(jsonData: Data(contentsOf: TestRepository.root.appendingPathComponent("topology/topology.json")))
            let store = try await SQLiteWorkerStore(path: directory.appendingPathComponent("store.db").path)
            let gateRounds = GateRounds()
            let observed = InterceptingStore(base: store, observeRound: gateRounds.observe, refuse: refuse)
            let erp = ScriptedERP()
            let publisher = RecordingPublisher()
            let logger = Logger(label: "test.pipeline")
            var settings = WorkerPipeline.Settings(
                stream: .inventory, workerName: "test", topology: topology,
                sequencing: SequencingPolicy(gapTimeout: .seconds(600)),
                retryPolicy: RetryPolicy(maxAttempts: 3, topology: topology)!, erpBatchMax: erpBatchMax)
            settings.patience = patience
            let pipeline = WorkerPipeline(
                settings: settings, decoder: EventDecoder(), store: observed, erp: erp, publisher: publisher,
                circuit: CircuitGate(configuration: .init(), erp: erp, logger: logger),
                metrics: metrics, logger: logger)
            let harness = Harness(
                pipeline: pipeline, erp: erp, publisher: publisher, settlements: Settlements(), store: store, topology: topology,
                gateRounds: gateRounds)
            do {
                try await body(harness)
            } catch {
                await store.close()
                throw error
            }
            await store.close()
        }
    }

    @Test("events delivered out of order are posted in sequence order per key, each acked once", arguments: [0, 10])
    func outOfOrder(erpBatchMax: Int) async throws {
        try await Self.withPipeline(erpBatchMax: erpBatchMax) { harness in
            // Two keys, each 1…5, delivered interleaved with the sequences of each reversed.
            for sequence in stride(from: Int64(5), through: 1, by: -1) {
                harness.deliver("a-\(sequence)", key: "SKU-0001", sequence: sequence)
                harness.deliver("b-\(sequence)", key: "SKU-0002", sequence: sequence)
            }
            await harness.settle()
            // The releases of held events run after the deliveries' own journeys.
            try await waitUntil { harness.erp.booked.count == 10 }
            let booked = harness.erp.booked
            #expect(booked.filter { $0.hasPrefix("a-") } == (1...5).map { "a-\($0)" })
            #expect(booked.filter { $0.hasPrefix("b-") } == (1...5).map { "b-\($0)" })
            #expect(harness.settlements.acked.sorted() == (booked).sorted())
            #expect(harness.settlements.handedBack.isEmpty)
            #expect(harness.publisher.published.withLock { $0.isEmpty })
            if erpBatchMax > 0 { #expect(harness.erp.state.withLock { $0.batches } > 0) }
        }
    }

    @Test("each event's store steps are timed by step: one decide and one settle for an event posted in turn")
    func storeLatencyByStep() async throws {
        let registry = PrometheusCollectorRegistry()
        let metrics = WorkerMetrics(stream: "inventory", factory: OpsMetrics.makeFactory(registry: registry))
        try await Self.withPipeline(metrics: metrics) { harness in
            harness.deliver("t-1", sequence: 1)
            harness.deliver("t-2", key: "SKU-0002", sequence: 1)
            harness.deliver("t-4", key: "SKU-0003", sequence: 2)  // held: a decide, no settle
            await harness.settle()
            #expect(harness.erp.booked.sorted() == ["t-1", "t-2"])
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            let text = String(decoding: buffer, as: UTF8.self)
            #expect(text.contains(#"whsync_store_latency_seconds_count{stream="inventory",step="decide"} 3"#), "\(text)")
            #expect(text.contains(#"whsync_store_latency_seconds_count{stream="inventory",step="settle"} 2"#), "\(text)")
        }
    }

    @Test("a burst of one key's held events at the head of the queue is decided in a few store steps, not one each")
    func heldBurst() async throws {
        let registry = PrometheusCollectorRegistry()
        let metrics = WorkerMetrics(stream: "inventory", factory: OpsMetrics.makeFactory(registry: registry))
        try await Self.withPipeline(metrics: metrics) { harness in
            // The key's 200 events arrive last first, then another key's: the first 199 are held.
            for sequence in stride(from: Int64(200), through: 1, by: -1) {
                harness.deliver("h-\(sequence)", key: "SKU-0001", sequence: sequence)
            }
            harness.deliver("o-1", key: "SKU-0002", sequence: 1)
            await harness.settle()
            #expect(harness.erp.booked.filter { $0.hasPrefix("h-") } == (1...200).map { "h-\($0)" })
            #expect(harness.erp.booked.contains("o-1"))
            #expect(harness.settlements.acked.sorted() == ((1...200).map { "h-\($0)" } + ["o-1"]).sorted())
            #expect(harness.settlements.handedBack.isEmpty)
            let rounds = harness.gateRounds.all
            // A key's steps double while all they read is held (2, 4, … 128; the key's task may take
            // its first turns while the deliveries are still coming): not 200 rounds.
            #expect(rounds.count <= 25, "gate rounds: \(rounds)")
            #expect((rounds.max() ?? 0) >= 64, "gate rounds: \(rounds)")
            let stillHeld = try await harness.store.heldSequences(stream: .inventory, key: "WH1/SKU-0001")
            #expect(stillHeld.isEmpty)
            // The store-latency metric counts steps: the folded decisions are a few, every posting settles once.
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            let text = String(decoding: buffer, as: UTF8.self)
            let count = { (step: String) in
                text.split(separator: "\n").first { $0.hasPrefix(#"whsync_store_latency_seconds_count{stream="inventory",step="\#(step)"}"#) }
                    .flatMap { Int($0.split(separator: " ").last ?? "") }
            }
            let decides = try #require(count("decide"))
            #expect(decides >= rounds.count && decides <= 30, "decide steps: \(decides), gate rounds: \(rounds)")
            #expect(count("settle") == 201)
        }
    }

    @Test("a key's queued events the store refuses as one step are decided one at a time: none handed back")
    func refusedFold() async throws {
        let refusedFolds = Mutex(0)
        // A store that cannot take a step over several events (as if the folded change were invalid).
        let refuse: @Sendable (KeyDecision) -> StoreError? = { decision in
            guard !decision.laterEvents.isEmpty else { return nil }
            refusedFolds.withLock { $0 += 1 }
            return StoreError(code: .invalidChange, message: "test: no folds")
        }
        try await Self.withPipeline(refuse: refuse) { harness in
            for sequence in stride(from: Int64(10), through: 1, by: -1) {
                harness.deliver("f-\(sequence)", key: "SKU-0001", sequence: sequence)
            }
            await harness.settle()
            #expect(refusedFolds.withLock { $0 } >= 1, "the key's queue folded at least once")
            #expect(harness.erp.booked == (1...10).map { "f-\($0)" })
            #expect(harness.settlements.acked.sorted() == (1...10).map { "f-\($0)" }.sorted())
            #expect(harness.settlements.handedBack.isEmpty)
        }
    }

    @Test("the maintenance pass leaves a key whose release chain this process runs to it, instead of waiting behind it")
    func maintenanceLeavesKeyInHand() async throws {
        try await Self.withPipeline { harness in
            harness.erp.block("c-50")
            for sequence in stride(from: Int64(100), through: 2, by: -1) { harness.deliver("c-\(sequence)", sequence: sequence) }
            harness.deliver("c-1", sequence: 1)
            // c-1 is posted, then its key's held events are released one by one, until c-50 waits at the ERP.
            // 49 releases in a row, each a store round of its own: with every suite sharing the pool
            // (the full suite, CI) this took over 10 s twice in this session; the limit only guards liveness.
            try await waitUntil(.seconds(30)) { harness.erp.isHoldingAPosting }
            let summary = try await harness.store.heldSummary(stream: .inventory)
            #expect(summary.contains { $0.hasReleaseInTurn }, "the pass sees the key's release in turn: \(summary)")
            // Returns although the key's queue is busy (it waited there until the chain ended).
            let passDone = Atomic<Bool>(false)
            async let pass: Void = {
                await harness.pipeline.maintain()
                passDone.store(true, ordering: .releasing)
            }()
            let returned = (try? await waitUntil(.seconds(20)) { passDone.load(ordering: .acquiring) }) != nil
            #expect(harness.erp.booked.count == 49)
            harness.erp.unblock()
            await pass
            #expect(returned, "the pass returned while the key's chain waited at the ERP")
            await harness.settle()
            #expect(harness.erp.booked == (1...100).map { "c-\($0)" })
            #expect(harness.settlements.handedBack.isEmpty)
        }
    }

    @Test("a key's queued events in turn are posted one at a time, each decided after the one before settled")
    func inTurnBurst() async throws {
        try await Self.withPipeline { harness in
            for sequence in Int64(1)...50 { harness.deliver("t-\(sequence)", sequence: sequence) }
            await harness.settle()
            #expect(harness.erp.booked == (1...50).map { "t-\($0)" })
            #expect(harness.settlements.acked == (1...50).map { "t-\($0)" })
            // Nothing held: each event waited in the queue for the one before to settle.
            let record = try await harness.store.eventRecord(eventId: "t-50")
            guard case .posted = record?.record else {
                Issue.record("t-50 is recorded posted, got \(String(describing: record))")
                return
            }
            let read = harness.gateRounds.all.reduce(0, +)
            #expect(read >= 50 && read <= 100, "at most one record read in vain per event, read \(read)")
        }
    }

    @Test("the circuit is quiet (no hop per posting) only while closed with nothing counted; a failure counts until an answer")
    func quietCircuit() async {
        let circuit = CircuitGate(configuration: .init(), erp: ScriptedERP(), logger: Logger(label: "test.circuit"))
        #expect(circuit.isQuiet)
        #expect(await circuit.recordTransientFailure(.status(503), key: "WH1/A") == false, "one failure opens nothing")
        #expect(!circuit.isQuiet, "a counted failure must be reset by the next answer")
        await circuit.recordAnswer()
        #expect(circuit.isQuiet)
        await circuit.shutdown()
        #expect(!circuit.isQuiet, "a stopped circuit is asked every time")
    }

    @Test("a business rejection is dead-lettered with its reason before the ack; the key moves on")
    func rejection() async throws {
        try await Self.withPipeline { harness in
            harness.erp.state.withLock { $0.script["r-1"] = [.rejected(status: 422, message: "unknown SKU")] }
            harness.deliver("r-1", sequence: 1)
            harness.deliver("r-2", sequence: 2)
            await harness.settle()
            let letters = harness.published(to: harness.topology.deadLetter.exchange)
            #expect(letters.count == 1)
            #expect(letters.first?.properties.headers[WireHeader.reason] == .string("erp-rejected"))
            #expect(letters.first?.properties.headers[WireHeader.error] == .string("HTTP 422: unknown SKU"))
            #expect(harness.erp.booked == ["r-2"])
            #expect(harness.settlements.acked == ["r-1", "r-2"])
            let record = try await harness.store.eventRecord(eventId: "r-1")
            guard case .deadLettered = record?.record else {
                Issue.record("the rejected event is recorded dead-lettered, got \(String(describing: record))")
                return
            }
        }
    }

    @Test("a transient failure publishes a retry copy with the next attempt, then acks; its redelivery posts")
    func transient() async throws {
        try await Self.withPipeline { harness in
            harness.erp.state.withLock { $0.script["t-1"] = [.transient(reason: .status(503), retryAfter: nil)] }
            harness.deliver("t-1", sequence: 1)
            await harness.settle()
            let copies = harness.published(to: harness.topology.retry.exchange)
            #expect(copies.count == 1)
            #expect(copies.first?.properties.headers[WireHeader.attempt] == .string("2"))
            #expect(harness.settlements.acked == ["t-1"])
            #expect(harness.erp.booked.isEmpty)
            // The retry tier hands the copy back.
            harness.deliver("t-1", sequence: 1, attempt: 2)
            await harness.settle()
            #expect(harness.erp.booked == ["t-1"])
            #expect(harness.settlements.acked == ["t-1", "t-1"])
        }
    }

    @Test("an invalid message is dead-lettered with the field it broke; good ones around it post")
    func invalid() async throws {
        try await Self.withPipeline { harness in
            harness.deliver("g-1", sequence: 1)
            harness.deliverRaw("bad", body: #"{"schema":"inventory.delta/1","eventId":"bad","warehouse":"WH1","sequence":2}"#)
            harness.deliver("g-2", sequence: 2)
            await harness.settle()
            let letters = harness.published(to: harness.topology.deadLetter.exchange)
            #expect(letters.map { $0.properties.headers[WireHeader.reason] } == [.string("invalid")])
            #expect(letters.first?.properties.headers[WireHeader.error]?.stringValue?.contains("sku") == true)
            #expect(harness.erp.booked == ["g-1", "g-2"])
            #expect(Set(harness.settlements.acked) == ["g-1", "bad", "g-2"])
        }
    }

    @Test("a dead letter the broker does not confirm is never acked: the delivery is handed back")
    func unconfirmedDeadLetter() async throws {
        try await Self.withPipeline(patience: .milliseconds(200)) { harness in
            harness.publisher.failing.store(true, ordering: .releasing)
            harness.erp.state.withLock { $0.script["u-1"] = [.rejected(status: 422, message: "no")] }
            harness.deliver("u-1", sequence: 1)
            await harness.settle()
            #expect(harness.settlements.acked.isEmpty)
            #expect(harness.settlements.handedBack == ["u-1"])
            // Its record still says `posting`: the redelivery posts it again (and is refused again).
            harness.publisher.failing.store(false, ordering: .releasing)
            harness.erp.state.withLock { $0.script["u-1"] = [.rejected(status: 422, message: "no")] }
            harness.deliver("u-1", sequence: 1)
            await harness.settle()
            #expect(harness.settlements.acked == ["u-1"])
            #expect(harness.published(to: harness.topology.deadLetter.exchange).count == 1)
        }
    }
}
