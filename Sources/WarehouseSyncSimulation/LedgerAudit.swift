import Foundation

/// What an ERP's ledger says about a run: every eventId booked at most once, each key's postings
/// in sequence order, and (given the expected eventIds, a manifest's `postedEventIds`) nothing
/// lost and nothing booked that should not have been.
///
/// The checker of the exactly-once integration tests and of the proof suite (`scripts/proof`,
/// through `wms-simulator check`): the rows are the reference ERP's `GET /documents` rows, in
/// posting order (their `position`).
public struct LedgerAudit: Sendable, Codable, Equatable {
    /// One booked document: the members of a `GET /documents` row the audit reads.
    public struct Document: Sendable, Equatable {
        public var position: Int
        public var eventId: String
        /// The document type (`inventory-movement`, `goods-issue`, ...): goods issues and
        /// shipment statuses share a sequencing key, so order is compared within one type.
        public var type: String
        public var key: String
        public var sequence: Int64

        public init(position: Int, eventId: String, type: String, key: String, sequence: Int64) {
            self.position = position
            self.eventId = eventId
            self.type = type
            self.key = key
            self.sequence = sequence
        }

        /// A `GET /documents` row (a JSON object); nil when a member the audit needs is missing.
        public init?(row: [String: Any]) {
            guard let eventId = row["eventId"] as? String, let type = row["type"] as? String,
                let key = row["key"] as? String
            else { return nil }
            let position = (row["position"] as? NSNumber)?.intValue ?? 0
            guard let sequence = (row["sequence"] as? NSNumber)?.int64Value else { return nil }
            self.init(position: position, eventId: eventId, type: type, key: key, sequence: sequence)
        }
    }

    /// Documents in the ledger.
    public var booked: Int
    /// Expected eventIds (nil: no expectation given, `lost` and `unexpected` are not checked).
    public var expected: Int?
    /// Expected eventIds the ledger does not hold, sorted.
    public var lost: [String]
    /// EventIds booked more than once, sorted.
    public var postedTwice: [String]
    /// Booked eventIds that were not expected (an invalid message let through, a withheld or
    /// parked event posted), sorted.
    public var unexpected: [String]
    /// `type|key#sequence after #previous` for each posting whose sequence is not above the
    /// previous posting of its key and type, in posting order.
    public var orderViolations: [String]

    /// Whether the ledger is what it should be: nothing lost, twice, unexpected or out of order.
    public var isClean: Bool {
        lost.isEmpty && postedTwice.isEmpty && unexpected.isEmpty && orderViolations.isEmpty
    }

    public init(documents: [Document], expectedEventIds: Set<String>?) {
        let ordered = documents.sorted { $0.position < $1.position }
        var seen: [String: Int] = [:]
        var lastSequence: [String: Int64] = [:]
        var violations: [String] = []
        for document in ordered {
            seen[document.eventId, default: 0] += 1
            let key = "\(document.type)|\(document.key)"
            if let last = lastSequence[key], document.sequence <= last {
                violations.append("\(key)#\(document.sequence) after #\(last)")
            }
            lastSequence[key] = max(lastSequence[key] ?? document.sequence, document.sequence)
        }
        booked = ordered.count
        postedTwice = seen.filter { $0.value > 1 }.map(\.key).sorted()
        orderViolations = violations
        if let expectedEventIds {
            expected = expectedEventIds.count
            lost = expectedEventIds.filter { seen[$0] == nil }.sorted()
            unexpected = seen.keys.filter { !expectedEventIds.contains($0) }.sorted()
        } else {
            expected = nil
            lost = []
            unexpected = []
        }
    }
}
