import Synchronization

/// Work for each key in the order it was submitted, one turn at a time per key, keys
/// concurrently: one task per key that has work (not one per piece of work), which takes
/// everything queued for its key at each turn, so that it can decide a key's queued events in
/// one store step (``WorkerPipeline``, docs/worker.md "A key's queue").
///
/// The store alone keeps each key correct (optimistic versions, docs/store.md); the queue avoids
/// needless work inside one process: without it, the second event of a key that arrives while
/// the first is being posted would be held and released through the store, two extra writes for
/// an event that can simply wait its turn. Submission is synchronous, so the consume loop fixes
/// the order in which a key's deliveries are decided.
final class KeyedQueues<Item: Sendable>: Sendable {
    private struct State {
        /// The keys with a runner: what waits for its next turn (empty while a turn runs).
        var queued: [String: [Item]] = [:]
        var idle: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Queues `item` behind `key`'s earlier work; `true` when the key had none: the caller starts
    /// the key's runner, which takes its turns with ``nextTurn(key:putBack:)``.
    func enqueue(_ item: Item, key: String) -> Bool {
        state.withLock { state in
            guard state.queued[key] == nil else {
                state.queued[key]!.append(item)
                return false
            }
            state.queued[key] = [item]
            return true
        }
    }

    /// The runner's next turn for `key`: `putBack` (what the last turn did not get to, first),
    /// then everything queued since. Empty when nothing is left: the runner ends, and the next
    /// ``enqueue(_:key:)`` starts another.
    func nextTurn(key: String, putBack: [Item] = []) -> [Item] {
        let (turn, waiters) = state.withLock { state -> ([Item], [CheckedContinuation<Void, Never>]) in
            let turn = putBack + (state.queued[key] ?? [])
            guard turn.isEmpty else {
                state.queued[key] = []
                return (turn, [])
            }
            state.queued[key] = nil
            guard state.queued.isEmpty else { return ([], []) }
            defer { state.idle = [] }
            return ([], state.idle)
        }
        for waiter in waiters { waiter.resume() }
        return turn
    }

    /// Keys with work running or waiting.
    var activeKeys: Int { state.withLock { $0.queued.count } }

    /// Whether `key` has work running or waiting.
    func isActive(_ key: String) -> Bool { state.withLock { $0.queued[key] != nil } }

    /// Waits until every key's work submitted so far, and whatever it submitted meanwhile, is done.
    func drain() async {
        await withCheckedContinuation { continuation in
            let idle = state.withLock { state in
                guard !state.queued.isEmpty else { return true }
                state.idle.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }
}
