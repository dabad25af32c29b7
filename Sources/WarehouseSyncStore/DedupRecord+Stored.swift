import WarehouseSyncCore

/// How a ``DedupRecord`` is stored: a state name and the fingerprint's hex.
public enum StoredDedupState: String, Sendable, CaseIterable {
    case posting
    case held
    case posted
    case deadLettered = "dead-lettered"

    /// The state and fingerprint of `record`; `nil` for ``DedupRecord/notSeen``.
    public static func split(_ record: DedupRecord) -> (StoredDedupState, EventFingerprint)? {
        switch record {
        case .notSeen: nil
        case .posting(let fingerprint): (.posting, fingerprint)
        case .held(let fingerprint): (.held, fingerprint)
        case .posted(let fingerprint): (.posted, fingerprint)
        case .deadLettered(let fingerprint): (.deadLettered, fingerprint)
        }
    }

    /// The record stored as `state` and `fingerprintHex`; throws ``StoreError/Code-swift.struct/corrupt``.
    public static func record(state: String, fingerprintHex: String, eventId: String) throws(StoreError) -> DedupRecord {
        guard let fingerprint = EventFingerprint(hex: fingerprintHex) else {
            throw StoreError(code: .corrupt, message: "dedup record of eventId \(eventId.prefix(128)) has a malformed fingerprint")
        }
        switch StoredDedupState(rawValue: state) {
        case .posting: return .posting(fingerprint)
        case .held: return .held(fingerprint)
        case .posted: return .posted(fingerprint)
        case .deadLettered: return .deadLettered(fingerprint)
        case nil:
            throw StoreError(code: .corrupt, message: "dedup record of eventId \(eventId.prefix(128)) has unknown state '\(state.prefix(32))'")
        }
    }
}
