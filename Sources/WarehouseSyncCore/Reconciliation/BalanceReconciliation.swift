/// One stock balance: a quantity per warehouse, SKU and status, as the WMS counts it or as the
/// ERP's `GET /balances` answers it (DESIGN §3).
public struct StockBalance: Sendable, Hashable {
    public var warehouse: String
    public var sku: String
    /// A canonical inventory status (`available`, `quality-hold`...).
    public var status: String
    public var quantity: Quantity

    public init(warehouse: String, sku: String, status: String, quantity: Quantity) {
        self.warehouse = warehouse
        self.sku = sku
        self.status = status
        self.quantity = quantity
    }

    /// What identifies a balance row.
    public struct Key: Sendable, Hashable, Comparable {
        public var warehouse: String
        public var sku: String
        public var status: String

        public init(warehouse: String, sku: String, status: String) {
            self.warehouse = warehouse
            self.sku = sku
            self.status = status
        }

        public static func < (lhs: Key, rhs: Key) -> Bool {
            (lhs.warehouse, lhs.sku, lhs.status) < (rhs.warehouse, rhs.sku, rhs.status)
        }
    }

    public var key: Key { Key(warehouse: warehouse, sku: sku, status: status) }
}

/// `whsync reconcile`: the WMS's balances against the ERP's, row by row. Pure: the command
/// reads both sides, this says where they differ.
public enum BalanceReconciliation {
    /// A row whose quantities differ. A row missing on one side counts as zero there, so a zero
    /// row on one side and none on the other is no difference.
    public struct Difference: Sendable, Hashable {
        public var key: StockBalance.Key
        /// The WMS's quantity.
        public var expected: Quantity
        /// The ERP's quantity.
        public var actual: Quantity

        public init(key: StockBalance.Key, expected: Quantity, actual: Quantity) {
            self.key = key
            self.expected = expected
            self.actual = actual
        }

        /// ERP minus WMS: what the ERP has too much (positive) or too little (negative); `nil`
        /// when it is beyond the range of a quantity.
        public var difference: Quantity? { actual.subtracting(expected) }
    }

    /// Why the expected balances cannot be compared.
    public struct InputError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// What a comparison found.
    public struct Outcome: Sendable, Hashable {
        /// Distinct rows on either side.
        public var rowsCompared: Int
        /// Sorted by warehouse, SKU and status.
        public var differences: [Difference]
    }

    /// Compares `expected` with `actual` row by row. Throws when `expected` names a row twice
    /// (the WMS's counts must be one per row); the ERP's rows are summed per row.
    public static func compare(expected: [StockBalance], actual: [StockBalance]) throws(InputError) -> Outcome {
        var wanted: [StockBalance.Key: Quantity] = [:]
        for balance in expected {
            guard wanted.updateValue(balance.quantity, forKey: balance.key) == nil else {
                let key = balance.key
                throw InputError(description: "\(key.warehouse) \(key.sku) \(key.status) is listed twice")
            }
        }
        var have: [StockBalance.Key: Quantity] = [:]
        for balance in actual {
            guard let sum = (have[balance.key] ?? .zero).adding(balance.quantity) else {
                let key = balance.key
                throw InputError(description: "the ERP's rows of \(key.warehouse) \(key.sku) \(key.status) add up beyond the range of a quantity")
            }
            have[balance.key] = sum
        }
        let rows = Set(wanted.keys).union(have.keys)
        let differences = rows.sorted().compactMap { key in
            let expected = wanted[key] ?? .zero
            let actual = have[key] ?? .zero
            return expected == actual ? nil : Difference(key: key, expected: expected, actual: actual)
        }
        return Outcome(rowsCompared: rows.count, differences: differences)
    }
}
