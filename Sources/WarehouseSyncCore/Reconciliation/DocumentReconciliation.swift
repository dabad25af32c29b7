/// `whsync reconcile`'s second half: shipment statuses and receipts as the WMS knows them against
/// what the ERP booked, per document. Pure, like ``BalanceReconciliation``.
public enum DocumentReconciliation {
    /// A document whose status differs, or that one side lacks (`nil`).
    public struct Difference: Sendable, Hashable {
        public var key: DocumentStatus.Key
        public var wms: String?
        public var erp: String?
    }

    /// Documents per warehouse and kind on each side: the receipt counts of the issue.
    public struct Count: Sendable, Hashable {
        public var kind: DocumentStatus.Kind
        public var warehouse: String
        public var wms: Int
        public var erp: Int
    }

    public struct Outcome: Sendable, Hashable {
        /// Distinct documents on either side.
        public var compared: Int
        /// Sorted by kind, warehouse and id.
        public var differences: [Difference]
        /// Sorted by kind and warehouse.
        public var counts: [Count]
    }

    /// Compares the documents of `kinds` (the ERP's documents of other kinds are left out: a
    /// snapshot without receipt lines says nothing about receipts). Throws when `expected` names
    /// a document twice; the ERP's are one per document already (its adapter takes the latest).
    /// `agree` says whether a WMS status and an ERP status of a kind mean the same (an ERP
    /// without a delivered state books a delivered shipment as shipped); by default they must be
    /// equal.
    public static func compare(
        kinds: Set<DocumentStatus.Kind>, expected: [DocumentStatus], actual: [DocumentStatus],
        agree: (DocumentStatus.Kind, _ wms: String, _ erp: String) -> Bool = { $1 == $2 }
    ) throws(BalanceReconciliation.InputError) -> Outcome {
        var wanted: [DocumentStatus.Key: String] = [:]
        for document in expected where kinds.contains(document.kind) {
            guard wanted.updateValue(document.status, forKey: document.key) == nil else {
                throw .init(description: "\(document.kind) \(document.warehouse) \(document.id) is listed twice")
            }
        }
        var have: [DocumentStatus.Key: String] = [:]
        for document in actual where kinds.contains(document.kind) { have[document.key] = document.status }
        let keys = Set(wanted.keys).union(have.keys)
        let differences = keys.sorted().compactMap { key -> Difference? in
            if let wms = wanted[key], let erp = have[key], agree(key.kind, wms, erp) { return nil }
            return Difference(key: key, wms: wanted[key], erp: have[key])
        }
        struct Cell: Hashable { var kind: DocumentStatus.Kind; var warehouse: String }
        var counts: [Cell: (wms: Int, erp: Int)] = [:]
        for key in wanted.keys { counts[Cell(kind: key.kind, warehouse: key.warehouse), default: (0, 0)].wms += 1 }
        for key in have.keys { counts[Cell(kind: key.kind, warehouse: key.warehouse), default: (0, 0)].erp += 1 }
        let rows = counts.map { Count(kind: $0.key.kind, warehouse: $0.key.warehouse, wms: $0.value.wms, erp: $0.value.erp) }
            .sorted { ($0.kind.rawValue, $0.warehouse) < ($1.kind.rawValue, $1.warehouse) }
        return Outcome(compared: keys.count, differences: differences, counts: rows)
    }

    /// The latest status per document of postings read off an ERP's journal: the highest
    /// `sequence` of each, the later posting among equal ones (a replay posted again).
    public static func latest(_ postings: [(document: DocumentStatus, sequence: Int64)]) -> [DocumentStatus] {
        var latest: [DocumentStatus.Key: (document: DocumentStatus, sequence: Int64)] = [:]
        for posting in postings {
            if let known = latest[posting.document.key], known.sequence > posting.sequence { continue }
            latest[posting.document.key] = posting
        }
        return latest.values.map { $0.document }.sorted { $0.key < $1.key }
    }
}
