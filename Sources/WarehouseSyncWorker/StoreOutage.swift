import Logging
import Synchronization
import WarehouseSyncStore

/// Waits out a store outage (SQLite locked or its disk full, PostgreSQL down or unreachable:
/// ``StoreError/isOutage``) for a worker: the operations that meet it wait in place, with
/// backoff, for as long as it lasts, instead of handing their messages back to the broker, where
/// every hand-back counts towards the queue's delivery limit and a long outage would end in dead
/// letters. Readiness reports it meanwhile (``isOngoing``), and one line is logged when the first
/// operation meets it and one when the last got through. An unavailability that waiting does not
/// mend (a refused login, a read-only file) is thrown at once: the caller's own bounded retry
/// and the delivery limit make it visible. A caller with no delivery limit to fall back on (the
/// replay worker: a dead letter handed back too often is dropped) waits those out too
/// (``waitOut(maximumDelay:waitingOut:isStopping:_:)`` with ``anyUnavailability``).
final class StoreOutage: Sendable {
    private let waiting = Mutex(0)
    private let logger: Logger
    /// Called with `true` when the first operation meets the outage, `false` when the last got
    /// through (for a gauge).
    private let onChange: @Sendable (Bool) -> Void

    init(logger: Logger, onChange: @escaping @Sendable (Bool) -> Void = { _ in }) {
        self.logger = logger
        self.onChange = onChange
    }

    /// Whether some operation is waiting for the store right now.
    var isOngoing: Bool { waiting.withLock { $0 > 0 } }

    /// The errors ``waitOut(maximumDelay:waitingOut:isStopping:_:)`` waits out by default.
    static let outages: @Sendable (StoreError) -> Bool = { $0.isOutage }
    /// Every unavailability, also those that only a person mends (a refused login, a read-only
    /// file, a permission): for callers whose messages must not go back to the broker.
    static let anyUnavailability: @Sendable (StoreError) -> Bool = { $0.code == .unavailable }

    /// Runs `operation` until it does not fail with an error `waitingOut` accepts (by default an
    /// outage), sleeping 50 ms, doubling to `maximumDelay`, between attempts. Any other error is
    /// thrown at once. Once `isStopping` says so, the awaited error is thrown instead of another
    /// attempt, and an operation that starts while others wait for the store does not try at all
    /// (each attempt can take the store's whole timeout): the caller hands its message back, the
    /// process is going away.
    func waitOut<T: Sendable>(
        maximumDelay: Duration = .seconds(2), waitingOut: (StoreError) -> Bool = outages, isStopping: () -> Bool,
        _ operation: () async throws -> T
    ) async throws -> T {
        if isStopping(), isOngoing {
            throw StoreError(code: .unavailable, message: "stopping while the store is unavailable", isOutage: true)
        }
        var delay = Duration.milliseconds(50)
        var isWaiting = false
        defer { if isWaiting { leave() } }
        while true {
            do {
                return try await operation()
            } catch let error as StoreError where waitingOut(error) {
                guard !isStopping() else { throw error }
                if !isWaiting {
                    isWaiting = true
                    enter(error)
                }
                try await Task.sleep(for: delay)
                guard !isStopping() else { throw error }
            }
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
            onChange(true)
        }
    }

    private func leave() {
        let last = waiting.withLock { count in
            count -= 1
            return count == 0
        }
        if last {
            logger.notice("store available again")
            onChange(false)
        }
    }
}
