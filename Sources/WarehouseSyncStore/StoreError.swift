/// A failure of a ``WorkerStore``. The description holds no payloads (ids and SQL at most), so
/// it is safe to log.
public struct StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What failed. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The key's version moved since the snapshot: nothing was written; read again, decide
        /// again.
        public static let versionConflict = Code("version conflict")
        /// The change contradicts itself or the stored data (a caller bug): nothing was written.
        public static let invalidChange = Code("invalid change")
        /// The row asked for (a dead letter's id) does not exist: nothing was written.
        public static let notFound = Code("not found")
        /// The database cannot be reached or used right now (closed, locked, I/O): retry later.
        public static let unavailable = Code("store unavailable")
        /// Stored data cannot be read back (an unknown state, a malformed fingerprint).
        public static let corrupt = Code("stored data is corrupt")
        /// The schema could not be brought up to date.
        public static let migration = Code("migration failed")

        public var description: String { name }
    }

    public let code: Code
    public let message: String
    /// For ``Code-swift.struct/unavailable``: the database is down, locked, full or unreachable
    /// for now, and waiting will see it answer again. `false` for an unavailability that waiting
    /// does not mend (a refused login, a permission, a read-only file, an error the store does
    /// not know). Always `false` for the other codes.
    public let isOutage: Bool

    /// `isOutage` counts only with ``Code-swift.struct/unavailable``.
    public init(code: Code, message: String, isOutage: Bool = false) {
        self.code = code
        self.message = message
        self.isOutage = isOutage && code == .unavailable
    }

    public var description: String { "\(code): \(message)" }
}
