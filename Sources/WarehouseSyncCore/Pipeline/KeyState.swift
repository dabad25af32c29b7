import Foundation

/// Everything the sequence gate remembers about one sequencing key (`warehouse/sku`,
/// `warehouse/shipmentId`, `warehouse/receiptId`): what the store persists per key, and all it
/// needs to persist for ordering.
///
/// It is enough because everything below ``nextExpected`` is settled for good (posted,
/// business-rejected, dead-lettered, stale or skipped: per-event facts live in the dedup
/// records, not here; only the skipped ranges are kept, in ``skipped``), and everything at or
/// above it that has arrived is in ``held``. The sequences in between that are not held are, by
/// definition, the gap.
///
/// Invariant kept by ``SequenceGate``: every held sequence is ≥ ``nextExpected``.
public struct KeyState: Sendable, Hashable {
    /// An event that arrived ahead of its turn. It was acked, so the store keeps its message
    /// (body and headers) beside this entry until it is settled.
    public struct HeldEvent: Sendable, Hashable {
        public var eventId: String
        /// When it was held: the gap timeout runs from the oldest of these.
        public var heldAt: Date

        public init(eventId: String, heldAt: Date) {
            self.eventId = eventId
            self.heldAt = heldAt
        }
    }

    /// Why a key stopped releasing events until an operator decides.
    public enum ParkReason: String, Sendable, Hashable, CustomStringConvertible {
        /// The oldest held event waited ``SequencingPolicy/gapTimeout`` for a missing sequence.
        case gapTimeout = "gap-timeout"

        public var description: String { rawValue }
    }

    /// Since when, and why, a key is parked.
    public struct Parking: Sendable, Hashable {
        public var since: Date
        public var reason: ParkReason

        public init(since: Date, reason: ParkReason) {
            self.since = since
            self.reason = reason
        }
    }

    /// The sequence whose turn it is; the key's position is `nextExpected - 1`.
    public internal(set) var nextExpected: Int64
    /// Events waiting for their turn, by sequence.
    public internal(set) var held: [Int64: HeldEvent]
    /// Set while the key is parked: nothing is released until an operator skips the gap.
    public internal(set) var parked: Parking?
    /// An event let through for its key's turn and not settled yet.
    public struct Claim: Sendable, Hashable {
        public var eventId: String
        public var sequence: Int64

        public init(eventId: String, sequence: Int64) {
            self.eventId = eventId
            self.sequence = sequence
        }
    }

    /// The event let through for ``nextExpected`` and not settled yet (being posted, in a
    /// delayed retry, or interrupted by a crash): the key's claim on its turn, made durable before
    /// the post, so that another `eventId` under the same sequence (a WMS re-emitting an event
    /// under a new id) is a conflict however many replicas race on it, and never posted too.
    /// Held events need none: their entry in ``held`` is their claim.
    public internal(set) var claim: Claim?

    /// Who holds the key's turn: the claim's `eventId` when the claim is for ``nextExpected``. A
    /// claim for another sequence is stale (a process that knows no claims moved the key on) and
    /// binds nothing.
    public var claimant: String? {
        guard let claim, claim.sequence == nextExpected else { return nil }
        return claim.eventId
    }
    /// The gaps an operator gave up on (`whsync gaps skip`), oldest first, at most
    /// ``maxSkippedRanges``: an event of one of them that arrives late is dead-lettered for a
    /// person instead of being dropped as stale.
    public internal(set) var skipped: [ClosedRange<Int64>]

    /// How many skipped gaps a key remembers; the oldest are forgotten first.
    public static let maxSkippedRanges = 16

    /// A state as the store persisted it.
    public init(
        nextExpected: Int64, held: [Int64: HeldEvent] = [:], parked: Parking? = nil, skipped: [ClosedRange<Int64>] = [],
        claim: Claim? = nil
    ) {
        self.nextExpected = nextExpected
        self.claim = claim
        self.held = held
        self.parked = parked
        self.skipped = skipped
    }

    /// When the event held longest was held, if any event is held: the gap timeout runs from it.
    public var oldestHeldAt: Date? { held.values.map(\.heldAt).min() }

    /// The lowest held sequence, if any event is held.
    public var lowestHeld: Int64? { held.keys.min() }

    /// The sequences the key is waiting for: from ``nextExpected`` up to just below the lowest
    /// held one. `nil` when nothing is held or the lowest held event is the one in turn.
    public var missingSequences: ClosedRange<Int64>? {
        guard let lowest = lowestHeld, lowest > nextExpected else { return nil }
        return nextExpected...(lowest - 1)
    }

    /// Whether `sequence` lies in a gap an operator skipped.
    public func wasSkipped(_ sequence: Int64) -> Bool {
        skipped.contains { $0.contains(sequence) }
    }
}
