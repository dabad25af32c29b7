import Foundation
import WarehouseSyncCore

/// Where a stored dead letter stands (DESIGN §6): waiting for a replay or a person, replayed, or
/// dropped by an operator. Replayed and purged letters are deleted by
/// ``WorkerStore/pruneDeadLetters(olderThan:)`` once past retention.
public enum DeadLetterStatus: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Not yet replayed; a new failure of a replayed or purged letter makes it pending again.
    case pending
    /// Republished at least once (``DeadLetterRecord/replayCount``).
    case replayed
    /// Dropped by an operator (`whsync dlq purge`); kept until pruned.
    case purged

    public var description: String { rawValue }
}

/// A letter drained from the broker's dead-letter queue, to be stored by
/// ``WorkerStore/recordDeadLetter(_:)``.
public struct NewDeadLetter: Sendable, Hashable {
    /// `nil` for a letter whose stream is unknown (an undecodable body, an unknown routing key).
    public var stream: EventStream?
    public var reason: DeadLetterReason
    /// The `whsync-error` text (or what the broker said, for `delivery-limit`).
    public var error: String
    public var eventId: String?
    /// The sequencing key (`WH1/SKU-1`), when the body could be read that far.
    public var key: String?
    public var sequence: Int64?
    public var originalExchange: String
    public var originalRoutingKey: String
    /// The letter's AMQP headers, as strings.
    public var headers: [String: String]
    public var body: [UInt8]
    /// When it failed. Take it from the letter (its headers, `x-death`), not from the clock when
    /// draining: a redelivery of a letter already stored then carries the same time and changes
    /// nothing, while a later failure of the same letter counts as a new one.
    public var failedAt: Date

    public init(
        stream: EventStream?,
        reason: DeadLetterReason,
        error: String,
        eventId: String? = nil,
        key: String? = nil,
        sequence: Int64? = nil,
        originalExchange: String,
        originalRoutingKey: String,
        headers: [String: String] = [:],
        body: [UInt8],
        failedAt: Date
    ) {
        self.stream = stream
        self.reason = reason
        self.error = error
        self.eventId = eventId
        self.key = key
        self.sequence = sequence
        self.originalExchange = originalExchange
        self.originalRoutingKey = originalRoutingKey
        self.headers = headers
        self.body = body
        self.failedAt = failedAt
    }

    /// What makes two drained letters the same letter: SHA-256 (64 hex digits) of the reason,
    /// `eventId`, original exchange and routing key and the body, each length-prefixed. The body
    /// is in it so that two different payloads under one `eventId` (a conflict, a re-sent
    /// malformed event) are two rows and neither is lost; headers are not, as the broker's
    /// `x-death` changes on every redelivery. Every store dedupes on this value.
    public var identity: String {
        var bytes: [UInt8] = Array("whsync-dead-letter/1".utf8)
        for field in [Array(reason.rawValue.utf8), Array((eventId ?? "").utf8), Array(originalExchange.utf8),
                      Array(originalRoutingKey.utf8), body]
        {
            let count = UInt64(field.count)
            bytes += (0..<8).map { UInt8(truncatingIfNeeded: count >> (56 - 8 * UInt64($0))) }
            bytes += field
        }
        return ContentDigest.sha256Hex(bytes)
    }

    /// The warehouse the letter belongs to, for filtering: the routing key's (`inventory.WH1`),
    /// else the key's prefix (`WH1/SKU-1`), else `nil`.
    public var warehouse: String? {
        if let routingKey = RoutingKey(parsing: originalRoutingKey) {
            return routingKey.warehouse
        }
        if let key, let slash = key.firstIndex(of: "/"), slash != key.startIndex {
            return String(key[..<slash])
        }
        return nil
    }
}

/// A stored dead letter.
public struct DeadLetterRecord: Sendable, Hashable, Identifiable {
    /// Never reused, also after pruning: replays name it in `whsync-replay-of`.
    public var id: Int64
    /// ``NewDeadLetter/identity`` of the letter first stored.
    public var identity: String
    public var stream: EventStream?
    public var reason: DeadLetterReason
    /// The error of the latest failure.
    public var error: String
    public var eventId: String?
    public var key: String?
    public var sequence: Int64?
    /// ``NewDeadLetter/warehouse``.
    public var warehouse: String?
    public var originalExchange: String
    public var originalRoutingKey: String
    public var headers: [String: String]
    /// The body to replay: as drained, or as last edited (``bodyEditedAt``).
    public var body: [UInt8]
    public var firstFailedAt: Date
    public var lastFailedAt: Date
    /// Distinct failures recorded (a redelivery of the same failure does not count).
    public var failureCount: Int64
    public var replayCount: Int64
    public var lastReplayedAt: Date?
    /// Who replayed it last (`replay-worker`, an operator's name).
    public var lastReplayedBy: String?
    /// When ``updateDeadLetterBody`` last replaced the body; `nil` while it is the original.
    public var bodyEditedAt: Date?
    public var status: DeadLetterStatus
    /// When ``status`` last changed (stored, replayed, purged, pending again): retention counts
    /// from here.
    public var statusChangedAt: Date

