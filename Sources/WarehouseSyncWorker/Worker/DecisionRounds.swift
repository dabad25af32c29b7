import WarehouseSyncCore
import WarehouseSyncStore

/// The pipeline's way to the store: the decisions of events processed concurrently (decide,
/// settle) gathered into rounds (``RoundGatherer``), each committed by one
/// ``WorkerStore/commitDecisions(_:)`` call: one transaction and, in PostgreSQL, one read and one
/// write of set-based statements for up to `ROUND_MAX` events instead of a dozen round trips each.
/// A round holds at most one decision per key and per event (the store reads before it writes).
final class DecisionRounds: Sendable {
    /// Rounds on their way at once: one being written while the next gathers.
    static let maxInFlight = 2

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

    /// ``WorkerStore/commitDecision(stream:key:eventId:sequence:_:)`` in the next round; with
    /// `assumed`, the store decides on that snapshot unless its version is stale.
    func commitDecision<Outcome: Sendable>(
        stream: EventStream, key: String, eventId: String, sequence: Int64? = nil, assumed: KeySnapshot? = nil,
        _ decide: @escaping @Sendable (KeySnapshot) -> (change: KeyChange?, outcome: Outcome)
    ) async throws -> Outcome {
        let decision = KeyDecision(stream: stream, key: key, eventId: eventId, sequence: sequence, assumed: assumed) { snapshot in
            let (change, outcome) = decide(snapshot)
            return (change, outcome)
        }
        let tokens = eventId.isEmpty ? [key] : [key, "\u{0}" + eventId]
        // The outcome is the one `decide` returned, so of type Outcome.
        return try await rounds.submit(decision, tokens: tokens).get() as! Outcome
    }
}
