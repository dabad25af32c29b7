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
    /// previous posting of its key and type, in posting order; postings of replayed events
    /// (`replayedOutOfOrder`) are not counted here.
    public var orderViolations: [String]
    /// The same, for postings of events given as replayed dead letters (`replayedEventIds`: a
    /// letter dead-lettered `retries-exhausted`, say, replayed once the ERP was healthy): its key
    /// had moved on without it, so it posts below the key's position by design (DESIGN §6,
    /// docs/pipeline-core.md), not a violation. Such a posting does not move the key's position.
    public var replayedOutOfOrder: [String]

    /// Whether the ledger is what it should be: nothing lost, twice, unexpected or out of order
    /// (replays posted below their key's position are by design and do not count).
    public var isClean: Bool {
        lost.isEmpty && postedTwice.isEmpty && unexpected.isEmpty && orderViolations.isEmpty
    }

    public init(documents: [Document], expectedEventIds: Set<String>?, replayedEventIds: Set<String> = []) {
        var accumulator = Accumulator()
        // a stable sort: rows of one position keep the order they came in
        for document in documents.enumerated().sorted(by: { ($0.element.position, $0.offset) < ($1.element.position, $1.offset) }) {
            accumulator.add(document.element)
        }
        self = accumulator.audit(expectedEventIds: expectedEventIds, replayedEventIds: replayedEventIds)
    }

    /// The audit fed one document at a time, in posting order (ascending `position`), for ledgers
    /// too big to hold as ``Document`` values (`wms-simulator check` over 10^6 rows): it keeps
    /// one count per eventId and one position per key and type, plus the out-of-order postings.
    public struct Accumulator: Sendable {
        private var seen: [String: Int] = [:]
        private var lastSequence: [String: Int64] = [:]
        private var outOfOrder: [(eventId: String, text: String)] = []
        private var lastPosition = Int.min
        /// Rows whose position was below the previous row's: the audit's order is not the ledger's.
        public private(set) var unsorted = 0
        public private(set) var count = 0

        public init() {}

        public mutating func add(_ document: Document) {
            if document.position < lastPosition { unsorted += 1 }
            lastPosition = document.position
            count += 1
            seen[document.eventId, default: 0] += 1
            let key = "\(document.type)|\(document.key)"
            if let last = lastSequence[key] {
                if document.sequence <= last {
                    outOfOrder.append((document.eventId, "\(key)#\(document.sequence) after #\(last)"))
                } else {
                    lastSequence[key] = document.sequence
                }
            } else {
                lastSequence[key] = document.sequence
            }
        }

        public func audit(expectedEventIds: Set<String>?, replayedEventIds: Set<String> = []) -> LedgerAudit {
            var audit = LedgerAudit(
                booked: count, expected: nil, lost: [], postedTwice: seen.filter { $0.value > 1 }.map(\.key).sorted(),
                unexpected: [], orderViolations: [], replayedOutOfOrder: [])
            for entry in outOfOrder {
                if replayedEventIds.contains(entry.eventId) {
                    audit.replayedOutOfOrder.append(entry.text)
                } else {
                    audit.orderViolations.append(entry.text)
                }
            }
            if let expectedEventIds {
                audit.expected = expectedEventIds.count
                audit.lost = expectedEventIds.filter { seen[$0] == nil }.sorted()
                audit.unexpected = seen.keys.filter { !expectedEventIds.contains($0) }.sorted()
            }
            return audit
        }
    }

    private init(
        booked: Int, expected: Int?, lost: [String], postedTwice: [String], unexpected: [String], orderViolations: [String],
        replayedOutOfOrder: [String]
    ) {
        self.booked = booked
        self.expected = expected
        self.lost = lost
        self.postedTwice = postedTwice
        self.unexpected = unexpected
        self.orderViolations = orderViolations
        self.replayedOutOfOrder = replayedOutOfOrder
    }
}
