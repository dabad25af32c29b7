import CSQLite
import Foundation
import Logging
import ThreadNaming

/// One SQLite database connection, owned by a thread of its own.
///
/// SQLite's calls block (on disk I/O and, with the busy timeout, on other processes' locks), so
/// none of them may run on Swift's cooperative thread pool. Every call on the connection happens
/// on this database's dedicated thread; ``read(_:)`` and ``write(_:)`` queue a closure for it and
/// suspend the caller until it ran. The queue is served in order, so the closures never overlap:
/// a write's read-modify-write needs no further locking inside this process, and `BEGIN
/// IMMEDIATE` serialises it against other processes on the same file.
///
/// Group commit: writes queued back to back share one transaction (up to 256), each inside its
/// own savepoint, so one `COMMIT`, one fsync with `synchronous = FULL`, makes a whole group
/// durable. From the caller's side a write is still all or nothing and durable when it returns
/// (docs/store.md, "Group commit").
///
/// ```swift
/// let database = try await SQLiteDatabase(path: "/var/lib/app/store.db")
/// try await database.migrate([SQLiteMigration(id: "1-items", sql: "CREATE TABLE items (...)")])
/// let count = try await database.write { db in
///     try db.execute("INSERT INTO items (name) VALUES (?)", [.text(name)])
///     return try db.queryFirst("SELECT count(*) AS n FROM items")?.int64("n") ?? 0
/// }
/// await database.close()
/// ```
public final class SQLiteDatabase: Sendable {
    /// How the connection is set up when it opens.
    public struct Configuration: Sendable, Hashable {
        /// `PRAGMA synchronous`: how often SQLite waits for the disk.
        public enum Synchronous: String, Sendable, Hashable {
            /// Every commit is on disk before it returns, even across a power loss.
            case full = "FULL"
            /// In WAL mode a commit survives a crash of the process but may be lost on power loss.
            case normal = "NORMAL"
        }

        /// How long a statement waits for another connection's lock before failing with
        /// `SQLITE_BUSY`. Default 5 seconds.
        public var busyTimeout: Duration
        /// Write-ahead logging: readers in other processes do not block the writer. Default on.
        public var writeAheadLog: Bool
        /// Default ``Synchronous/full``.
        public var synchronous: Synchronous
        /// Enforce `FOREIGN KEY` constraints. Default on.
        public var foreignKeys: Bool

        public init(
            busyTimeout: Duration = .seconds(5),
            writeAheadLog: Bool = true,
            synchronous: Synchronous = .full,
            foreignKeys: Bool = true
        ) {
            self.busyTimeout = busyTimeout
            self.writeAheadLog = writeAheadLog
            self.synchronous = synchronous
            self.foreignKeys = foreignKeys
        }
    }

    /// The file, or `:memory:`.
    public let path: String
    public let configuration: Configuration
    let logger: Logger
    private let thread: SQLiteThread

    /// Opens (creating when missing) the database at `path` on a new thread and sets it up: WAL,
    /// busy timeout, `synchronous`, foreign keys. Throws ``SQLiteError/Code-swift.struct/open``
    /// when the file cannot be opened or set up.
    public init(
        path: String,
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "whsync.sqlite")
    ) async throws(SQLiteError) {
        self.path = path
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "sqlite.path"] = "\(path)"
        self.logger = logger
        let thread = SQLiteThread()
        self.thread = thread
        let opened: Result<Void, SQLiteError> = await withCheckedContinuation { continuation in
            thread.start(name: "sqlite \((path as NSString).lastPathComponent)") {
                do throws(SQLiteError) {
                    let connection = try SQLiteConnection.open(path: path, configuration: configuration)
                    continuation.resume(returning: .success(()))
                    return connection
                } catch {
                    continuation.resume(returning: .failure(error))
                    return nil
                }
            }
        }
        try opened.get()
        logger.debug("opened SQLite database")
    }

    deinit {
        thread.close(completion: nil)
    }

    // MARK: Work

    /// Runs `body` on the connection's thread inside a transaction (one consistent snapshot for
    /// all its statements) and returns its result. Do not write in it: use ``write(_:)``.
    ///
    /// Reads join group commits like writes: one queued after writes sees them and is answered
    /// once they are committed, so a read never returns what is not yet durable.
    @discardableResult
    public func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        // Queued like a write so that it joins a group commit instead of splitting it: a read
        // between two writes would otherwise cost each of them a COMMIT (an fsync) of its own.
        try await submitToGroup(readOnly: true, body)
    }

    /// Runs `body` on the connection's thread inside a `BEGIN IMMEDIATE` … `COMMIT` transaction
    /// and returns its result once that transaction is committed (on disk, with
    /// `synchronous = FULL`). When `body` throws, or the commit fails, nothing of it is applied
    /// and the error is rethrown.
    ///
    /// Writes queued together share the transaction (group commit), each in its own savepoint:
    /// `body` must not run `BEGIN`, `COMMIT`, `ROLLBACK` or `RELEASE` of savepoints it did not
    /// create. A failing `COMMIT` fails every write of the group with its error.
    @discardableResult
    public func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await submitToGroup(readOnly: false, body)
    }

    private func submitToGroup<T: Sendable>(
        readOnly: Bool, _ body: @escaping @Sendable (SQLiteConnection) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let write = SQLiteThread.Write(
                isReadOnly: readOnly,
                run: { connection in
                    let value = try body(connection)
                    // Resumed only once the group's COMMIT returned.
                    return { continuation.resume(returning: value) }
                },
                fail: { error in continuation.resume(throwing: error) }
            )
            if !thread.submit(.write(write)) {
                continuation.resume(throwing: Self.closedError)
            }
        }
    }

    /// The most writes one group commit takes, so that the first of them waits for a bounded
    /// number of others before its `COMMIT`.
    static let maximumWritesPerGroup = 256

    /// Runs `body` on the connection's thread with no transaction around it, for statements that
    /// cannot run inside one (`VACUUM`, `PRAGMA wal_checkpoint`). Each statement commits by itself.
    @discardableResult
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await perform(body)
    }

    /// Jobs queued and not yet taken by the thread (tests use it to line up a group).
    var queuedJobCount: Int { thread.queuedJobCount }

    /// Closes the connection once the work queued before this call has run. Later calls of
    /// ``read(_:)`` and ``write(_:)`` throw ``SQLiteError/Code-swift.struct/closed``. Calling it
    /// again waits for the same close.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            thread.close { continuation.resume() }
        }
        logger.debug("closed SQLite database")
    }

    private func perform<T: Sendable>(_ work: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = thread.submit(.single { connection in
                guard let connection else {
                    continuation.resume(throwing: Self.closedError)
                    return
                }
                continuation.resume(with: Result { try work(connection) })
            })
            if !accepted {
                continuation.resume(throwing: Self.closedError)
            }
        }
    }

    static var closedError: SQLiteError {
        SQLiteError(code: .closed, message: "the database was closed before the work ran")
    }
}

