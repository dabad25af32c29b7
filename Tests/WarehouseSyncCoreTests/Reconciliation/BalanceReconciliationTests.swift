import Testing
import WarehouseSyncCore

@Suite("BalanceReconciliation")
struct BalanceReconciliationTests {
    func balance(_ warehouse: String, _ sku: String, _ status: String, _ quantity: String) -> StockBalance {
        StockBalance(warehouse: warehouse, sku: sku, status: status, quantity: Quantity(parsing: quantity)!)
    }

    func balance(_ warehouse: String, _ sku: String, _ quantity: String) -> StockBalance {
        balance(warehouse, sku, "available", quantity)
    }

    @Test("equal books have no differences, whatever the order and however zero rows are kept")
    func equal() throws {
        let expected = [balance("WH1", "A", "5"), balance("WH1", "B", "0"), balance("WH2", "A", "quality-hold", "1.25")]
        let actual = [balance("WH2", "A", "quality-hold", "1.250"), balance("WH1", "A", "5.000000"), balance("WH1", "C", "0")]
        let outcome = try BalanceReconciliation.compare(expected: expected, actual: actual)
        #expect(outcome.differences.isEmpty)
        #expect(outcome.rowsCompared == 4, "WH1 A, WH1 B, WH1 C and WH2 A quality-hold")
    }

    @Test("a row differs, is missing on either side, or is split over statuses: each one reported, sorted")
    func differences() throws {
        let expected = [balance("WH2", "A", "3"), balance("WH1", "A", "5"), balance("WH1", "B", "2"), balance("WH1", "D", "damaged", "1")]
        let actual = [balance("WH1", "A", "4.5"), balance("WH1", "C", "7"), balance("WH2", "A", "3"), balance("WH1", "D", "1")]
        let found = try BalanceReconciliation.compare(expected: expected, actual: actual).differences
        #expect(found.map { "\($0.key.warehouse) \($0.key.sku) \($0.key.status)" } == [
            "WH1 A available", "WH1 B available", "WH1 C available", "WH1 D available", "WH1 D damaged",
        ])
        #expect(found.map(\.expected) == [5, 2, 0, 0, 1])
        #expect(found.map(\.actual) == [Quantity(parsing: "4.5")!, 0, 7, 1, 0])
        #expect(found.map(\.difference) == [Quantity(parsing: "-0.5")!, -2, 7, 1, -1])
    }

    @Test("the WMS listing a row twice is an error naming it; the ERP's repeated rows are summed")
    func repeatedRows() throws {
        #expect(throws: BalanceReconciliation.InputError(description: "WH1 A available is listed twice")) {
            try BalanceReconciliation.compare(expected: [balance("WH1", "A", "1"), balance("WH1", "A", "1")], actual: []).differences
        }
        let summed = try BalanceReconciliation.compare(
            expected: [balance("WH1", "A", "3")], actual: [balance("WH1", "A", "1"), balance("WH1", "A", "2")]).differences
        #expect(summed.isEmpty)
        #expect(throws: BalanceReconciliation.InputError.self) {
            try BalanceReconciliation.compare(expected: [], actual: [
                StockBalance(warehouse: "W", sku: "S", status: "available", quantity: .max),
                StockBalance(warehouse: "W", sku: "S", status: "available", quantity: .max),
            ])
        }
        let extreme = try BalanceReconciliation.compare(
            expected: [StockBalance(warehouse: "W", sku: "S", status: "available", quantity: .min)],
            actual: [StockBalance(warehouse: "W", sku: "S", status: "available", quantity: .max)]).differences
        #expect(extreme.count == 1 && extreme[0].difference == nil, "a difference beyond a quantity's range is nil, not a trap")
    }
}
