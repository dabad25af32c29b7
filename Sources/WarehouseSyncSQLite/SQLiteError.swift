import CSQLite

/// A failure of SQLite or of this wrapper. The description names what failed, SQLite's result
/// code and message, and the SQL text (never the bound values), so it is safe to log.
public struct SQLiteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What failed. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case open = "could not open the database"
            case prepare = "could not prepare a statement"
            case bind = "could not bind a parameter"
            case step = "statement failed"
            case exec = "script failed"
            case transaction = "transaction control failed"
            case migration = "migration failed"
            case decoding = "unexpected result"
            case closed = "the database is closed"
            case misuse = "misuse"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// `sqlite3_open_v2` or the connection's setup (WAL, busy timeout, pragmas) failed.
        public static let open = Code(.open)
        /// The SQL does not compile (syntax, unknown table or column).
        public static let prepare = Code(.prepare)
        /// A parameter could not be bound (wrong count, value too large).
        public static let bind = Code(.bind)
        /// Running a statement failed: constraint violations, `SQLITE_BUSY`, I/O errors.
        public static let step = Code(.step)
        /// A multi-statement script failed.
        public static let exec = Code(.exec)
        /// `BEGIN`, `COMMIT` or `ROLLBACK` failed.
        public static let transaction = Code(.transaction)
        /// The migrations are inconsistent with the database (see the message).
        public static let migration = Code(.migration)
        /// A row did not hold what the caller asked for (missing column, wrong type).
        public static let decoding = Code(.decoding)
        /// The database was closed before the work ran.
        public static let closed = Code(.closed)
        /// The wrapper was used against its rules (several statements where one is expected).
        public static let misuse = Code(.misuse)

        public var description: String { base.rawValue }
    }

    public let code: Code
    /// SQLite's extended result code (`SQLITE_CONSTRAINT_UNIQUE` is 2067), or 0 when the error
    /// did not come from SQLite.
    public let resultCode: Int32
    /// SQLite's message (`sqlite3_errmsg`) or the wrapper's own explanation.
    public let message: String
    /// The SQL that failed, when there was one.
    public let sql: String?

    public init(code: Code, resultCode: Int32 = 0, message: String, sql: String? = nil) {
        self.code = code
        self.resultCode = resultCode
        self.message = message
        self.sql = sql
    }

    /// SQLite's primary result code (the low 8 bits of ``resultCode``).
    public var primaryResultCode: Int32 { resultCode & 0xff }

    /// A `UNIQUE`, `NOT NULL`, `CHECK`, `PRIMARY KEY` or foreign key constraint failed.
    public var isConstraintViolation: Bool { primaryResultCode == SQLITE_CONSTRAINT }

    /// Another connection held a lock for longer than the busy timeout.
    public var isBusy: Bool { primaryResultCode == SQLITE_BUSY || primaryResultCode == SQLITE_LOCKED }

    /// "SQLite statement failed (2067 UNIQUE constraint failed: items.name) in `INSERT INTO items …`".
    public var description: String {
        var text = "SQLite \(code)"
        if resultCode != 0 {
            text += " (\(resultCode) \(Self.resultName(resultCode))): \(message)"
        } else {
            text += ": \(message)"
        }
        if let sql {
            text += " in `\(Self.abbreviate(sql))`"
        }
        return text
    }

    /// SQLite's English name of a result code ("constraint failed", "database is locked").
    static func resultName(_ code: Int32) -> String {
        String(cString: sqlite3_errstr(code))
    }

    /// The SQL on one line, cut at 240 characters.
    static func abbreviate(_ sql: String) -> String {
        let oneLine = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        guard oneLine.count > 240 else { return oneLine }
        return String(oneLine.prefix(240)) + "…"
    }
}