extension SQLiteConnection {
    static func open(path: String, configuration: SQLiteDatabase.Configuration) throws(SQLiteError) -> SQLiteConnection {
        var handle: OpaquePointer?
        // NOMUTEX: the connection is only ever used from its one thread.
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let result = sqlite3_open_v2(path, &handle, flags, nil)
        guard result == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? SQLiteError.resultName(result)
            sqlite3_close_v2(handle)
            throw SQLiteError(code: .open, resultCode: result, message: "\(message) (path \(path))")
        }
        let connection = SQLiteConnection(handle: handle)
        do throws(SQLiteError) {
            sqlite3_extended_result_codes(handle, 1)
            let timeout = configuration.busyTimeout.components
            let milliseconds = timeout.seconds * 1000 + timeout.attoseconds / 1_000_000_000_000_000
            sqlite3_busy_timeout(handle, Int32(clamping: milliseconds))
            if configuration.writeAheadLog {
                let mode = try connection.queryFirst("PRAGMA journal_mode = WAL")?[0].stringValue?.lowercased()
                // An in-memory database keeps "memory"; a file that cannot do WAL is an error.
                guard mode == "wal" || mode == "memory" else {
                    throw SQLiteError(
                        code: .open,
                        message: "could not switch to WAL (journal mode is \(mode ?? "unknown")) (path \(path))",
                        sql: "PRAGMA journal_mode = WAL"
                    )
                }
            }
            try connection.executeScript("PRAGMA synchronous = \(configuration.synchronous.rawValue)")
            try connection.executeScript("PRAGMA foreign_keys = \(configuration.foreignKeys ? "ON" : "OFF")")
        } catch {
            connection.close()
            throw SQLiteError(code: .open, resultCode: error.resultCode, message: error.message, sql: error.sql)
        }
        return connection
    }
}

/// The thread that owns a connection and runs the jobs queued for it, in order.
///
/// `jobs`, `state` and `closeWaiters` are guarded by `condition`; `connection` is touched only
/// by the thread itself.
final class SQLiteThread: @unchecked Sendable {
    /// Work for the thread: a job that runs by itself, or a write that may share a transaction
    /// with the writes queued right before and after it.
    enum Job: Sendable {
        case single(@Sendable (SQLiteConnection?) -> Void)
        case write(Write)
    }

    /// A ``SQLiteDatabase/write(_:)`` (or a ``SQLiteDatabase/read(_:)``) as the thread sees it.
    struct Write: Sendable {
        /// A read: it joins a group like a write (seeing the group's earlier writes, answered
        /// after its COMMIT), but a group of reads alone takes no write lock.
        let isReadOnly: Bool
        /// Runs the caller's body inside the group's transaction; returns what resumes the
        /// caller, called only after the group committed.
        let run: @Sendable (SQLiteConnection) throws -> @Sendable () -> Void
        /// Resumes the caller with an error: its body threw, the group failed, or the connection
        /// is closed.
        let fail: @Sendable (any Error) -> Void
    }

    private enum State {
        case running
        /// The close job is queued: no further jobs are taken.
        case closing
        case closed
    }

    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var state = State.running
    private var closeWaiters: [@Sendable () -> Void] = []

