import Synchronization

/// A counting semaphore for async code: at most `limit` holders at a time, waiters resumed in
/// arrival order. A waiter is not woken by task cancellation; it waits for its permit like the
/// others (posts are short, bounded by the request timeout).
final class AsyncSemaphore: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
        var waiterHead = 0
        var holders = 0
        var peakHolders = 0
    }

    private let state: Mutex<State>
    let limit: Int

    init(limit: Int) {
        precondition(limit >= 1, "an AsyncSemaphore needs at least one permit")
        self.limit = limit
        state = Mutex(State(available: limit))
    }

    /// The most holders seen at once since creation (never above `limit`).
    var peakHolders: Int { state.withLock { $0.peakHolders } }

    /// Holders right now.
    var holders: Int { state.withLock { $0.holders } }

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.available > 0 {
                    state.available -= 1
                    state.holders += 1
                    state.peakHolders = max(state.peakHolders, state.holders)
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiterHead < state.waiters.count {
                // The permit passes straight to the first waiter: holders stays the same.
                let next = state.waiters[state.waiterHead]
                state.waiterHead += 1
                if state.waiterHead > 64, state.waiterHead * 2 > state.waiters.count {
                    state.waiters.removeFirst(state.waiterHead)
                    state.waiterHead = 0
                }
                return next
            }
            state.holders -= 1
            state.available += 1
            return nil
        }
        next?.resume()
    }

    /// Runs `body` holding a permit.
    func withPermit<T: Sendable>(_ body: () async -> T) async -> T {
        await acquire()
        defer { release() }
        return await body()
    }
}
