import Synchronization

/// Runs work for one key one piece at a time, in the order it was submitted, and work for
/// different keys concurrently.
///
/// The store alone keeps each key correct (optimistic versions, docs/store.md); the chain avoids
/// needless work inside one process: without it, the second event of a key that arrives while
/// the first is being posted would be held and released through the store, two extra writes for
/// an event that can simply wait its turn. Submission is synchronous, so the consume loop fixes
/// the order in which a key's deliveries are decided.
final class KeyedTaskChain: Sendable {
    private struct Tail {
        let id: UInt64
        let task: Task<Void, Never>
    }

    private struct State {
        var tails: [String: Tail] = [:]
        var nextId: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Starts `body` once everything submitted before for `key` has finished.
    @discardableResult
    func submit(key: String, _ body: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        state.withLock { state in
            state.nextId += 1
            let id = state.nextId
            let previous = state.tails[key]?.task
            let task = Task {
                await previous?.value
                await body()
                self.finished(key: key, id: id)
            }
            state.tails[key] = Tail(id: id, task: task)
            return task
        }
    }

    /// Keys with work running or waiting.
    var activeKeys: Int { state.withLock { $0.tails.count } }

    /// Waits until everything submitted so far has finished (each key's last task ends after all
    /// the key's earlier ones).
    func drain() async {
        while true {
            let tails = state.withLock { $0.tails.values.map(\.task) }
            guard !tails.isEmpty else { return }
            for task in tails { await task.value }
        }
    }

    private func finished(key: String, id: UInt64) {
        state.withLock { state in
            if state.tails[key]?.id == id { state.tails[key] = nil }
        }
    }
}
