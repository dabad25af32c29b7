import Foundation
import Logging
import PostgresNIO
import Synchronization
import WarehouseSyncStore

/// postgres-nio's `PostgresClient` (a connection pool) run in a task this object owns, and the
/// rules every store operation follows on it: a bounded wait for a connection, retries with
/// backoff when the connection is lost, errors mapped to ``StoreError`` without payloads.
final class PostgresPool: Sendable {
    let configuration: PostgresStoreConfiguration
    let logger: Logger
    private let client: PostgresClient
    private let runTask: Task<Void, Never>
    private let closed = Mutex(false)

    init(configuration: PostgresStoreConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: logger)
        self.client = client
        runTask = Task { await client.run() }
    }

    var isClosed: Bool { closed.withLock { $0 } }

    /// Stops the pool: its connections close, operations in flight and later fail as unavailable.
    func close() async {
        let wasClosed = closed.withLock { closed in
            defer { closed = true }
            return closed
        }
        guard !wasClosed else { return }
        runTask.cancel()
        // The pool's shutdown has been seen to hang now and then (a connection it waits for);
        // do not let it hold the caller: wait a bounded time, then leave it to finish alone.
        let runTask = self.runTask
        let finished = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let once = ResumeOnce(continuation)
            Task {
                await runTask.value
                once.resume(true)
            }
            Task {
                try? await Task.sleep(for: .seconds(5))
                once.resume(false)
            }
        }
        if !finished {
            logger.warning("the PostgreSQL connection pool did not stop within 5 s; leaving it to finish", metadata: ["store": "\(configuration)"])
        }
    }

    /// Resumes a continuation with the first of several outcomes.
    private final class ResumeOnce: Sendable {
        private let continuation: Mutex<CheckedContinuation<Bool, Never>?>

        init(_ continuation: CheckedContinuation<Bool, Never>) {
            self.continuation = Mutex(continuation)
        }

        func resume(_ value: Bool) {
            let continuation = self.continuation.withLock { stored in
                defer { stored = nil }
                return stored
            }
            continuation?.resume(returning: value)
        }
    }

    /// Whether an operation may run again after its connection was lost.
    enum Replay {
        /// Running it twice has the effect of running it once (reads, upserts that compare, the
        /// version-checked key commit): retried whenever the connection was lost.
        case idempotent
        /// Retried only when it certainly did not commit (lost before the `COMMIT` was sent).
        /// Only for bodies that write inside ``PostgresConnection/transaction(_:_:_:)``: a lone
        /// statement in autocommit mode whose answer was lost looks like any lost connection.
        case onlyIfNotCommitted
    }

    /// Runs `body` on a pooled connection. A lost connection (or a serialization failure or
    /// deadlock, which roll the transaction back) is retried up to `attempts` times with
    /// backoff; what remains is a ``StoreError`` (`transientCode` for serialization failures
    /// and deadlocks that keep happening).
    func run<T: Sendable>(
        _ operation: String,
        replay: Replay = .idempotent,
        transientCode: StoreError.Code = .unavailable,
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws(StoreError) -> T {
        var attempt = 1
        while true {
            guard !isClosed else {
                throw StoreError(code: .unavailable, message: "\(operation): the store is closed")
            }
            let failure: Failure
            do {
                return try await withLease(body)
            } catch {
                if error is LeaseTimedOut {
                    failure = Failure(
                        error: StoreError(
                            code: .unavailable,
                            message: "\(operation): no connection to \(configuration) within \(configuration.leaseTimeout)"
                        ),
                        retryable: false
                    )
                } else {
                    failure = Self.classify(error, operation: operation, transientCode: transientCode)
                }
            }
            let mayReplay = failure.retryable && (replay == .idempotent || !failure.commitOutcomeUnknown)
            guard mayReplay, attempt < configuration.attempts, !Task.isCancelled, !isClosed else {
                throw failure.error
            }
            let delay = configuration.delay(beforeRetry: attempt)
            logger.warning(
                "store operation failed, retrying",
                metadata: [
                    "store.operation": "\(operation)", "store.attempt": "\(attempt)", "store.error": "\(failure.error.message)",
                    "store.retryIn": "\(delay)",
                ]
            )
            try? await Task.sleep(for: delay)
            attempt += 1
        }
    }

    /// Decides, once, whether a lease came first or the timeout.
    private final class LeaseRace: Sendable {
        private enum State {
            case waiting, leased, timedOut
        }

        private let state = Mutex(State.waiting)

        /// True when the lease came first (the operation may run).
        func leased() -> Bool { settle(.leased) }
        /// True when the timeout came first (the operation must not run).
        func timedOut() -> Bool { settle(.timedOut) }

        private func settle(_ outcome: State) -> Bool {
            state.withLock { state in
                guard case .waiting = state else { return false }
                state = outcome
                return true
            }
        }
    }

    struct LeaseTimedOut: Error {}

    /// `client.withConnection`, but failing after `leaseTimeout` when no connection could be had
    /// (the server is down: the pool keeps reconnecting and would hold the request for a minute).
    /// Once `body` started it is never interrupted by the timeout.
    private func withLease<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        let race = LeaseRace()
        let client = self.client
        let logger = self.logger
        let timeout = configuration.leaseTimeout
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await client.withConnection { connection in
                    guard race.leased() else { throw LeaseTimedOut() }
                    return try await body(connection, logger)
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                if race.timedOut() { throw LeaseTimedOut() }
                return nil
            }
            while let result = try await group.next() {
                if let value = result {
                    group.cancelAll()
                    return value
                }
            }
            throw LeaseTimedOut()
        }
    }

    // MARK: Errors

    /// The COMMIT was sent but its answer was lost with the connection: it may have applied.
    struct CommitOutcomeUnknown: Error {
        let underlying: any Error
    }

    struct Failure {
        var error: StoreError
        var retryable: Bool
        var commitOutcomeUnknown = false
    }

    static func classify(_ error: any Error, operation: String, transientCode: StoreError.Code) -> Failure {
        switch error {
        case let error as StoreError:
            return Failure(error: error, retryable: false)
        case let error as CommitOutcomeUnknown:
            var failure = classify(error.underlying, operation: operation, transientCode: transientCode)
            failure.commitOutcomeUnknown = true
            failure.error = StoreError(code: failure.error.code, message: failure.error.message + " (during COMMIT: it may have applied)")
            return failure
        case is LeaseTimedOut:
            return Failure(error: StoreError(code: .unavailable, message: "\(operation): no connection in time"), retryable: false)
        case let error as PSQLError:
            return classify(error, operation: operation, transientCode: transientCode)
        case let error as PostgresDecodingError:
            return Failure(
                error: StoreError(
                    code: .corrupt, message: "\(operation): cannot read column \(error.columnName) as \(error.targetType)"
                ),
                retryable: false
            )
        case is CancellationError:
            return Failure(error: StoreError(code: .unavailable, message: "\(operation): cancelled"), retryable: false)
        case let error where String(reflecting: type(of: error)).hasSuffix(".ConnectionPoolError"):
            // The pool is shut down, or could not connect for a long time (its circuit breaker):
            // waiting longer is the caller's decision.
            return Failure(error: StoreError(code: .unavailable, message: "\(operation): connection pool: \(error)"), retryable: false)
        default:
            // NIO channel and I/O errors: the connection is gone.
            return Failure(
                error: StoreError(code: .unavailable, message: "\(operation): connection failed (\(type(of: error)))"),
                retryable: true
            )
        }
    }

    private static func classify(_ error: PSQLError, operation: String, transientCode: StoreError.Code) -> Failure {
        switch error.code {
        case .server:
            return classifyServer(error, operation: operation, transientCode: transientCode)
        case .serverClosedConnection, .connectionError, .uncleanShutdown, .clientClosedConnection:
            var message = "\(operation): connection lost (\(error.code))"
            if let underlying = error.underlying { message += ": \(type(of: underlying))" }
            return Failure(error: StoreError(code: .unavailable, message: message), retryable: true)
        case .poolClosed:
            return Failure(error: StoreError(code: .unavailable, message: "\(operation): the store is closed"), retryable: false)
        case .queryCancelled:
            return Failure(error: StoreError(code: .unavailable, message: "\(operation): cancelled"), retryable: false)
        case .messageDecodingFailure, .unexpectedBackendMessage, .invalidCommandTag:
            return Failure(error: StoreError(code: .unavailable, message: "\(operation): protocol error (\(error.code))"), retryable: true)
        default:
            // Authentication and TLS set-up failures, too many parameters: retrying does not help.
            return Failure(error: StoreError(code: .unavailable, message: "\(operation): \(error.code)"), retryable: false)
        }
    }

    /// Server errors by SQLSTATE. The message names the SQLSTATE, table and constraint, and the
    /// server's message except for data exceptions (class 22), whose messages quote the input;
    /// never the detail (which shows the row).
    private static func classifyServer(_ error: PSQLError, operation: String, transientCode: StoreError.Code) -> Failure {
        let info = error.serverInfo
        let state = info?[.sqlState] ?? "?????"
        var message = "\(operation): SQLSTATE \(state)"
        if !state.hasPrefix("22"), let text = info?[.message] { message += " \(text.prefix(300))" }
        if let table = info?[.tableName] { message += " (table \(table)" + (info?[.constraintName].map { ", constraint \($0)" } ?? "") + ")" }
        let stateClass = state.prefix(2)
        switch state {
        case "40001", "40P01":
            // Serialization failure, deadlock: the transaction was rolled back; running it again is safe.
            return Failure(error: StoreError(code: transientCode, message: message), retryable: true)
        case "57P01", "57P02", "57P03", "53300", "53400":
            // Shutting down, crash restart, starting up, too many connections.
            return Failure(error: StoreError(code: .unavailable, message: message), retryable: true)
        default:
            break
        }
        switch stateClass {
        case "08":
            return Failure(error: StoreError(code: .unavailable, message: message), retryable: true)
        case "23", "22":
            return Failure(error: StoreError(code: .invalidChange, message: message), retryable: false)
        case "XX":
            return Failure(error: StoreError(code: .corrupt, message: message), retryable: false)
        default:
            return Failure(error: StoreError(code: .unavailable, message: message), retryable: false)
        }
    }
}