    // MARK: Thread-confined
    private var connection: SQLiteConnection?

    /// Starts the thread; it calls `open` first and serves jobs with what it returned (`nil`
    /// fails every job as closed).
    func start(name: String, open: @escaping @Sendable () -> SQLiteConnection?) {
        // Linux caps thread names at 15 bytes; the name is set from inside the thread, as
        // corelibs Foundation does not carry a name set before `start()` over intact.
        let threadName = String(name.utf8.prefix(15)) ?? "sqlite"
        let thread = Thread { [self] in
            nameCurrentThread(threadName)
            connection = open()
            if connection == nil {
                close(completion: nil)
            }
            serve()
        }
        thread.start()
    }

    var queuedJobCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return jobs.count
    }

    /// Queues `job`; `false` when the connection is closing or closed (the job is not run).
    func submit(_ job: Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard case .running = state else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Queues the close after every job already queued; `completion` runs once it is closed.
    func close(completion: (@Sendable () -> Void)?) {
        condition.lock()
        switch state {
        case .closed:
            condition.unlock()
            completion?()
            return
        case .closing:
            if let completion { closeWaiters.append(completion) }
        case .running:
            if let completion { closeWaiters.append(completion) }
            state = .closing
            jobs.append(.single { [self] _ in finishClose() })
            condition.signal()
        }
        condition.unlock()
    }

    private func finishClose() {
        connection?.close()
        connection = nil
        condition.lock()
        state = .closed
        let waiters = closeWaiters
        closeWaiters = []
        condition.unlock()
        for waiter in waiters { waiter() }
    }

    private func serve() {
        while true {
            condition.lock()
            while jobs.isEmpty {
                if case .closed = state {
                    condition.unlock()
                    return
                }
                condition.wait()
            }
            let batch = jobs
            jobs = []
            condition.unlock()
            var index = batch.startIndex
            while index < batch.endIndex {
                switch batch[index] {
                case .single(let job):
                    job(connection)
                    index += 1
                case .write:
                    // Consecutive reads and writes form a group; any other job ends it, so
                    // `withConnection` never runs inside a group's transaction.
                    var group: [Write] = []
                    while index < batch.endIndex, group.count < SQLiteDatabase.maximumWritesPerGroup,
                          case .write(let write) = batch[index]
                    {
                        group.append(write)
                        index += 1
                    }
                    runGroup(group)
                }
            }
        }
    }

    /// Runs `group` in one `BEGIN IMMEDIATE` … `COMMIT`, each write inside its own savepoint, and
    /// resumes every caller only after the `COMMIT` returned (or failed).
    private func runGroup(_ group: [Write]) {
        guard let connection else {
            for write in group { write.fail(SQLiteDatabase.closedError) }
            return
        }
        // Resumptions, deferred until the group's fate is known.
        var released: [(resume: @Sendable () -> Void, fail: @Sendable (any Error) -> Void)] = []
        var outcomes: [@Sendable () -> Void] = []
        var isOpen = false

        /// The transaction is gone (or must go): the writes released into it are lost with it.
        func abandon(_ error: any Error) {
            if connection.isInTransaction {
                try? connection.control("ROLLBACK")
            }
            outcomes += released.map { write in { write.fail(error) } }
            released = []
            isOpen = false
        }

        for (offset, write) in group.enumerated() {
            if !isOpen {
                do {
                    // The write lock up front when a write is to come: a read transaction that
                    // upgrades later can fail with SQLITE_BUSY_SNAPSHOT.
                    let writes = group[offset...].contains { !$0.isReadOnly }
                    try connection.control(writes ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED")
                    isOpen = true
                } catch {
                    // Busy past the timeout or I/O: trying again for each write would wait as long
                    // again, so the rest of the group fails now.
                    outcomes += group[offset...].map { write in { write.fail(error) } }
                    break
                }
            }
            do {
                try connection.control("SAVEPOINT whsync_write")
            } catch {
                abandon(error)
                outcomes.append { write.fail(error) }
                continue
            }
            do {
                let resume = try write.run(connection)
                // A deferred foreign key left open would fail the shared COMMIT, and with it the
                // whole group: it fails this write alone, as its own COMMIT would have.
                if connection.hasUnresolvedForeignKeys {
                    throw SQLiteError(
                        code: .transaction, resultCode: 787, message: "FOREIGN KEY constraint failed", sql: "COMMIT"
                    )
                }
                try connection.control("RELEASE whsync_write")
                released.append((resume, write.fail))
            } catch {
                // Undo this write alone; if SQLite already rolled back the whole transaction
                // (I/O error, disk full) or the savepoint is gone, the group so far is lost.
                do {
                    guard connection.isInTransaction else { throw error }
                    try connection.control("ROLLBACK TO whsync_write")
                    try connection.control("RELEASE whsync_write")
                } catch let lost {
                    abandon(lost)
                }
                outcomes.append { write.fail(error) }
            }
        }
        if isOpen {
            do {
                try connection.control("COMMIT")
                outcomes += released.map(\.resume)
                released = []
            } catch {
                abandon(error)
            }
        }
        for outcome in outcomes { outcome() }
    }
}
