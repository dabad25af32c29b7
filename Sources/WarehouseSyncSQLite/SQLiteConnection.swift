import CSQLite

/// One open SQLite connection. It lives on its ``SQLiteDatabase``'s thread and is handed to the
/// closures of ``SQLiteDatabase/read(_:)`` and ``SQLiteDatabase/write(_:)``: use it only inside
/// them, never keep it.
///
/// Statements run through ``execute(_:_:)`` and ``query(_:_:)`` are prepared once and cached by
/// their SQL text, so write the SQL with `?` parameters and pass the values as bindings.
public final class SQLiteConnection {
    /// Prepared statements beyond this many are finalized (all of them) before a new one is cached.
    static let statementCacheLimit = 128

    let handle: OpaquePointer
    private var statements: [String: SQLiteStatement] = [:]

    init(handle: OpaquePointer) {
        self.handle = handle
    }

    // MARK: Statements

    /// Runs one statement and returns the number of rows it changed. Rows it returns are ignored.
    @discardableResult
    public func execute(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) -> Int {
        let statement = try prepare(sql)
        return try statement.execute(bindings)
    }

    /// Runs one statement and returns all of its rows.
    public func query(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) -> [SQLiteRow] {
        let statement = try prepare(sql)
        return try statement.query(bindings)
    }

    /// Runs one statement and returns its first row, or `nil` when it returns none.
    public func queryFirst(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) -> SQLiteRow? {
        let statement = try prepare(sql)
        return try statement.query(bindings, limit: 1).first
    }

    /// Runs several `;`-separated statements without bindings (schema scripts, pragmas).
    public func executeScript(_ sql: String) throws(SQLiteError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let result = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        guard result == SQLITE_OK else {
            let message = errorMessage.map { String(cString: $0) } ?? lastErrorMessage
            sqlite3_free(errorMessage)
            throw SQLiteError(code: .exec, resultCode: sqlite3_extended_errcode(handle), message: message, sql: sql)
        }
    }

    /// The statement for `sql`, prepared once and then reused. It must be one statement.
    public func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let cached = statements[sql] {
            return cached
        }
        if statements.count >= Self.statementCacheLimit {
            statements.removeAll()
        }
        let statement = try SQLiteStatement(connection: self, sql: sql)
        statements[sql] = statement
        return statement
    }

    // MARK: State

    /// The rowid of the last row inserted through this connection.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Rows changed by the last `INSERT`, `UPDATE` or `DELETE`.
    public var changes: Int { Int(sqlite3_changes64(handle)) }

    /// `true` while a transaction is open.
    public var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// `true` while a deferred foreign key constraint is violated: a `COMMIT` now would fail.
    var hasUnresolvedForeignKeys: Bool {
        var current: Int32 = 0
        var highwater: Int32 = 0
        sqlite3_db_status(handle, SQLITE_DBSTATUS_DEFERRED_FKS, &current, &highwater, 0)
        return current != 0
    }

    // MARK: Internals

    var lastErrorMessage: String { String(cString: sqlite3_errmsg(handle)) }

    func error(_ code: SQLiteError.Code, sql: String?) -> SQLiteError {
        SQLiteError(code: code, resultCode: sqlite3_extended_errcode(handle), message: lastErrorMessage, sql: sql)
    }

    /// Runs `body` inside the savepoint `name`, within the current transaction: when `body`
    /// throws, what it wrote is undone and the transaction goes on. Rethrows `body`'s error; when
    /// SQLite has already rolled back the whole transaction (I/O error, disk full), that is said
    /// by ``isInTransaction`` turning false.
    public func withSavepoint<T>(_ name: String, _ body: () throws -> T) throws -> T {
        try control("SAVEPOINT \(name)")
        do {
            let value = try body()
            try control("RELEASE \(name)")
            return value
        } catch {
            if isInTransaction {
                try? control("ROLLBACK TO \(name)")
                try? control("RELEASE \(name)")
            }
            throw error
        }
    }

    /// Runs `sql` through `sqlite3_exec` with the error code `code` (transaction control).
    func control(_ sql: String, code: SQLiteError.Code = .transaction) throws(SQLiteError) {
        let result = sqlite3_exec(handle, sql, nil, nil, nil)
        guard result == SQLITE_OK else { throw error(code, sql: sql) }
    }

    /// Finalizes every statement and closes the handle; the connection is unusable afterwards.
    func close() {
        statements.removeAll()
        sqlite3_close_v2(handle)
    }
}

/// A prepared statement of a ``SQLiteConnection``, reused across runs: each run resets it and
/// binds its parameters anew.
public final class SQLiteStatement {
    public let sql: String
    private let handle: OpaquePointer
    /// Strong: the connection's cache holds its statements, and ``SQLiteConnection/close()``
    /// empties that cache, which breaks the cycle.
    private let connection: SQLiteConnection

