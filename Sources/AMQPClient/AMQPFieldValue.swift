import CRabbitMQ

/// A value in an AMQP field table (queue arguments, message headers, binding arguments).
public enum AMQPFieldValue: Sendable, Hashable {
    case string(String)
    case bytes([UInt8])
    /// Encoded as a signed 64-bit integer ('l'), which RabbitMQ treats as equivalent to the
    /// other integer types when comparing queue arguments.
    case int(Int64)
    case bool(Bool)
    case double(Double)
    /// Seconds since the Unix epoch.
    case timestamp(UInt64)
    case table(AMQPTable)
    case array([AMQPFieldValue])
    case void
}

public typealias AMQPTable = [String: AMQPFieldValue]

extension AMQPFieldValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension AMQPFieldValue {
    public var stringValue: String? {
        switch self {
        case .string(let s): s
        case .bytes(let b): String(decoding: b, as: UTF8.self)
        default: nil
        }
    }

    public var intValue: Int64? {
        if case .int(let i) = self { return i }
        return nil
    }
}

// MARK: - Conversion from librabbitmq's representation

extension AMQPFieldValue {
    /// The deepest nesting of tables and arrays read from the wire; deeper values read as
    /// ``void``. Headers come from whoever published the message, and what the workers keep of
    /// them (held messages, dead letters) must stay small and cheap to walk.
    public static let maxNestingDepth = 8

    init(_ value: amqp_field_value_t, depth: Int = 0) {
        let nested = depth + 1
        switch Int(value.kind) {
        case Int(UInt8(ascii: "t")): self = .bool(value.value.boolean != 0)
        case Int(UInt8(ascii: "b")): self = .int(Int64(value.value.i8))
        case Int(UInt8(ascii: "B")): self = .int(Int64(value.value.u8))
        case Int(UInt8(ascii: "s")): self = .int(Int64(value.value.i16))
        case Int(UInt8(ascii: "u")): self = .int(Int64(value.value.u16))
        case Int(UInt8(ascii: "I")): self = .int(Int64(value.value.i32))
        case Int(UInt8(ascii: "i")): self = .int(Int64(value.value.u32))
        case Int(UInt8(ascii: "l")): self = .int(value.value.i64)
        case Int(UInt8(ascii: "L")): self = .int(Int64(truncatingIfNeeded: value.value.u64))
        case Int(UInt8(ascii: "f")): self = .double(Double(value.value.f32))
        case Int(UInt8(ascii: "d")): self = .double(value.value.f64)
        case Int(UInt8(ascii: "D")):
            let d = value.value.decimal
            var scaled = Double(d.value)
            for _ in 0..<d.decimals { scaled /= 10 }
            self = .double(scaled)
        case Int(UInt8(ascii: "S")): self = .string(String(amqpBytes: value.value.bytes))
        case Int(UInt8(ascii: "x")): self = .bytes([UInt8](amqpBytes: value.value.bytes))
        case Int(UInt8(ascii: "T")): self = .timestamp(value.value.u64)
        case Int(UInt8(ascii: "F")) where nested > Self.maxNestingDepth, Int(UInt8(ascii: "A")) where nested > Self.maxNestingDepth:
            self = .void
        case Int(UInt8(ascii: "F")): self = .table(AMQPTable(value.value.table, depth: nested))
        case Int(UInt8(ascii: "A")):
            let array = value.value.array
            var items: [AMQPFieldValue] = []
            items.reserveCapacity(Int(array.num_entries))
            for i in 0..<Int(array.num_entries) { items.append(AMQPFieldValue(array.entries[i], depth: nested)) }
            self = .array(items)
        default: self = .void
        }
    }
}

extension Dictionary where Key == String, Value == AMQPFieldValue {
    /// A table read from the wire; `depth` counts the tables and arrays around it.
    init(_ table: amqp_table_t, depth: Int = 0) {
        self.init(minimumCapacity: Int(table.num_entries))
        for i in 0..<Int(table.num_entries) {
            let entry = table.entries[i]
            self[String(amqpBytes: entry.key)] = AMQPFieldValue(entry.value, depth: depth)
        }
    }
}