    public init(
        id: Int64, identity: String, stream: EventStream?, reason: DeadLetterReason, error: String, eventId: String?,
        key: String?, sequence: Int64?, warehouse: String?, originalExchange: String, originalRoutingKey: String,
        headers: [String: String], body: [UInt8], firstFailedAt: Date, lastFailedAt: Date, failureCount: Int64,
        replayCount: Int64, lastReplayedAt: Date?, lastReplayedBy: String?, bodyEditedAt: Date?,
        status: DeadLetterStatus, statusChangedAt: Date
    ) {
        self.id = id
        self.identity = identity
        self.stream = stream
        self.reason = reason
        self.error = error
        self.eventId = eventId
        self.key = key
        self.sequence = sequence
        self.warehouse = warehouse
        self.originalExchange = originalExchange
        self.originalRoutingKey = originalRoutingKey
        self.headers = headers
        self.body = body
        self.firstFailedAt = firstFailedAt
        self.lastFailedAt = lastFailedAt
        self.failureCount = failureCount
        self.replayCount = replayCount
        self.lastReplayedAt = lastReplayedAt
        self.lastReplayedBy = lastReplayedBy
        self.bodyEditedAt = bodyEditedAt
        self.status = status
        self.statusChangedAt = statusChangedAt
    }
}

/// Which dead letters ``WorkerStore/deadLetters(matching:limit:)`` and
/// ``WorkerStore/purgeDeadLetters(matching:at:)`` take: every non-`nil` condition must hold.
/// Results come in `id` order; page with ``afterId``.
public struct DeadLetterFilter: Sendable, Hashable {
    public var stream: EventStream?
    public var reason: DeadLetterReason?
    /// ``DeadLetterRecord/warehouse``, exactly.
    public var warehouse: String?
    /// The sequencing key, exactly.
    public var key: String?
    public var eventId: String?
    /// ``DeadLetterRecord/lastFailedAt`` at or after this instant.
    public var failedFrom: Date?
    /// ``DeadLetterRecord/lastFailedAt`` before this instant.
    public var failedBefore: Date?
    public var status: DeadLetterStatus?
    /// Only ids greater than this (the last id of the previous page).
    public var afterId: Int64?

    public init(
        stream: EventStream? = nil,
        reason: DeadLetterReason? = nil,
        warehouse: String? = nil,
        key: String? = nil,
        eventId: String? = nil,
        failedFrom: Date? = nil,
        failedBefore: Date? = nil,
        status: DeadLetterStatus? = nil,
        afterId: Int64? = nil
    ) {
        self.stream = stream
        self.reason = reason
        self.warehouse = warehouse
        self.key = key
        self.eventId = eventId
        self.failedFrom = failedFrom
        self.failedBefore = failedBefore
        self.status = status
        self.afterId = afterId
    }

    /// Every letter.
    public static let all = DeadLetterFilter()
}

/// What an operator (or the replay worker) did, for the audit trail (`whsync dlq show`).
public enum AuditAction: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case replay
    case edit
    case purge
    case gapSkip = "gap-skip"
    /// A correction published by `whsync reconcile --correct` or the replay worker's schedule.
    case reconcileCorrection = "reconcile-correction"

    public var description: String { rawValue }
}

/// An audit entry to append.
public struct NewAuditEntry: Sendable, Hashable {
    public var at: Date
    /// Who: `alice@ops-host`, `replay-worker@pod-7`.
    public var actor: String
    public var action: AuditAction
    public var deadLetterId: Int64?
    public var stream: EventStream?
    public var key: String?
    /// A short line: what changed (ids, sequences; never a payload).
    public var detail: String
    /// For an edit: the body it replaced.
    public var previousBody: [UInt8]?

    public init(
        at: Date, actor: String, action: AuditAction, deadLetterId: Int64? = nil, stream: EventStream? = nil,
        key: String? = nil, detail: String, previousBody: [UInt8]? = nil
    ) {
        self.at = at
        self.actor = actor
        self.action = action
        self.deadLetterId = deadLetterId
        self.stream = stream
        self.key = key
        self.detail = detail
        self.previousBody = previousBody
    }
}

/// A stored audit entry. Entries are never changed, and outlive pruned dead letters.
public struct AuditEntry: Sendable, Hashable, Identifiable {
    public var id: Int64
    public var entry: NewAuditEntry

    public init(id: Int64, entry: NewAuditEntry) {
        self.id = id
        self.entry = entry
    }
}
