/// One result row: the values in column order, readable by index or by column name.
///
/// The typed accessors throw a ``SQLiteError`` with code ``SQLiteError/Code-swift.struct/decoding``
/// that names the column and what it held, so a schema mistake surfaces as a clear error.
public struct SQLiteRow: Sendable, Hashable {
    /// The result's column names, shared by all rows of one query.
    public let columns: [String]
    public let values: [SQLiteValue]

    public init(columns: [String], values: [SQLiteValue]) {
        precondition(columns.count == values.count, "SQLiteRow: \(columns.count) columns, \(values.count) values")
        self.columns = columns
        self.values = values
    }

    public subscript(index: Int) -> SQLiteValue { values[index] }

    /// The value of the first column named `name`, or `nil` when the result has no such column.
    public subscript(name: String) -> SQLiteValue? {
        columns.firstIndex(of: name).map { values[$0] }
    }

    /// The integer in column `name`; throws when the column is missing, NULL or not an integer.
    public func int64(_ name: String) throws(SQLiteError) -> Int64 {
        let value = try self.value(name)
        guard case .integer(let integer) = value else { throw mismatch(name, expected: "INTEGER", found: value) }
        return integer
    }

    /// The integer in column `name`, `nil` for NULL; throws when missing or of another type.
    public func optionalInt64(_ name: String) throws(SQLiteError) -> Int64? {
        let value = try self.value(name)
        switch value {
        case .null: return nil
        case .integer(let integer): return integer
        default: throw mismatch(name, expected: "INTEGER or NULL", found: value)
        }
    }

    /// The text in column `name`; throws when the column is missing, NULL or not text.
    public func string(_ name: String) throws(SQLiteError) -> String {
        let value = try self.value(name)
        guard case .text(let text) = value else { throw mismatch(name, expected: "TEXT", found: value) }
        return text
    }

    /// The text in column `name`, `nil` for NULL; throws when missing or of another type.
    public func optionalString(_ name: String) throws(SQLiteError) -> String? {
        let value = try self.value(name)
        switch value {
        case .null: return nil
        case .text(let text): return text
        default: throw mismatch(name, expected: "TEXT or NULL", found: value)
        }
    }

    /// The bytes in column `name` (an empty blob may come back as NULL from SQLite, and reads as
    /// empty); throws when the column is missing or holds another type.
    public func blob(_ name: String) throws(SQLiteError) -> [UInt8] {
        let value = try self.value(name)
        switch value {
        case .blob(let bytes): return bytes
        case .null: return []
        default: throw mismatch(name, expected: "BLOB", found: value)
        }
    }

    /// The integer in column `name` read as a flag: non-zero is `true`.
    public func bool(_ name: String) throws(SQLiteError) -> Bool {
        try int64(name) != 0
    }

    private func value(_ name: String) throws(SQLiteError) -> SQLiteValue {
        guard let value = self[name] else {
            throw SQLiteError(code: .decoding, message: "no column '\(name)' in the result (columns: \(columns.joined(separator: ", ")))")
        }
        return value
    }

    private func mismatch(_ name: String, expected: String, found: SQLiteValue) -> SQLiteError {
        SQLiteError(code: .decoding, message: "column '\(name)' holds \(found.typeName), expected \(expected)")
    }
}
