/// Where a shipment or a receipt stands: its latest canonical status, as the WMS knows it or as
/// the ERP booked it. One per warehouse and id.
public struct DocumentStatus: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable, Comparable, CustomStringConvertible {
        case shipment
        case receipt

        public var description: String { rawValue }

        public static func < (lhs: Kind, rhs: Kind) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    public var kind: Kind
    public var warehouse: String
    /// The shipment id or the receipt id.
    public var id: String
    /// A canonical ``ShipmentStatus`` or ``ReceiptStatus``.
    public var status: String

    public init(kind: Kind, warehouse: String, id: String, status: String) {
        self.kind = kind
        self.warehouse = warehouse
        self.id = id
        self.status = status
    }

    /// What identifies a document.
    public struct Key: Sendable, Hashable, Comparable {
        public var kind: Kind
        public var warehouse: String
        public var id: String

        public static func < (lhs: Key, rhs: Key) -> Bool {
            (lhs.kind.rawValue, lhs.warehouse, lhs.id) < (rhs.kind.rawValue, rhs.warehouse, rhs.id)
        }
    }

    public var key: Key { Key(kind: kind, warehouse: warehouse, id: id) }
}

/// The WMS's side of a reconciliation (docs/reconciliation.md, "The snapshot"): JSON lines, one
/// object each, read from a file or a URL. `kind` says what a line is (`balance` when left out,
/// so a file of balances alone, the format `whsync reconcile` always read, is a snapshot):
///
/// - `balance`: `warehouse`, `sku`, `status` (canonical, `available` when left out), `quantity`
///   (a decimal number or string); optional `uom` (a correction needs it) and `sequence` (the
///   last sequence the WMS published for `warehouse/sku`: a correction waits until the workers
///   have applied it).
/// - `shipment`: `warehouse`, `shipmentId`, `status` (canonical shipment status).
/// - `receipt`: `warehouse`, `receiptId`, `status` (canonical receipt status, `received` when
///   left out).
public struct WMSSnapshot: Sendable, Hashable {
    /// A balance row with what a correction of it needs.
    public struct BalanceLine: Sendable, Hashable {
        public var balance: StockBalance
        public var uom: String?
        public var sequence: Int64?

        public init(balance: StockBalance, uom: String? = nil, sequence: Int64? = nil) {
            self.balance = balance
            self.uom = uom
            self.sequence = sequence
        }
    }

    /// Why a line cannot be read; names its line.
    public struct LineError: Error, Sendable, Equatable, CustomStringConvertible {
        public var line: Int
        public var problem: String
        public var description: String { "line \(line): \(problem)" }

        public init(line: Int, problem: String) {
            self.line = line
            self.problem = problem
        }
    }

    public var balances: [BalanceLine] = []
    public var documents: [DocumentStatus] = []

    public init(balances: [BalanceLine] = [], documents: [DocumentStatus] = []) {
        self.balances = balances
        self.documents = documents
    }

    /// The kinds of document the snapshot speaks of: only those are compared (a snapshot of
    /// balances alone says nothing about shipments).
    public var documentKinds: Set<DocumentStatus.Kind> { Set(documents.map(\.kind)) }

    /// Every warehouse the snapshot names, sorted.
    public var warehouses: [String] {
        Set(balances.map(\.balance.warehouse) + documents.map(\.warehouse)).sorted()
    }

    /// Reads a whole snapshot (lines separated by `\n`, blank lines skipped).
    public static func parse(_ bytes: some Collection<UInt8>) throws(LineError) -> WMSSnapshot {
        var snapshot = WMSSnapshot()
        var number = 0
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            try snapshot.add(line: line, number: number)
        }
        return snapshot
    }

    /// Adds line `number`; a blank line adds nothing.
    public mutating func add(line bytes: some Collection<UInt8>, number: Int) throws(LineError) {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }
        func failure(_ problem: String) -> LineError { LineError(line: number, problem: problem) }
        guard let object = (try? JSONValue(parsing: bytes))?.objectValue else { throw failure("not a JSON object") }
        func text(_ field: String) throws(LineError) -> String {
            guard let value = object[field]?.stringValue, !value.isEmpty else {
                throw failure("\(field) must be a non-empty string")
            }
            return value
        }
        func status<S: CanonicalStatus>(_: S.Type, default fallback: S?, what: String) throws(LineError) -> String {
            if object["status"] == nil, let fallback { return fallback.rawValue }
            let value = try text("status")
            guard S(rawValue: value) != nil else {
                let names = S.allCases.map(\.rawValue).joined(separator: ", ")
                throw failure("status '\(value.prefix(64))' is not one of \(names) (the ERP books canonical \(what) statuses)")
            }
            return value
        }
        let kind = object["kind"] == nil ? "balance" : try text("kind")
        switch kind {
        case "balance":
            let state = try status(InventoryStatus.self, default: .available, what: "inventory")
            guard let quantity = Quantity(json: object["quantity"]) else {
                throw failure("quantity must be a decimal with at most 6 fraction digits")
            }
            var sequence: Int64?
            if let value = object["sequence"] {
                guard let number = value.numberLiteral.flatMap({ Int64($0) }), number >= 1 else {
                    throw failure("sequence must be an integer ≥ 1 (the WMS's last sequence of warehouse/sku)")
                }
                sequence = number
            }
            let uom = object["uom"] == nil ? nil : try text("uom")
            balances.append(BalanceLine(
                balance: StockBalance(warehouse: try text("warehouse"), sku: try text("sku"), status: state, quantity: quantity),
                uom: uom, sequence: sequence))
        case "shipment":
            let state = try status(ShipmentStatus.self, default: nil, what: "shipment")
            documents.append(DocumentStatus(kind: .shipment, warehouse: try text("warehouse"), id: try text("shipmentId"), status: state))
        case "receipt":
            let state = try status(ReceiptStatus.self, default: .received, what: "receipt")
            documents.append(DocumentStatus(kind: .receipt, warehouse: try text("warehouse"), id: try text("receiptId"), status: state))
        default:
            throw failure("kind '\(kind.prefix(32))' is not one of balance, shipment, receipt")
        }
    }
}