// MARK: Queries

extension PostgresConnection {
    /// Runs `query` and returns all its rows.
    func rows(_ query: PostgresQuery, _ logger: Logger) async throws -> [PostgresRandomAccessRow] {
        try await self.query(query, logger: logger).collect().map { $0.makeRandomAccess() }
    }

    /// Runs `query` and discards what it returns.
    func execute(_ query: PostgresQuery, _ logger: Logger) async throws {
        _ = try await self.query(query, logger: logger).collect()
    }

    /// Runs `body` between `begin` and `COMMIT`; rolls back when it throws. A `COMMIT` whose
    /// answer was lost throws ``PostgresPool/CommitOutcomeUnknown``. A connection whose rollback
    /// failed is closed, so the pool never hands out one stuck in a transaction.
    func transaction<T>(
        _ begin: PostgresQuery = "BEGIN",
        _ logger: Logger,
        _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await execute(begin, logger)
        let value: T
        do {
            value = try await body(self)
        } catch {
            await rollback(logger)
            throw error
        }
        do {
            try await execute("COMMIT", logger)
        } catch let error as PSQLError where error.code == .server {
            // The server refused the COMMIT: the transaction is over, nothing applied.
            await rollback(logger)
            throw error
        } catch {
            try? await close()
            throw PostgresPool.CommitOutcomeUnknown(underlying: error)
        }
        return value
    }

    private func rollback(_ logger: Logger) async {
        do {
            try await execute("ROLLBACK", logger)
        } catch {
            try? await close()
        }
    }
}

extension PostgresRandomAccessRow {
    /// Column `name` as `T`; a value that does not decode is ``StoreError/Code-swift.struct/corrupt``.
    func value<T: PostgresDecodable>(_ name: String, as type: T.Type = T.self) throws -> T {
        try self[name].decode(T.self)
    }

    /// A `bytea` column as bytes.
    func bytes(_ name: String) throws -> [UInt8] {
        let buffer = try self[name].decode(ByteBuffer.self)
        return Array(buffer.readableBytesView)
    }
}
