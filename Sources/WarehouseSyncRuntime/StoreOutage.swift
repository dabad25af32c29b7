import Logging
import Synchronization
import WarehouseSyncStore

/// Waits out an unavailable store (SQLite locked or full, PostgreSQL unreachable) for a worker:
/// the operations that meet it wait in place, with backoff, for as long as it lasts, instead of
/// handing their messages back to the broker, where every hand-back counts towards the queue's
/// delivery limit and a long outage would end in dead letters. Readiness reports it meanwhile
/// (``isOngoing``), and one line is logged when the first operation meets it and one when the
/// last got through.
final class StoreOutage: Sendable {
    private let waiting = Mutex(0)
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// Whether some operation is waiting for the store right now.
    var isOngoing: Bool { waiting.withLock { $0 > 0 } }

    /// Runs `operation` until it does not fail with ``StoreError/Code-swift.struct/unavailable``,
    /// sleeping 50 ms, doubling to `maximumDelay`, between attempts. Any other error is thrown
    /// at once, and so is the store's error once `isStopping` says so (the caller then hands its
    /// message back: the process is going away).
    func waitOut<T: Sendable>(
        maximumDelay: Duration = .seconds(2), isStopping: () -> Bool, _ operation: () async throws -> T
    ) async throws -> T {
        var delay = Duration.milliseconds(50)
        var isWaiting = false
        defer { if isWaiting { leave() } }
        while true {
            do {
                return try await operation()
            } catch let error as StoreError where error.code == .unavailable {
                guard !isStopping() else { throw error }
                if !isWaiting {
                    isWaiting = true
                    enter(error)
                }
            }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, maximumDelay)
        }
    }

    private func enter(_ error: StoreError) {
        let first = waiting.withLock { count in
            count += 1
            return count == 1
        }
        if first {
            logger.error(
                "store unavailable: messages wait in hand until it answers (readiness: store)", metadata: ["error": "\(error)"])
        }
    }

    private func leave() {
        let last = waiting.withLock { count in
            count -= 1
            return count == 0
        }
        if last {
            logger.notice("store available again")
        }
    }
}