extension String {
    init(amqpBytes bytes: amqp_bytes_t) {
        guard bytes.len > 0, let base = bytes.bytes else {
            self = ""
            return
        }
        self = String(decoding: UnsafeRawBufferPointer(start: base, count: bytes.len), as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    init(amqpBytes bytes: amqp_bytes_t) {
        guard bytes.len > 0, let base = bytes.bytes else {
            self = []
            return
        }
        self = Array(UnsafeRawBufferPointer(start: base, count: bytes.len))
    }
}

// MARK: - Conversion to librabbitmq's representation

/// Owns the C memory behind the `amqp_bytes_t` and `amqp_table_t` values handed to one
/// librabbitmq call, so nothing dangles (a Swift string's buffer does not outlive its scope).
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit {
        for pointer in allocations { pointer.deallocate() }
    }

    private func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: alignment)
        allocations.append(pointer)
        return pointer
    }

    func bytes(_ string: String) -> amqp_bytes_t {
        var copy = string
        return copy.withUTF8 { bytes(UnsafeRawBufferPointer($0)) }
    }

    func bytes(_ buffer: UnsafeRawBufferPointer) -> amqp_bytes_t {
        guard buffer.count > 0 else { return amqp_bytes_t(len: 0, bytes: nil) }
        let pointer = allocate(byteCount: buffer.count, alignment: 1)
        pointer.copyMemory(from: buffer.baseAddress!, byteCount: buffer.count)
        return amqp_bytes_t(len: buffer.count, bytes: pointer)
    }

    /// A NUL-terminated copy for the C functions that take `const char *`.
    func cString(_ string: String) -> UnsafePointer<CChar> {
        let utf8 = Array(string.utf8CString)
        let pointer = allocate(byteCount: utf8.count, alignment: 1).bindMemory(to: CChar.self, capacity: utf8.count)
        pointer.update(from: utf8, count: utf8.count)
        return UnsafePointer(pointer)
    }

    func table(_ table: AMQPTable) -> amqp_table_t {
        guard !table.isEmpty else { return amqp_empty_table }
        let entries = allocate(
            byteCount: MemoryLayout<amqp_table_entry_t>.stride * table.count,
            alignment: MemoryLayout<amqp_table_entry_t>.alignment
        ).bindMemory(to: amqp_table_entry_t.self, capacity: table.count)
        // Sorted so the encoding is deterministic (tests, and equal arguments look equal on the wire).
        for (i, key) in table.keys.sorted().enumerated() {
            (entries + i).initialize(to: amqp_table_entry_t(key: bytes(key), value: value(table[key]!)))
        }
        return amqp_table_t(num_entries: Int32(table.count), entries: entries)
    }

    func value(_ value: AMQPFieldValue) -> amqp_field_value_t {
        switch value {
        case .string(let s): return whsync_field_utf8(bytes(s))
        case .bytes(let b): return b.withUnsafeBytes { whsync_field_bytes(bytes($0)) }
        case .int(let i): return whsync_field_i64(i)
        case .bool(let b): return whsync_field_bool(b ? 1 : 0)
        case .double(let d): return whsync_field_f64(d)
        case .timestamp(let t): return whsync_field_timestamp(t)
        case .table(let t): return whsync_field_table(table(t))
        case .array(let items):
            guard !items.isEmpty else { return whsync_field_array(amqp_array_t(num_entries: 0, entries: nil)) }
            let entries = allocate(
                byteCount: MemoryLayout<amqp_field_value_t>.stride * items.count,
                alignment: MemoryLayout<amqp_field_value_t>.alignment
            ).bindMemory(to: amqp_field_value_t.self, capacity: items.count)
            for (i, item) in items.enumerated() { (entries + i).initialize(to: self.value(item)) }
            return whsync_field_array(amqp_array_t(num_entries: Int32(items.count), entries: entries))
        case .void: return whsync_field_void()
        }
    }
}

/// Encodes a table to the AMQP wire format and decodes it back through librabbitmq; used by
/// tests to check that what we hand to the library is what the broker will read.
public func amqpTableRoundTrip(_ table: AMQPTable) throws(AMQPError) -> AMQPTable {
    let arena = CArena()
    var cTable = arena.table(table)
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    var offset = 0
    let encoded = buffer.withUnsafeMutableBytes { raw -> Int32 in
        amqp_encode_table(amqp_bytes_t(len: raw.count, bytes: raw.baseAddress), &cTable, &offset)
    }
    guard encoded == AMQP_STATUS_OK.rawValue else {
        throw AMQPError(.protocolError, "cannot encode table: \(String(cString: amqp_error_string2(encoded)))")
    }
    var pool = amqp_pool_t()
    init_amqp_pool(&pool, 4096)
    defer { empty_amqp_pool(&pool) }
    var decoded = amqp_table_t()
    var readOffset = 0
    let status = buffer.withUnsafeMutableBytes { raw -> Int32 in
        amqp_decode_table(amqp_bytes_t(len: offset, bytes: raw.baseAddress), &pool, &decoded, &readOffset)
    }
    guard status == AMQP_STATUS_OK.rawValue else {
        throw AMQPError(.protocolError, "cannot decode table: \(String(cString: amqp_error_string2(status)))")
    }
    return AMQPTable(decoded)
}
