import Synchronization

/// Gathers requests made concurrently by many events into rounds handled together (an ERP batch
/// request, one store transaction), without adding any waiting.
///
/// A request leaves at once while fewer than `maxInFlight` rounds are on their way; otherwise it
/// waits for the first of them to finish and leaves with everything that gathered meanwhile: at
/// most `maxItems`, oldest first, and none whose tokens (its sequencing key, its event) are
/// already in the round; those go in a later one. A request that leaves at once while another
/// round is on its way first yields, so that requests made at the same moment (the callers of one
/// store round, resumed one after the other) leave with it. Under load the rounds fill; at a trickle each
/// request travels alone, as fast as it would without the gatherer. No timer. Public for
/// bench/Sources/http-floor, whose batch relay gathers as the worker does.
public final class RoundGatherer<Request: Sendable, Answer: Sendable>: Sendable {
    private struct Waiting: Sendable {
        let request: Request
        let tokens: [String]
        let continuation: CheckedContinuation<Answer, Never>
    }

    private struct State: Sendable {
        var waiting: [Waiting] = []
        var inFlight = 0

        /// The next round: the oldest waiting requests with no token in common (nor with `taken`),
        /// at most `maxItems`.
        mutating func takeRound(maxItems: Int, taken: [String] = []) -> [Waiting] {
            var round: [Waiting] = []
            var tokens = Set(taken)
            var left: [Waiting] = []
            for request in waiting {
                if round.count < maxItems, request.tokens.allSatisfy({ !tokens.contains($0) }) {
                    round.append(request)
                    tokens.formUnion(request.tokens)
                } else {
                    left.append(request)
                }
            }
            waiting = left
            return round
        }
    }

    public let maxInFlight: Int
    public let maxItems: Int
    private let handle: @Sendable ([Request]) async -> [Answer]
    private let unanswered: @Sendable (Request) -> Answer
    private let state = Mutex(State())

    /// `handle` answers a round, in its order; a request it leaves unanswered (a short answer)
    /// gets `unanswered(request)`.
    public init(
        maxInFlight: Int, maxItems: Int, handle: @escaping @Sendable ([Request]) async -> [Answer],
        unanswered: @escaping @Sendable (Request) -> Answer
    ) {
        self.maxInFlight = max(1, maxInFlight)
        self.maxItems = max(1, maxItems)
        self.handle = handle
        self.unanswered = unanswered
    }

    /// Requests waiting for a round (tests line up a round with it).
    var waitingCount: Int { state.withLock { $0.waiting.count } }

    /// Sends `request` in the next round it fits in and returns its own answer.
    public func submit(_ request: Request, tokens: [String]) async -> Answer {
        // Nothing waiting and a round free: this request leads a round, handled in the caller's
        // task (no task, no continuation: the trickle case costs what a direct call does).
        // (`nil`: it does not lead; else whether another round is on its way.)
        let leadsBusy = state.withLock { state -> Bool? in
            guard state.waiting.isEmpty, state.inFlight < maxInFlight else { return nil }
            state.inFlight += 1
            return state.inFlight > 1
        }
        if let busy = leadsBusy {
            // With another round on its way the stream is busy, and the requests made at the same
            // moment are runnable but not here yet: let them come, then take them along. Without
            // it, the first of a store round's postings left alone and the rest waited for the
            // next batch: more than half the batch requests carried one item (bench/README,
            // "Requests made together leave together"). Not when nothing else is on its way: at a
            // trickle a yield would only queue the request behind unrelated work.
            var along: [Waiting] = []
            if busy {
                await Task.yield()
                along = state.withLock { $0.takeRound(maxItems: maxItems - 1, taken: tokens) }
            }
            let answers = await handle([request] + along.map(\.request))
            resume(along, with: answers.dropFirst())
            if let next = finishRound() {
                Task { await run(next) }
            }
            return answers.first ?? unanswered(request)
        }
        return await withCheckedContinuation { continuation in
            let round = state.withLock { state -> [Waiting]? in
                state.waiting.append(Waiting(request: request, tokens: tokens, continuation: continuation))
                guard state.inFlight < maxInFlight else { return nil }
                state.inFlight += 1
                return state.takeRound(maxItems: maxItems)
            }
            if let round {
                Task { await run(round) }
            }
        }
    }

    /// After a round: the next one that gathered meanwhile (its slot kept), or `nil` (slot freed).
    private func finishRound() -> [Waiting]? {
        state.withLock { state -> [Waiting]? in
            let next = state.takeRound(maxItems: maxItems)
            if next.isEmpty { state.inFlight -= 1 }
            return next.isEmpty ? nil : next
        }
    }

    /// Resumes each of `round` with its answer, in order; those `answers` fall short of get
    /// `unanswered`.
    private func resume(_ round: [Waiting], with answers: ArraySlice<Answer>) {
        for (waiting, answer) in zip(round, answers) { waiting.continuation.resume(returning: answer) }
        for waiting in round.dropFirst(answers.count) { waiting.continuation.resume(returning: unanswered(waiting.request)) }
    }

    /// Handles `round`, then each round that gathered meanwhile, until none is waiting.
    private func run(_ first: [Waiting]) async {
        var round = first
        while true {
            resume(round, with: await handle(round.map(\.request))[...])
            guard let next = finishRound() else { return }
            round = next
        }
    }
}
