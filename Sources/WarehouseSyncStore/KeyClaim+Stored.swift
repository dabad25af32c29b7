import WarehouseSyncCore

/// How ``KeyState/claim`` is stored: two nullable columns, `claimed_by` and `claimed_sequence`,
/// both set or both `NULL`.
public enum StoredClaim {
    public static func claim(eventId: String?, sequence: Int64?) throws(StoreError) -> KeyState.Claim? {
        switch (eventId, sequence) {
        case (nil, nil): return nil
        case (let eventId?, let sequence?): return KeyState.Claim(eventId: eventId, sequence: sequence)
        default: throw StoreError(code: .corrupt, message: "a key's claim has only one of claimed_by and claimed_sequence")
        }
    }
}
