import WarehouseSyncCore

/// Checks every store makes before its transaction: they need no data, and a caller bug must fail
/// the same way on SQLite and PostgreSQL (``StoreError/Code-swift.struct/invalidChange``).
extension KeyChange {
    public func validate() throws(StoreError) {
        guard expectedVersion >= 0 else {
            throw StoreError(code: .invalidChange, message: "negative expected version \(expectedVersion)")
        }
        if newState == nil, !insertHeld.isEmpty {
            throw StoreError(code: .invalidChange, message: "a held message needs the key's new state, which holds it")
        }
        if Set(insertHeld.map(\.sequence)).count < insertHeld.count {
            throw StoreError(code: .invalidChange, message: "key \(key.prefix(128)): two held messages for one sequence in one change")
        }
        if Set(records.map(\.eventId)).count < records.count {
            throw StoreError(code: .invalidChange, message: "key \(key.prefix(128)): two records of one event in one change")
        }
        for write in records {
            guard let (state, _) = StoredDedupState.split(write.record) else {
                throw StoreError(code: .invalidChange, message: "eventId \(write.eventId.prefix(128)): notSeen is not a record to write")
            }
            if write.documentId != nil, state != .posted {
                throw StoreError(code: .invalidChange, message: "eventId \(write.eventId.prefix(128)): a documentId needs a posted record")
            }
        }
    }
}

extension NewDeadLetter {
    public func validate() throws(StoreError) {
        if eventId?.isEmpty == true {
            throw StoreError(code: .invalidChange, message: "a dead letter's eventId is empty (leave it nil when unknown)")
        }
        if key?.isEmpty == true {
            throw StoreError(code: .invalidChange, message: "a dead letter's key is empty (leave it nil when unknown)")
        }
    }
}
