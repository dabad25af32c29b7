/// A stream's canonical status vocabulary (DESIGN §2). WMS-specific codes reach these through a
/// ``StatusMapping``.
public protocol CanonicalStatus: RawRepresentable, CaseIterable, Hashable, Sendable, CustomStringConvertible
where RawValue == String, AllCases == [Self] {
    /// The stream whose `status` field uses this vocabulary.
    static var stream: EventStream { get }
}

extension CanonicalStatus {
    /// The canonical name, e.g. `quality-hold`.
    public var description: String { rawValue }

    /// The canonical names in declaration order, joined for messages: "packed, shipped, ...".
    static var canonicalNameList: String {
        allCases.map(\.rawValue).joined(separator: ", ")
    }
}

/// The canonical status of stock in an inventory delta.
public enum InventoryStatus: String, CanonicalStatus {
    case available
    case allocated
    case quarantined
    case inTransit = "in-transit"
    case damaged
    case qualityHold = "quality-hold"

    public static var stream: EventStream { .inventory }
}

/// Why stock moved, in an inventory delta.
public enum InventoryReason: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case receipt
    case pick
    case putaway
    case adjustment
    case cycleCount = "cycle-count"
    case transfer
    case `return`

    public var description: String { rawValue }
}

/// The canonical status of a shipment event.
public enum ShipmentStatus: String, CanonicalStatus {
    case packed
    case shipped
    case delivered
    case cancelled

    public static var stream: EventStream { .shipment }
}

/// The canonical status of a receipt event.
public enum ReceiptStatus: String, CanonicalStatus {
    case received
    case putawayComplete = "putaway-complete"

    public static var stream: EventStream { .receipt }
}
