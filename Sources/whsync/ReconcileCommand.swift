import ArgumentParser
import Foundation
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncOperations
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncWorker

/// `whsync reconcile FILE`: the WMS's stock balances against the ERP's `GET /balances`
/// (DESIGN §3), row by row (``BalanceReconciliation``). Exit 0 when they agree, 1 when they
/// differ (as `topology verify` does on drift), 2 when the ERP could not be asked, 64 for a
/// FILE or an option that cannot be used: a script can tell "the books differ" from "no answer".
struct ReconcileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Compare the WMS's stock balances with the ERP's (GET /balances, or Tryton's stock); exit 1 when they differ.",
        discussion: """
            FILE holds the WMS's balances, one JSON object per line: \
            {"warehouse": "WH1", "sku": "SKU-0001", "status": "available", "quantity": "12.5"} \
            (status: a canonical inventory status, available when left out; quantity: a decimal \
            number or string). The ERP (the adapter ERP_KIND names, as the workers: GET /balances, or \
            Tryton's quantities per status location) is asked for every warehouse in FILE, or those given with \
            --warehouse; a row on one side only counts as zero on the other. The differing rows go \
            to stdout, the summary to stderr. Exit 0: the books agree; 1: they differ; 2: the ERP \
            could not be asked or its answer not read; 64: FILE or an option is unusable.
            """)

    @Argument(help: "The WMS's balances as JSON lines; '-' reads stdin.") var file: String
    @Option(name: .customLong("warehouse"), help: "Only this warehouse (repeatable). Default: every warehouse in FILE.")
    var warehouses: [String] = []
    @Option(help: "Seconds each ERP request may take.") var timeout = 30
    @Flag(help: "One JSON object on stdout: the rows compared and every difference.") var json = false
    @OptionGroup var erp: ERPOptions

    struct Report: Encodable {
        struct Row: Encodable {
            let warehouse: String
            let sku: String
            let status: String
            /// Decimal strings: exact, as the quantities on the wire.
            let wms: String
            let erp: String
            /// ERP minus WMS; `null` beyond the range of a quantity.
            let difference: String?

            enum CodingKeys: String, CodingKey {
                case warehouse, sku, status, wms, erp, difference
            }

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(warehouse, forKey: .warehouse)
                try container.encode(sku, forKey: .sku)
                try container.encode(status, forKey: .status)
                try container.encode(wms, forKey: .wms)
                try container.encode(erp, forKey: .erp)
                try container.encode(difference, forKey: .difference)  // null, not left out
            }
        }

        let warehouses: [String]
        let compared: Int
        let differences: [Row]
    }

    func run() async throws {
        guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 second") }
        let wanted = Set(warehouses)
        let expected = try await Self.readBalances(openInput(file), name: file == "-" ? "stdin" : file)
            .filter { wanted.isEmpty || wanted.contains($0.warehouse) }
        let asked = wanted.isEmpty ? Set(expected.map(\.warehouse)).sorted() : wanted.sorted()
        guard !asked.isEmpty else { throw ValidationError("\(file) names no warehouse: nothing to compare") }

        let actual: [StockBalance]
        do {
            actual = try await erp.withClient(timeout: .seconds(timeout)) { client in
                var rows: [StockBalance] = []
                for warehouse in asked {
                    // Only the warehouse asked for: an ERP that ignores the filter adds no noise.
                    rows += try await client.balances(warehouse: warehouse).filter { $0.warehouse == warehouse }
                }
                return rows
            }
        } catch let error as ERPQueryError {
            printError("whsync reconcile: \(error)")
            throw ExitCode(2)
        }
        let outcome: BalanceReconciliation.Outcome
        do {
            outcome = try BalanceReconciliation.compare(expected: expected, actual: actual)
        } catch {
            throw ValidationError("\(file): \(error)")
        }
        let (compared, differences) = (outcome.rowsCompared, outcome.differences)
        let report = Report(
            warehouses: asked, compared: compared,
            differences: differences.map {
                Report.Row(
                    warehouse: $0.key.warehouse, sku: $0.key.sku, status: $0.key.status, wms: $0.expected.description,
                    erp: $0.actual.description, difference: $0.difference?.description)
            })

        if json {
            try printJSON(report)
        } else {
            for row in report.differences {
                let difference = row.difference.map { $0.hasPrefix("-") ? $0 : "+" + $0 } ?? "out of range"
                print("\(pad(row.warehouse, 8)) \(pad(row.sku, 16)) \(pad(row.status, 14)) WMS \(pad(row.wms, 14)) ERP \(pad(row.erp, 14)) ERP-WMS \(difference)")
            }
        }
        let scope = "\(compared) balance row\(compared == 1 ? "" : "s") in \(asked.count) warehouse\(asked.count == 1 ? "" : "s")"
        printError(differences.isEmpty ? "\(scope): the ERP agrees with the WMS" : "\(scope): \(differences.count) differ")
        if !differences.isEmpty { throw ExitCode(1) }
    }

    /// The balances of the JSON-lines file; any line that is not one is an error naming it.
    static func readBalances(_ handle: FileHandle, name: String) async throws -> [StockBalance] {
        var balances: [StockBalance] = []
        for try await (number, bytes) in LineReader(handle: handle) {
            if LineReader.isBlank(bytes) { continue }
            func failure(_ problem: String) -> ValidationError { ValidationError("\(name) line \(number): \(problem)") }
            guard let object = (try? JSONValue(parsing: bytes))?.objectValue else {
                throw failure("not a JSON object")
            }
            func text(_ field: String) throws -> String {
                guard let value = object[field]?.stringValue, !value.isEmpty else {
                    throw failure("\(field) must be a non-empty string")
                }
                return value
            }
            let status = object["status"] == nil ? InventoryStatus.available.rawValue : try text("status")
            guard InventoryStatus(rawValue: status) != nil else {
                let names = InventoryStatus.allCases.map(\.rawValue).joined(separator: ", ")
                throw failure("status '\(status.prefix(64))' is not one of \(names) (the ERP books canonical statuses)")
            }
            guard let quantity = Quantity(json: object["quantity"]) else { throw failure("quantity must be a decimal with at most 6 fraction digits") }
            balances.append(StockBalance(warehouse: try text("warehouse"), sku: try text("sku"), status: status, quantity: quantity))
        }
        return balances
    }
}