    init(connection: SQLiteConnection, sql: String) throws(SQLiteError) {
        var statement: OpaquePointer?
        var tail: UnsafePointer<CChar>?
        let result = sql.withCString { text in
            let result = sqlite3_prepare_v3(connection.handle, text, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, &tail)
            // Anything but whitespace and `;` after the first statement would be silently ignored.
            if result == SQLITE_OK, let tail, !String(cString: tail).allSatisfy({ $0.isWhitespace || $0 == ";" }) {
                return SQLITE_MISUSE
            }
            return result
        }
        guard result == SQLITE_OK, let statement else {
            if result == SQLITE_MISUSE {
                sqlite3_finalize(statement)
                throw SQLiteError(code: .misuse, message: "more than one statement: use executeScript for scripts", sql: sql)
            }
            throw connection.error(.prepare, sql: sql)
        }
        self.sql = sql
        self.handle = statement
        self.connection = connection
    }

    deinit {
        sqlite3_finalize(handle)
    }

    /// Runs the statement to completion; returns the number of rows changed.
    @discardableResult
    public func execute(_ bindings: [SQLiteValue] = []) throws(SQLiteError) -> Int {
        try bind(bindings)
        defer { reset() }
        while true {
            let result = sqlite3_step(handle)
            switch result {
            case SQLITE_DONE: return connection.changes
            case SQLITE_ROW: continue
            default: throw connection.error(.step, sql: sql)
            }
        }
    }

    /// Runs the statement and returns its rows (at most `limit`).
    public func query(_ bindings: [SQLiteValue] = [], limit: Int = .max) throws(SQLiteError) -> [SQLiteRow] {
        try bind(bindings)
        defer { reset() }
        let columnCount = sqlite3_column_count(handle)
        let columns = (0..<columnCount).map { String(cString: sqlite3_column_name(handle, $0)) }
        var rows: [SQLiteRow] = []
        while rows.count < limit {
            let result = sqlite3_step(handle)
            switch result {
            case SQLITE_DONE: return rows
            case SQLITE_ROW:
                let values = (0..<columnCount).map { column(at: $0) }
                rows.append(SQLiteRow(columns: columns, values: values))
            default: throw connection.error(.step, sql: sql)
            }
        }
        return rows
    }

    private func column(at index: Int32) -> SQLiteValue {
        switch sqlite3_column_type(handle, index) {
        case SQLITE_INTEGER:
            return .integer(sqlite3_column_int64(handle, index))
        case SQLITE_FLOAT:
            return .real(sqlite3_column_double(handle, index))
        case SQLITE_TEXT:
            guard let text = sqlite3_column_text(handle, index) else { return .text("") }
            let count = Int(sqlite3_column_bytes(handle, index))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(handle, index))
            guard count > 0, let bytes = sqlite3_column_blob(handle, index) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: bytes, count: count)))
        default:
            return .null
        }
    }

    private func bind(_ bindings: [SQLiteValue]) throws(SQLiteError) {
        let expected = Int(sqlite3_bind_parameter_count(handle))
        guard bindings.count == expected else {
            throw SQLiteError(
                code: .bind,
                resultCode: SQLITE_RANGE,
                message: "\(bindings.count) values bound to a statement with \(expected) parameters",
                sql: sql
            )
        }
        for (offset, value) in bindings.enumerated() {
            let index = Int32(offset + 1)
            let result: Int32
            switch value {
            case .integer(let integer):
                result = sqlite3_bind_int64(handle, index, integer)
            case .real(let real):
                result = sqlite3_bind_double(handle, index, real)
            case .text(let text):
                var text = text
                result = text.withUTF8 { bytes in
                    guard let base = bytes.baseAddress, bytes.count > 0 else {
                        return sqlite3_bind_text(handle, index, "", 0, nil)
                    }
                    guard let length = Int32(exactly: bytes.count) else { return SQLITE_TOOBIG }
                    return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                        whsync_sqlite3_bind_text_transient(handle, index, $0, length)
                    }
                }
            case .blob(let bytes):
                result = bytes.withUnsafeBytes { raw in
                    // A zero-length blob is bound as an empty blob, not as NULL.
                    guard let base = raw.baseAddress, raw.count > 0 else { return sqlite3_bind_zeroblob(handle, index, 0) }
                    guard let length = Int32(exactly: raw.count) else { return SQLITE_TOOBIG }
                    return whsync_sqlite3_bind_blob_transient(handle, index, base, length)
                }
            case .null:
                result = sqlite3_bind_null(handle, index)
            }
            guard result == SQLITE_OK else {
                let error = result == SQLITE_TOOBIG
                    ? SQLiteError(code: .bind, resultCode: result, message: "parameter \(index) is too large", sql: sql)
                    : connection.error(.bind, sql: sql)
                reset()
                throw error
            }
        }
    }

    private func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }
}
