import ArgumentParser
import Foundation
import WarehouseSyncCore
import WarehouseSyncOperations
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncStore
import WarehouseSyncWorker

/// `whsync gaps`: keys waiting for a missing sequence (DESIGN §5, "park the key").
struct GapsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gaps",
        abstract: "List keys waiting for a missing sequence; skip a gap an operator gives up on.",
        subcommands: [List.self, Skip.self])

    /// One key with held events, as the store has it.
    struct KeyGap: Encodable {
        let stream: String
        let key: String
        let parked: Bool
        let parkedSince: String?
        let reason: String?
        let nextExpected: Int64
        let missingFrom: Int64?
        let missingTo: Int64?
        let heldCount: Int
        let heldSequences: [Int64]
        let oldestHeldAt: String?

        init(stream: EventStream, key: String, state: KeyState, heldSequences: [Int64]) {
            self.stream = stream.rawValue
            self.key = key
            parked = state.parked != nil
            parkedSince = state.parked.map { formatTime($0.since) }
            reason = state.parked?.reason.rawValue
            nextExpected = state.nextExpected
            missingFrom = state.missingSequences?.lowerBound
            missingTo = state.missingSequences?.upperBound
            heldCount = heldSequences.count
            self.heldSequences = Array(heldSequences.prefix(100))
            oldestHeldAt = state.oldestHeldAt.map(formatTime)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(stream, forKey: .stream)
            try container.encode(key, forKey: .key)
            try container.encode(parked, forKey: .parked)
            try container.encode(parkedSince, forKey: .parkedSince)
            try container.encode(reason, forKey: .reason)
            try container.encode(nextExpected, forKey: .nextExpected)
            try container.encode(missingFrom, forKey: .missingFrom)
            try container.encode(missingTo, forKey: .missingTo)
            try container.encode(heldCount, forKey: .heldCount)
            try container.encode(heldSequences, forKey: .heldSequences)
            try container.encode(oldestHeldAt, forKey: .oldestHeldAt)
        }

        enum CodingKeys: String, CodingKey {
            case stream, key, parked, parkedSince, reason, nextExpected, missingFrom, missingTo, heldCount, heldSequences, oldestHeldAt
        }
    }

    /// Every key of `streams` that is parked or holds events, parked ones first.
    static func gaps(_ store: any WorkerStore, streams: [EventStream]) async throws -> [KeyGap] {
        var gaps: [KeyGap] = []
        for stream in streams {
            let keys = Set(try await store.parkedKeys(stream: stream)).union(try await store.keysWithHeldEvents(stream: stream))
            for key in keys.sorted() {
                guard let state = try await store.snapshot(stream: stream, key: key, eventId: "").state else { continue }
                let held = try await store.heldSequences(stream: stream, key: key)
                gaps.append(KeyGap(stream: stream, key: key, state: state, heldSequences: held))
            }
        }
        return gaps.sorted { ($0.parked ? 0 : 1, $0.stream, $0.key) < ($1.parked ? 0 : 1, $1.stream, $1.key) }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Keys that are parked (their gap outlived GAP_TIMEOUT) or hold events waiting for a predecessor.")
        @Option(help: "Only this stream.") var stream: EventStream?
        @Flag(help: "One JSON array on stdout.") var json = false
        @OptionGroup var store: StoreOptions
        @OptionGroup var broker: BrokerOptions

        func run() async throws {
            let gaps = try await store.withStore(logger: broker.logger()) { store in
                try await GapsCommand.gaps(store, streams: stream.map { [$0] } ?? EventStream.allCases)
            }
            if json { return try printJSON(gaps) }
            print("stream     key                              state     missing         held  since")
            for gap in gaps {
                let missing = gap.missingFrom.map { "\($0)–\(gap.missingTo ?? $0)" } ?? "-"
                let state = gap.parked ? "parked" : "waiting"
                print(
                    "\(pad(gap.stream, 10)) \(pad(gap.key, 32)) \(pad(state, 9)) \(pad(missing, 15)) \(pad(gap.heldCount, 5)) "
                        + "\(gap.parkedSince ?? gap.oldestHeldAt ?? "-")")
            }
            let parked = gaps.filter(\.parked).count
            printError("\(parked) parked, \(gaps.count - parked) waiting; `whsync gaps skip --stream S KEY` gives up on a gap")
        }
    }

    struct Skip: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give up on a key's missing sequences: unpark it and resume at its lowest held event.",
            discussion: """
                The running worker releases the held events in order within seconds. A skipped event that \
                arrives later is dead-lettered with reason gap-timeout; replay it (whsync dlq replay) if it \
                must still be posted.
                """)
        @Option(help: "The key's stream.") var stream: EventStream
        @Argument(help: "The sequencing key, e.g. WH1/SKU-0001.") var key: String
        @Flag(help: "One JSON object on stdout.") var json = false
        @OptionGroup var actor: ActorOptions
        @OptionGroup var store: StoreOptions
        @OptionGroup var broker: BrokerOptions

        struct Result: Encodable {
            let stream: String
            let key: String
            let skippedFrom: Int64?
            let skippedTo: Int64?
            let resumedAt: Int64
            let resumedEventId: String

            var summary: String {
                let skipped = skippedFrom.map { "skipped \($0)–\(skippedTo ?? $0)" } ?? "nothing was missing"
                return "\(skipped); resumes at sequence \(resumedAt) (eventId \(resumedEventId))"
            }
        }

        func run() async throws {
            let (stream, key) = (stream, key)
            let result = try await store.withStore(logger: broker.logger()) { store in
                // Decided on the key as it is when committed: a worker moving the key meanwhile
                // makes the store decide again on the new state.
                let skip = try await store.commitDecision(stream: stream, key: key, eventId: "") { snapshot in
                    // The gap timeout does not matter to a skip.
                    let outcome = snapshot.state.flatMap { SequenceGate(policy: SequencingPolicy(gapTimeout: .seconds(1))).skip($0) }
                    let change = outcome.map {
                        KeyChange(stream: stream, key: key, expectedVersion: snapshot.version, newState: $0.updatedState, now: Date())
                    }
                    return (change, (keyExists: snapshot.state != nil, outcome: outcome))
                }
                guard skip.keyExists else { throw ValidationError("no key \(key) in the \(stream) stream") }
                guard let outcome = skip.outcome else {
                    throw ValidationError("key \(key) holds no events: there is nothing to resume")
                }
                let result = Result(
                    stream: stream.rawValue, key: key, skippedFrom: outcome.skipped?.lowerBound,
                    skippedTo: outcome.skipped?.upperBound, resumedAt: outcome.release.sequence,
                    resumedEventId: outcome.release.eventId)
                try await store.recordAudit(NewAuditEntry(
                    at: Date(), actor: actor.name, action: .gapSkip, stream: stream, key: key, detail: result.summary))
                return result
            }
            if json { return try printJSON(result) }
            print("\(stream) \(key): \(result.summary), released by the worker within seconds")
        }
    }
}
