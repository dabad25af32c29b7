import WarehouseSyncCore

/// Reading a stored dead letter's columns back, the same way in every store: a value the code
/// does not know is a ``StoreError/Code-swift.struct/corrupt`` row, named by its id.
public enum StoredDeadLetter {
    public static func reason(_ text: String, id: Int64) throws(StoreError) -> DeadLetterReason {
        guard let reason = DeadLetterReason(rawValue: text) else { throw corrupt(id, "unknown reason '\(text.prefix(32))'") }
        return reason
    }

    public static func status(_ text: String, id: Int64) throws(StoreError) -> DeadLetterStatus {
        guard let status = DeadLetterStatus(rawValue: text) else { throw corrupt(id, "unknown status '\(text.prefix(32))'") }
        return status
    }

    public static func stream(_ text: String?, id: Int64) throws(StoreError) -> EventStream? {
        guard let text else { return nil }
        guard let stream = EventStream(rawValue: text) else { throw corrupt(id, "unknown stream '\(text.prefix(32))'") }
        return stream
    }

    public static func headers(_ json: String, id: Int64) throws(StoreError) -> [String: String] {
        guard let headers = StoredHeaders.headers(json: json) else { throw corrupt(id, "malformed headers") }
        return headers
    }

    private static func corrupt(_ id: Int64, _ what: String) -> StoreError {
        StoreError(code: .corrupt, message: "dead letter \(id) has \(what)")
    }
}
