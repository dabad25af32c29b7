import Foundation
import WarehouseSyncCore
import WarehouseSyncSimulation

/// Simulated days shared by the suites (a day is a pure function of its options, so computing
/// each once is only a matter of speed).
enum Days {
    /// Every disturbance at once, thousands of events.
    static let disturbed = try! SimulatedDay(options: SimulationOptions(
        seed: 7, events: 12_000, outOfOrder: 0.08, outOfOrderWindow: 3, duplicates: 0.03, invalid: 0.02, gaps: 6))
    /// No disturbance.
    static let clean = try! SimulatedDay(options: SimulationOptions(seed: 11, events: 5_000))
    /// Small, and many seeds.
    static let small: [SimulatedDay] = (1...12).map { seed in
        try! SimulatedDay(options: SimulationOptions(
            seed: UInt64(seed), warehouses: seed % 4 + 1, skus: seed * 3, events: 150 * seed,
            outOfOrder: 0.1, outOfOrderWindow: seed % 3 + 1, duplicates: 0.05, invalid: 0.04, gaps: seed % 4))
    }

    static var all: [SimulatedDay] { [disturbed, clean] + small }
}

/// The ledger recomputed from decoded events by the reference ERP's rules, independently of the
/// simulator's own bookkeeping.
struct RecomputedLedger {
    var balances: [String: Quantity] = [:]
    var movements: [String: Quantity] = [:]
    var shipped: [String: Quantity] = [:]
    var received: [String: Quantity] = [:]
    var documents: [String: Int] = [:]
    private var receiptsMoved: Set<String> = []

    /// Posts events of one key in sequence order.
    mutating func post(_ event: WarehouseEvent) {
        let warehouse = event.header.warehouse
        switch event {
        case .inventory(let delta):
            documents["inventory-movements", default: 0] += 1
            balances[warehouse + "|" + delta.sku + "|" + delta.status.rawValue, default: .zero] += delta.quantity
            movements[warehouse + "|" + delta.sku + "|" + delta.status.rawValue, default: .zero] += delta.quantity
        case .shipment(let shipment):
            guard shipment.status == .shipped else {
                documents["shipment-status", default: 0] += 1
                return
            }
            documents["goods-issues", default: 0] += 1
            for line in shipment.lines {
                balances[warehouse + "|" + line.sku + "|available", default: .zero] -= line.quantity
                shipped[warehouse + "|" + line.sku, default: .zero] += line.quantity
            }
        case .receipt(let receipt):
            documents["goods-receipts", default: 0] += 1
            let moving = receipt.lines.filter { !$0.quantityReceived.isZero }
            guard !moving.isEmpty, receiptsMoved.insert(event.sequencingKey).inserted else { return }
            for line in moving {
                balances[warehouse + "|" + line.sku + "|available", default: .zero] += line.quantityReceived
                received[warehouse + "|" + line.sku, default: .zero] += line.quantityReceived
            }
        }
    }
}

extension SimulationManifest.Ledger {
    func dictionaries() throws -> (balances: [String: Quantity], movements: [String: Quantity], shipped: [String: Quantity], received: [String: Quantity]) {
        func rows(_ rows: [SimulationManifest.Balance]) throws -> [String: Quantity] {
            var result: [String: Quantity] = [:]
            for row in rows { result[row.warehouse + "|" + row.sku + "|" + row.status] = try Quantity.parse(row.quantity) }
            return result
        }
        func totals(_ rows: [SimulationManifest.Total]) throws -> [String: Quantity] {
            var result: [String: Quantity] = [:]
            for row in rows { result[row.warehouse + "|" + row.sku] = try Quantity.parse(row.quantity) }
            return result
        }
        return (try rows(balances), try rows(inventoryMovements), try totals(shipped), try totals(received))
    }
}

extension SimulatedDay {
    /// The events file split into lines (without the final newline).
    var fileLines: [[UInt8]] {
        eventsFile().split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast().map(Array.init)
    }
}
