/// A value bound to a statement parameter or read from a result column.
///
/// Exact amounts are stored as `.integer` (for example micro-units) or `.text`, never as `.real`:
/// `.real` exists only so that a column SQLite hands back as a floating-point number can be read.
public enum SQLiteValue: Sendable, Hashable {
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
    case null
}

extension SQLiteValue {
    /// `.text(value)`, or `.null` for `nil`.
    public init(_ value: String?) {
        self = value.map { .text($0) } ?? .null
    }

    /// `.integer(value)`, or `.null` for `nil`.
    public init(_ value: Int64?) {
        self = value.map { .integer($0) } ?? .null
    }

    /// `.integer(value)`.
    public init(_ value: Int) {
        self = .integer(Int64(value))
    }

    /// `.integer(1)` or `.integer(0)`.
    public init(_ value: Bool) {
        self = .integer(value ? 1 : 0)
    }

    /// `.blob(bytes)`, or `.null` for `nil`.
    public init(blob bytes: [UInt8]?) {
        self = bytes.map { .blob($0) } ?? .null
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The integer of an `.integer`, otherwise `nil`.
    public var int64Value: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The text of a `.text`, otherwise `nil`.
    public var stringValue: String? {
        if case .text(let value) = self { return value }
        return nil
    }

    /// The bytes of a `.blob`, otherwise `nil`.
    public var blobValue: [UInt8]? {
        if case .blob(let value) = self { return value }
        return nil
    }

    /// SQLite's name of the storage class ("INTEGER", "REAL", "TEXT", "BLOB", "NULL"), for messages.
    public var typeName: String {
        switch self {
        case .integer: "INTEGER"
        case .real: "REAL"
        case .text: "TEXT"
        case .blob: "BLOB"
        case .null: "NULL"
        }
    }
}

extension SQLiteValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .integer(value) }
}

extension SQLiteValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
}

extension SQLiteValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension SQLiteValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .integer(value ? 1 : 0) }
}
