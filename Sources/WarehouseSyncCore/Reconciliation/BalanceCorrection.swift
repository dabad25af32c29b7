/// `whsync reconcile --correct` (docs/reconciliation.md, "Corrections"): whether a balance
/// difference may be corrected now, and the correction event. Pure: the engine reads the key's
/// state and the earlier corrections from the store, this decides.
///
/// A correction is an ordinary `inventory.delta/1` of the difference (WMS minus ERP), reason
/// `adjustment`, `source` ``source``, with an `eventId` of its own namespace (``eventIdPrefix``)
/// derived from the difference, so that a repeated run computes the same id. DESIGN §2 fixes the
/// key of an inventory delta to `warehouse/sku`, which the WMS numbers: the correction does not
/// take a sequence of its own (it would race the WMS's next event for it, and one of the two
/// would be dropped as stale). It travels instead as a replay of a dead letter the engine stores
/// for it: a vouched replay below its key's position is posted without moving the key. Its
/// `sequence` is the key's position, the WMS event the correction is measured after.
public enum BalanceCorrection {
    /// The `source` of every correction event.
    public static let source = "whsync-reconcile"
    /// Every correction's `eventId` starts with it.
    public static let eventIdPrefix = "reconcile-"

    /// What the store knows about an earlier correction of the same row.
    public struct Previous: Sendable, Hashable {
        public enum State: Sendable, Hashable {
            /// Stored by a run, never published (the run stopped before the broker confirmed).
            case unpublished
            /// Published; not posted yet (in the queue, held, being posted, in a delayed retry).
            case inFlight
            /// The ERP has it.
            case posted
            /// Rejected by the ERP, or out of retries: waits in the dead-letter store.
            case deadLettered
        }

        public var eventId: String
        /// The dead letter that carries it.
        public var letterId: Int64
        /// Its quantity.
        public var quantity: Quantity
        public var state: State

        public init(eventId: String, letterId: Int64, quantity: Quantity, state: State) {
            self.eventId = eventId
            self.letterId = letterId
            self.quantity = quantity
            self.state = state
        }
    }

    /// Why a difference is not corrected now: each says what to do.
    public enum Refusal: Sendable, Hashable, CustomStringConvertible {
        case outOfRange
        case notCanonical(String)
        case noUnit
        case keyNeverPosted
        case keyBusy(String)
        case behindWMS(position: Int64, wms: Int64)
        case previousInFlight(eventId: String)
        case previousDeadLettered(eventId: String, letterId: Int64)
        case previousUnpublishedDiffers(eventId: String, letterId: Int64)

        public var description: String {
            switch self {
            case .outOfRange: "the difference is beyond the range of a quantity"
            case .notCanonical(let status): "the ERP's status '\(status.prefix(32))' is not a canonical inventory status"
            case .noUnit:
                "the snapshot names no uom for this row: a correction needs the SKU's unit (list the row, at 0 when the WMS has none, with its uom)"
            case .keyNeverPosted:
                "no event of this warehouse/sku was posted yet: a correction would take sequence 1 from the WMS; post it in the ERP by hand"
            case .keyBusy(let what): "the key has events in flight (\(what)): the difference may be those; run again later"
            case .behindWMS(let position, let wms):
                "the workers applied sequence \(position) of this key, the snapshot counts up to \(wms): run again when they caught up"
            case .previousInFlight(let eventId): "the correction \(eventId) is not posted yet: run again later"
            case .previousDeadLettered(let eventId, let letterId):
                "the correction \(eventId) was dead-lettered: see `whsync dlq list --key` and the letter of its eventId (stored as \(letterId))"
            case .previousUnpublishedDiffers(let eventId, let letterId):
                "the correction \(eventId) (dead letter \(letterId)) was stored but maybe never published, for another quantity: check `whsync trace \(eventId)`, purge the letter if it never reached a worker, run again"
            }
        }
    }

