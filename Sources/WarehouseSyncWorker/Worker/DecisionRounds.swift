import Foundation
import WarehouseSyncCore
import WarehouseSyncStore

/// The pipeline's way to the store: the key steps of journeys running concurrently (decide,
/// settle) gathered into rounds (``RoundGatherer``), each committed by one
/// ``WorkerStore/commitDecisions(_:)`` call: one transaction and, in PostgreSQL, one read and one
/// write of set-based statements for up to `ROUND_MAX` events instead of a dozen round trips each.
/// A round holds at most one step per key and per event (the store reads before it writes).
final class DecisionRounds: Sendable {
    /// Rounds on their way at once: one, while the next gathers. Two (one written while the
    /// next was written too) halved the rounds, and each round has a cost of its own (a store
    /// job, a statement, a commit): with one, rounds are twice as large, PostgreSQL's CPU per
    /// event fell by a quarter and both stores went 5–10% faster (bench/README, "One statement
    /// per round, one round in flight…"). A decision arriving alone still leaves at once.
    static let maxInFlight = 1

    private let rounds: RoundGatherer<KeyDecision, Result<any Sendable, any Error>>

    /// `maxItems`: `ROUND_MAX`.
    init(store: any WorkerStore, maxItems: Int) {
        rounds = RoundGatherer(
            maxInFlight: Self.maxInFlight, maxItems: maxItems,
            handle: { round in
                do {
                    return try await store.commitDecisions(round)
                } catch {
                    return round.map { _ in .failure(error) }
                }
            },
            unanswered: { _ in .failure(StoreError(code: .unavailable, message: "the store answered a round short")) })
    }

    /// Commits `step` in the next round: on its assumed snapshot unless that is stale, else on
    /// what the store reads.
    func commit(_ step: KeyStep) async throws -> KeyStep.Outcome {
        let decision = KeyDecision(
            stream: step.stream, key: step.key, eventId: step.eventId, sequence: step.sequence, assumed: step.assumed,
            laterEvents: step.laterEvents
        ) { snapshot in
            let (change, outcome) = step.run(on: snapshot, now: Date())
            return (change, outcome)
        }
        var tokens = step.eventId.isEmpty ? [step.key] : [step.key, "\u{0}" + step.eventId]
        tokens += step.laterEvents.map { "\u{0}" + $0.eventId }
        guard let outcome = try await rounds.submit(decision, tokens: tokens).get() as? KeyStep.Outcome else {
            throw StoreError(code: .unavailable, message: "the store answered a step with another step's outcome")
        }
        return outcome
    }
}
