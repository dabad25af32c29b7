import ArgumentParser
import Foundation
import WarehouseSyncCore
import WarehouseSyncStore

/// `whsync trace EVENT_ID`: one event's story as the store tells it, oldest first: published
/// (its `whsync-published-at`), first recorded by a worker, held, dead-lettered and why, edited,
/// replayed, the operator's gap skips on its key, and where it is now (posted with the ERP's
/// document, held, in a retry tier, dead-lettered), with its key's position. What the store does
/// not keep (each delivery, each ERP call) is in the workers' logs under the event's `eventId`.
struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "One event's story from the store and the audit trail: held, posted, dead-lettered, replayed.")
    @Argument(help: "The eventId.") var eventId: String
    @Flag(help: "One JSON object on stdout.") var json = false
    @OptionGroup var store: StoreOptions
    @OptionGroup var broker: BrokerOptions

    struct Step: Encodable {
        let at: String
        let what: String
        let detail: String
    }

    struct KeyPosition: Encodable {
        let nextExpected: Int64
        let heldEvents: Int
        let parkedSince: String?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(nextExpected, forKey: .nextExpected)
            try container.encode(heldEvents, forKey: .heldEvents)
            try container.encode(parkedSince, forKey: .parkedSince)
        }

        enum CodingKeys: String, CodingKey { case nextExpected, heldEvents, parkedSince }
    }

    struct Trace: Encodable {
        let eventId: String
        let stream: String?
        let key: String?
        let sequence: Int64?
        /// `posted`, `held`, `posting` (being posted or waiting in a retry tier), `dead-lettered`,
        /// or `unknown` (no record: never seen, or pruned after DEDUP_RETENTION).
        let state: String
        let documentId: String?
        let keyPosition: KeyPosition?
        let deadLetterIds: [Int64]
        let steps: [Step]

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(eventId, forKey: .eventId)
            try container.encode(stream, forKey: .stream)
            try container.encode(key, forKey: .key)
            try container.encode(sequence, forKey: .sequence)
            try container.encode(state, forKey: .state)
            try container.encode(documentId, forKey: .documentId)
            try container.encode(keyPosition, forKey: .keyPosition)
            try container.encode(deadLetterIds, forKey: .deadLetterIds)
            try container.encode(steps, forKey: .steps)
        }

        enum CodingKeys: String, CodingKey { case eventId, stream, key, sequence, state, documentId, keyPosition, deadLetterIds, steps }
    }

    func run() async throws {
        let trace = try await store.withStore(logger: broker.logger()) { try await Self.trace(eventId, store: $0) }
        if json {
            try printJSON(trace)
        } else {
            Self.print(trace)
        }
        if trace.state == "unknown" && trace.deadLetterIds.isEmpty {
            throw ExitCode(1)
        }
    }

    /// Everything the store knows of `eventId`, as a story.
    static func trace(_ eventId: String, store: any WorkerStore) async throws -> Trace {
        var steps: [(at: Date, what: String, detail: String)] = []
        let record = try await store.eventRecord(eventId: eventId)
        let letters = try await DLQCommand.all(store, DeadLetterFilter(eventId: eventId))
        var publishedAt: Date?
        var keyPosition: KeyPosition?

        if let record {
            steps.append((record.firstRecordedAt, "recorded", "the \(record.stream)-worker took it: key \(record.key), sequence \(record.sequence)"))
            // Asked at the event's sequence, so that the key's view of its held events knows it.
            let snapshot = try await store.snapshot(stream: record.stream, key: record.key, eventId: eventId, sequence: record.sequence)
            if let state = snapshot.state {
                let heldEvents = try await store.heldSequences(stream: record.stream, key: record.key).count
                keyPosition = KeyPosition(
                    nextExpected: state.nextExpected, heldEvents: heldEvents, parkedSince: state.parked.map { formatTime($0.since) })
                if let held = state.held[record.sequence], held.eventId == eventId {
                    steps.append((held.heldAt, "held", "waiting for its predecessors: the key expects #\(state.nextExpected) next"))
                    if let message = try await store.heldMessage(stream: record.stream, key: record.key, sequence: record.sequence) {
                        publishedAt = message.headers[WireHeader.publishedAt].flatMap(Timestamp.init(parsing:))?.date
                    }
                }
                if let parked = state.parked {
                    steps.append((parked.since, "key parked", "\(parked.reason): a gap outlived GAP_TIMEOUT; `whsync gaps list`"))
                }
            }
            let last: String? = switch record.record {
            case .posted: "posted" + (record.documentId.map { ": ERP document \($0)" } ?? " (the ERP named no document: 409, already posted)")
            case .deadLettered: "recorded as dead-lettered: its key moved on; a replay posts it"
            case .posting: "let through for posting: being posted, or waiting in a retry tier"
            case .held, .notSeen: nil
            }
            if let last {
                steps.append((record.lastRecordedAt, stateName(record.record), last))
            }
        }

        for letter in letters {
            if publishedAt == nil {
                publishedAt = letter.headers[WireHeader.publishedAt].flatMap(Timestamp.init(parsing:))?.date
            }
            steps.append((letter.firstFailedAt, "dead-lettered", "letter #\(letter.id), \(letter.reason): \(letter.error)"))
            if letter.failureCount > 1 {
                steps.append((letter.lastFailedAt, "dead-lettered again", "letter #\(letter.id), \(letter.failureCount) failures in all"))
            }
            for audit in try await store.auditTrail(deadLetterId: letter.id, limit: 1000) {
                let entry = audit.entry
                steps.append((entry.at, "\(entry.action) by \(entry.actor)", "letter #\(letter.id)" + (entry.detail.isEmpty ? "" : ": \(entry.detail)")))
            }
        }
        if let record {
            for audit in try await store.auditTrail(deadLetterId: nil, limit: 10_000)
            where audit.entry.action == .gapSkip && audit.entry.key == record.key && audit.entry.stream == record.stream {
                steps.append((audit.entry.at, "gap skipped by \(audit.entry.actor)", audit.entry.detail))
            }
        }
        if let publishedAt {
            steps.append((publishedAt, "published", "whsync-published-at"))
        }
        steps.sort { $0.at < $1.at }
        return Trace(
            eventId: eventId, stream: record?.stream.rawValue ?? letters.first?.stream?.rawValue, key: record?.key ?? letters.first?.key,
            sequence: record?.sequence ?? letters.first?.sequence, state: record.map { stateName($0.record) } ?? "unknown",
            documentId: record?.documentId, keyPosition: keyPosition, deadLetterIds: letters.map(\.id),
            steps: steps.map { Step(at: formatTime($0.at), what: $0.what, detail: $0.detail) })
    }

    private static func stateName(_ record: DedupRecord) -> String {
        switch record {
        case .posted: "posted"
        case .held: "held"
        case .posting: "posting"
        case .deadLettered: "dead-lettered"
        case .notSeen: "unknown"
        }
    }

    private static func print(_ trace: Trace) {
        var title = "event \(trace.eventId)"
        if let stream = trace.stream, let key = trace.key, let sequence = trace.sequence { title += ": \(stream) \(key) #\(sequence)" }
        Swift.print(title)
        for step in trace.steps {
            Swift.print("  \(step.at)  \(pad(step.what, 24)) \(step.detail)")
        }
        var now = "now: \(trace.state)"
        if let document = trace.documentId { now += ", ERP document \(document)" }
        if let position = trace.keyPosition {
            now += "; its key expects #\(position.nextExpected) next, holds \(position.heldEvents)"
            if let since = position.parkedSince { now += ", parked since \(since)" }
        }
        if trace.state == "unknown" && trace.deadLetterIds.isEmpty {
            now = "no record of it: never seen by a worker, or posted and pruned after DEDUP_RETENTION"
        }
        Swift.print(now)
    }
}