    public enum Decision: Sendable, Hashable {
        /// Store and publish a new correction.
        case publish(eventId: String, sequence: Int64, quantity: Quantity)
        /// Publish again the correction stored by a run that stopped before publishing it.
        case resume(letterId: Int64, eventId: String)
        case refuse(Refusal)
    }

    /// Decides about `difference` (the snapshot's `uom` and `sequence` of the row beside it),
    /// given its key's state in the store (`nil`: never stored) and the earlier corrections of
    /// the same row.
    public static func decide(
        _ difference: BalanceReconciliation.Difference, uom: String?, wmsSequence: Int64?, key: KeyState?,
        previous: [Previous]
    ) -> Decision {
        guard let missing = difference.expected.subtracting(difference.actual), !missing.isZero else {
            return .refuse(.outOfRange)
        }
        guard InventoryStatus(rawValue: difference.key.status) != nil else {
            return .refuse(.notCanonical(difference.key.status))
        }
        for earlier in previous {
            switch earlier.state {
            case .posted:
                continue
            case .inFlight:
                return .refuse(.previousInFlight(eventId: earlier.eventId))
            case .deadLettered:
                return .refuse(.previousDeadLettered(eventId: earlier.eventId, letterId: earlier.letterId))
            case .unpublished:
                // Its publish may have reached the broker before the run stopped: only the same
                // quantity is safe to send again (a duplicate by its eventId, at worst).
                guard earlier.quantity == missing else {
                    return .refuse(.previousUnpublishedDiffers(eventId: earlier.eventId, letterId: earlier.letterId))
                }
                return .resume(letterId: earlier.letterId, eventId: earlier.eventId)
            }
        }
        guard let key, key.nextExpected > 1 else { return .refuse(.keyNeverPosted) }
        let position = key.nextExpected - 1
        if let lowest = key.lowestHeld { return .refuse(.keyBusy("sequence \(lowest) held")) }
        if key.parked != nil { return .refuse(.keyBusy("parked")) }
        if let claimant = key.claimant { return .refuse(.keyBusy("\(claimant.prefix(64)) being posted")) }
        if let wmsSequence, wmsSequence > position { return .refuse(.behindWMS(position: position, wms: wmsSequence)) }
        guard let uom, !uom.isEmpty else { return .refuse(.noUnit) }
        let generation = previous.filter { $0.state == .posted }.count
        return .publish(
            eventId: eventId(for: difference, position: position, generation: generation), sequence: position, quantity: missing)
    }

    /// `reconcile-` and 32 hex digits of SHA-256 over the row, both quantities, the key's position
    /// and how many corrections of the row were posted before: the same difference at the same
    /// point gets the same id however often a run is repeated; a drift that comes back after a
    /// correction gets a new one.
    public static func eventId(for difference: BalanceReconciliation.Difference, position: Int64, generation: Int) -> String {
        let key = difference.key
        let basis = [
            key.warehouse, key.sku, key.status, difference.expected.description, difference.actual.description,
            String(position), String(generation),
        ].joined(separator: "\u{1F}")
        return eventIdPrefix + String(ContentDigest.sha256Hex(Array(basis.utf8)).prefix(32))
    }

    /// The correction event of a ``Decision/publish(eventId:sequence:quantity:)``.
    public static func event(
        for key: StockBalance.Key, quantity: Quantity, uom: String, eventId: String, sequence: Int64, occurredAt: Timestamp,
        correlationId: String?
    ) -> WarehouseEvent? {
        guard let status = InventoryStatus(rawValue: key.status) else { return nil }
        let header = EventHeader(
            stream: .inventory, eventId: eventId, occurredAt: occurredAt, warehouse: key.warehouse, sequence: sequence,
            correlationId: correlationId, source: source)
        return .inventory(InventoryDelta(header: header, sku: key.sku, quantity: quantity, uom: uom, status: status, reason: .adjustment))
    }
}
