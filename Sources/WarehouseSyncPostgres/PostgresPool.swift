import Foundation
import Logging
import PostgresNIO
import Synchronization
import WarehouseSyncStore

/// postgres-nio's `PostgresClient` (a connection pool), and the rules every store operation
/// follows on it: a bounded wait for a connection, retries with backoff when the connection is
/// lost, errors mapped to ``StoreError`` without payloads.
///
/// Who runs the client is ``PostgresWorkerStore/ClientLifetime``: a long-running process runs it
/// as a service of its `ServiceGroup` (``runClient()``); a short-lived command lets the pool run
/// it in a task of its own, which ``close()`` ends.
final class PostgresPool: Sendable {
    let configuration: PostgresStoreConfiguration
    let logger: Logger
    private let client: PostgresClient
    /// The pool's own task running the client (``PostgresWorkerStore/ClientLifetime/ownTask``);
    /// nil when the caller runs it (``runClient()``).
    private let runTask: Task<Void, Never>?
    private let closed = Mutex(false)
    /// Open once the client runs (or the pool closed): operations wait for it before they lease,
    /// so that none asks a client nobody runs yet.
    private let started = StartGate()

    init(configuration: PostgresStoreConfiguration, logger: Logger, lifetime: PostgresWorkerStore.ClientLifetime) {
        self.configuration = configuration
        self.logger = logger
        let client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: logger)
        self.client = client
        switch lifetime {
        case .ownTask:
            runTask = Task { await client.run() }
            started.open()
        case .runByCaller:
            runTask = nil
        }
    }

    var isClosed: Bool { closed.withLock { $0 } }

    /// Runs the client until it stops: at a graceful shutdown of the `ServiceGroup` this runs in
    /// (postgres-nio's `PostgresClient` is a ServiceLifecycle `Service`) or on cancellation. Only
    /// for ``PostgresWorkerStore/ClientLifetime/runByCaller``, once. The pool counts as closed
    /// afterwards.
    func runClient() async {
        precondition(runTask == nil, "runClient() is for a pool whose caller runs the client")
        started.open()
        await client.run()
        markClosed()
    }

    /// Operations fail as unavailable from now on (those waiting for the client to start, too).
    /// Returns whether the pool was open.
    @discardableResult
    func markClosed() -> Bool {
        let wasClosed = closed.withLock { closed in
            defer { closed = true }
            return closed
        }
        started.open()
        return !wasClosed
    }

    /// Stops the pool: its connections close, operations in flight and later fail as unavailable.
    /// When the caller runs the client (``runClient()``), only stops taking operations: the
    /// client stops with the caller's service.
    func close() async {
        guard markClosed(), let runTask else { return }
        runTask.cancel()
        // The pool's shutdown has been seen to hang now and then (a connection it waits for);
        // do not let a short-lived command wait for it: wait a bounded time, then leave it.
        let outcome = FirstOutcome<Bool>()
        Task {
            await runTask.value
            outcome.settle(.success(true))
        }
        Task {
            try? await Task.sleep(for: .seconds(5))
            outcome.settle(.success(false))
        }
        if (try? await outcome.value()) != true {
            logger.warning("the PostgreSQL connection pool did not stop within 5 s; leaving it to finish", metadata: ["store": "\(configuration)"])
        }
    }

    /// Opened once; ``wait()`` returns at once after that.
    private final class StartGate: Sendable {
        private struct State {
            var isOpen = false
            var waiters: [CheckedContinuation<Void, Never>] = []
        }

        private let state = Mutex(State())

        func open() {
            let waiters = state.withLock { state in
                state.isOpen = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }

        func wait() async {
            await withCheckedContinuation { continuation in
                let isOpen = state.withLock { state in
                    if !state.isOpen { state.waiters.append(continuation) }
                    return state.isOpen
                }
                if isOpen { continuation.resume() }
            }
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
                return try await withLease(answerTimeout: replay == .idempotent ? Self.replayableAnswerTimeout : Self.operationTimeout, body)
            } catch {
                if let noAnswer = error as? NoAnswer {
                    // Lost with its connection, as far as anyone can tell: like a lost COMMIT answer.
                    failure = Failure(
                        error: StoreError(
                            code: .unavailable,
                            message: "\(operation): no answer from \(configuration) within \(noAnswer.after) (the operation may have applied)"
                        ),
                        retryable: true, commitOutcomeUnknown: true
                    )
                } else if error is LeaseTimedOut {
                    failure = Failure(
                        error: StoreError(
                            code: .unavailable,
                            message: "\(operation): no connection to \(configuration) within \(configuration.leaseTimeout)"
                        ),
                        retryable: false, isOutage: true
                    )
                } else {
                    failure = Self.classify(error, operation: operation, transientCode: transientCode)
                }
            }
            let mayReplay = failure.retryable && (replay == .idempotent || !failure.commitOutcomeUnknown)
            guard mayReplay, attempt < configuration.attempts, !Task.isCancelled, !isClosed else {
                let error = failure.error
                throw StoreError(code: error.code, message: error.message, isOutage: failure.isOutage)
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

    /// A leased operation got no answer in time: its connection is taken for lost.
    struct NoAnswer: Error {
        let after: Duration
    }

    /// How long a leased operation may go without an answer before it counts as a lost
    /// connection: far above any statement of the store's, which take milliseconds.
    static let operationTimeout: Duration = .seconds(60)
    /// The same for an operation that may run twice (``Replay/idempotent``): it is replayed on a
    /// fresh lease, so it need not wait as long. After the server ended its connections,
    /// postgres-nio has been seen to leave a query on one of them unanswered.
    static let replayableAnswerTimeout: Duration = .seconds(10)

    /// `client.withConnection`, but failing after `leaseTimeout` when no connection could be had
    /// (the server is down: the pool keeps reconnecting and would hold the request for a minute).
    /// Once `body` started the lease timeout no longer applies; only `answerTimeout` without an
    /// answer ends it, with ``NoAnswer`` (the operation may have applied, or may still be running
    /// on its connection: ``run(_:replay:transientCode:_:)`` replays only idempotent ones).
    ///
    /// The wait for a connection runs in a task of its own that the timeout leaves behind rather
    /// than awaits: postgres-nio's pool has been seen to keep such a request forever after the
    /// server ended every connection (a test stalled on it), and a task group would wait for it.
    /// Left behind, it either gets a connection later (and gives it back unused: the race is
    /// lost) or ends with the pool.
    private func withLease<T: Sendable>(
        answerTimeout: Duration, _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        let race = LeaseRace()
        let client = self.client
        let logger = self.logger
        let timeout = configuration.leaseTimeout
        let outcome = FirstOutcome<T>()
        let started = self.started
        let pool = self
        let work = Task {
            do {
                // Until the client runs (or the pool closed); the lease timeout bounds the wait.
                await started.wait()
                guard !pool.isClosed else { throw StoreError(code: .unavailable, message: "the store is closed") }
                let value = try await client.withConnection { connection in
                    guard race.leased() else { throw LeaseTimedOut() }
                    return try await body(connection, logger)
                }
                outcome.settle(.success(value))
            } catch {
                outcome.settle(.failure(error))
            }
        }
        let timer = Task {
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            if race.timedOut() {
                work.cancel()
                outcome.settle(.failure(LeaseTimedOut()))
                return
            }
            // Leased: the body runs. Only an answer that never comes ends it, as a lost connection
            // whose COMMIT may have applied.
            guard (try? await Task.sleep(for: answerTimeout)) != nil else { return }
            work.cancel()
            outcome.settle(.failure(NoAnswer(after: answerTimeout)))
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await outcome.value()
        } onCancel: {
            work.cancel()
        }
    }

    /// The first result handed in, awaited once: whichever of racing tasks settles first wins.
    private final class FirstOutcome<T: Sendable>: Sendable {
        private struct State {
            var result: Result<T, any Error>?
            var waiter: CheckedContinuation<T, any Error>?
        }

        private let state = Mutex(State())

        func settle(_ result: Result<T, any Error>) {
            let waiter: CheckedContinuation<T, any Error>? = state.withLock { state in
                guard state.result == nil else { return nil }
                state.result = result
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(with: result)
        }

        func value() async throws -> T {
            try await withCheckedThrowingContinuation { continuation in
                let ready: Result<T, any Error>? = state.withLock { state in
                    if let result = state.result { return result }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
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
        /// Waiting mends it (the server is down, restarting, unreachable or out of connections):
        /// the error thrown says so (``StoreError/isOutage``).
        var isOutage: Bool

        init(error: StoreError, retryable: Bool, commitOutcomeUnknown: Bool = false, isOutage: Bool? = nil) {
            self.error = error
            self.retryable = retryable
            self.commitOutcomeUnknown = commitOutcomeUnknown
            self.isOutage = isOutage ?? retryable
        }
    }

    static func classify(_ error: any Error, operation: String, transientCode: StoreError.Code) -> Failure {
        switch error {
        case let error as StoreError:
            return Failure(error: error, retryable: false, isOutage: error.isOutage)
        case let error as CommitOutcomeUnknown:
            var failure = classify(error.underlying, operation: operation, transientCode: transientCode)
            failure.commitOutcomeUnknown = true
            failure.error = StoreError(code: failure.error.code, message: failure.error.message + " (during COMMIT: it may have applied)")
            return failure
        case is LeaseTimedOut:
            return Failure(
                error: StoreError(code: .unavailable, message: "\(operation): no connection in time"), retryable: false, isOutage: true)
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
        if let problem = PostgresStoreConfiguration.tlsFailure(error) {
            return Failure(error: StoreError(code: .unavailable, message: "\(operation): \(problem)"), retryable: false)
        }
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

/// A statement of a round (the store's hot path) run as a named prepared statement: PostgreSQL
/// parses it once per connection instead of at every execution (it still plans each run:
/// ``PostgresStoreConfiguration/sessionParameters``; bench/README, "Prepared round statements").
/// Its text is the one its `query` interpolation makes, whatever the values:
/// `sql` is that interpolation run once on placeholders, so the text and its binds cannot drift.
protocol RoundStatement {
    static var sql: String { get }
}

/// A ``RoundStatement``'s query, as PostgresNIO runs a prepared statement (prepared on a
/// connection at its first use there, by name).
struct PreparedRound<Statement: RoundStatement>: PostgresPreparedStatement {
    typealias Row = PostgresRow
    static var name: String { "whsync." + String(describing: Statement.self) }
    static var sql: String { Statement.sql }
    let bindings: PostgresBindings

    init(_ query: PostgresQuery) {
        assert(query.sql == Statement.sql, "\(Statement.self)'s text depends on its values")
        bindings = query.binds
    }

    func makeBindings() -> PostgresBindings { bindings }
    func decodeRow(_ row: PostgresRow) -> PostgresRow { row }
}

extension PostgresConnection {
    /// Runs the prepared `statement` and returns all its rows.
    func rows<Statement>(_ statement: PreparedRound<Statement>, _ logger: Logger) async throws -> [PostgresRandomAccessRow] {
        var rows: [PostgresRandomAccessRow] = []
        for try await row in try await execute(statement, logger: logger) { rows.append(row.makeRandomAccess()) }
        return rows
    }

    /// Runs the prepared `statement` and discards what it returns.
    func execute<Statement>(_ statement: PreparedRound<Statement>, _ logger: Logger) async throws {
        for try await _ in try await execute(statement, logger: logger) {}
    }

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
