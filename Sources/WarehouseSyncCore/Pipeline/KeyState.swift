import Foundation

/// Everything the sequence gate remembers about one sequencing key (`warehouse/sku`,
/// `warehouse/shipmentId`, `warehouse/receiptId`): what the store persists per key, and all it
/// needs to persist for ordering.
///
/// It is enough because everything below ``nextExpected`` is settled for good (posted,
/// business-rejected, dead-lettered, stale or skipped: per-event facts live in the dedup
/// records, not here; only the skipped ranges are kept, in ``skipped``), and everything at or
/// above it that has arrived is held. The sequences in between that are not held are, by
/// definition, the gap. A key may hold thousands of events; ``held`` is the part of them a
/// decision needs (``HeldEvents``), so that every decision costs the same however many wait.
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
    /// Events waiting for their turn: the lowest of them and the ones a decision asked about.
    public internal(set) var held: HeldEvents
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

    /// A state with all its held events known.
    public init(
        nextExpected: Int64, held: [Int64: HeldEvent], parked: Parking? = nil, skipped: [ClosedRange<Int64>] = [],
        claim: Claim? = nil
    ) {
        self.init(nextExpected: nextExpected, held: HeldEvents(all: held), parked: parked, skipped: skipped, claim: claim)
    }

    /// A state as the store persisted it; `held` as the store read it (a dictionary literal: all
    /// of them).
    public init(
        nextExpected: Int64, held: HeldEvents = [:], parked: Parking? = nil, skipped: [ClosedRange<Int64>] = [],
        claim: Claim? = nil
    ) {
        self.nextExpected = nextExpected
        self.claim = claim
        self.held = held
        self.parked = parked
        self.skipped = skipped
    }

    /// When the event held longest was held, if any event is held: the gap timeout runs from it.
    public var oldestHeldAt: Date? { held.oldestHeldAt }

    /// The lowest held sequence, if any event is held.
    public var lowestHeld: Int64? { held.lowest }

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

/// What a decision knows of a key's held events: the lowest ones (every held event up to
/// ``knownThrough``), any other it asked the store about, whether more are held, and when the
/// longest-held one was held.
///
/// A key may hold 10⁴ events while a gap stays open; reading and rewriting all of them for each
/// decision made such a key quadratic. The gate needs only the held event at the sequence
/// arriving, the one in turn and the next (for a release), the lowest (for a skip) and the
/// oldest time (for a park), so the store reads those (``WorkerStore``: the
/// ``HeldEvents/windowSize`` lowest, the asked sequence, `MIN(held_at)`), and changes go to the
/// store as the one held message inserted or deleted.
public struct HeldEvents: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    /// How many of the lowest held events a store reads: the one in turn and the next, and some
    /// slack for a release chain that goes on without reading again.
    public static let windowSize = 4

    /// The held events known, by sequence.
    public private(set) var known: [Int64: KeyState.HeldEvent]
    /// The sequences the store was asked about beyond the lowest ones: known to be held or not.
    public private(set) var probed: Set<Int64>
    /// Every held event at or below this sequence is in ``known``; `Int64.max` when all are.
    /// When it is less, at least one more event is held above it.
    public private(set) var knownThrough: Int64
    /// When the longest-held event was held; `nil` when nothing is held, or when the gate
    /// settled that event in a view that does not know the next oldest (read the key again).
    public private(set) var oldestHeldAt: Date?

    /// All of a key's held events.
    public init(all: [Int64: KeyState.HeldEvent]) {
        known = all
        probed = []
        knownThrough = .max
        oldestHeldAt = all.values.map(\.heldAt).min()
    }

    public init(dictionaryLiteral elements: (Int64, KeyState.HeldEvent)...) {
        self.init(all: Dictionary(elements, uniquingKeysWith: { first, _ in first }))
    }

    /// What a store read: the `lowest` held events in sequence order (all of them when
    /// `moreAbove` is false, else the ``windowSize`` lowest), the sequences it was asked about
    /// with the event held at each (`nil`: none), and the oldest held time of all of them.
    public init(
        lowest: [(sequence: Int64, event: KeyState.HeldEvent)], moreAbove: Bool,
        asked: [(sequence: Int64, event: KeyState.HeldEvent?)] = [], oldestHeldAt: Date?
    ) {
        known = [:]
        for asked in asked { known[asked.sequence] = asked.event }
        for (sequence, event) in lowest { known[sequence] = event }
        knownThrough = moreAbove ? (lowest.last?.sequence ?? .max) : .max
        probed = knownThrough == .max ? [] : Set(asked.map(\.sequence))
        self.oldestHeldAt = oldestHeldAt
    }

    /// The held event at `sequence`: `nil` when none is held there. Ask only about sequences
    /// the view knows (``isKnown(_:)``).
    public subscript(sequence: Int64) -> KeyState.HeldEvent? { known[sequence] }

    /// Whether this view can tell if `sequence` is held.
    public func isKnown(_ sequence: Int64) -> Bool { sequence <= knownThrough || probed.contains(sequence) || known[sequence] != nil }

    /// Nothing is held.
    public var isEmpty: Bool { known.isEmpty && knownThrough == .max }

    /// The lowest held sequence; `nil` when nothing is held or this view no longer knows it.
    public var lowest: Int64? {
        guard let lowest = known.keys.min(), lowest <= knownThrough else { return nil }
        return lowest
    }

    /// The known held sequences, in order.
    public var knownSequences: [Int64] { known.keys.sorted() }

    /// Takes what `other` (a read of the same key) knows of `sequence`, when this view does not.
    mutating func learn(_ sequence: Int64, from other: HeldEvents) {
        guard !isKnown(sequence), other.isKnown(sequence) else { return }
        known[sequence] = other[sequence]
        probed.insert(sequence)
    }

    /// Holds `event` at `sequence`.
    mutating func hold(_ event: KeyState.HeldEvent, at sequence: Int64) {
        known[sequence] = event
        oldestHeldAt = min(oldestHeldAt ?? event.heldAt, event.heldAt)
    }

    /// Drops the held event at `sequence`, if any.
    mutating func remove(_ sequence: Int64) {
        guard let removed = known.removeValue(forKey: sequence) else { return }
        if knownThrough == .max {
            oldestHeldAt = known.values.map(\.heldAt).min()
        } else if removed.heldAt == oldestHeldAt {
            oldestHeldAt = nil
        }
    }
}
