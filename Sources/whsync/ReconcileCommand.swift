import ArgumentParser
import Foundation
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncOperations
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncWorker

/// `whsync reconcile SOURCE [--correct]` (docs/reconciliation.md): the WMS's snapshot (balances,
/// and shipment and receipt statuses when it lists them) against the ERP's, read through the ERP
/// port (``Reconciler``). Exit 0 when they agree, 1 when they differ (as `topology verify` does on
/// drift; also when `--correct` published corrections: they differed), 2 when the ERP could not
/// be asked, 3 when a correction could not be published, 64 for a SOURCE or an option that cannot
/// be used: a script can tell "the books differ" from "no answer".
struct ReconcileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Compare the WMS's balances, shipments and receipts with the ERP's; exit 1 when they differ; --correct publishes corrections.",
        discussion: """
            SOURCE holds the WMS's snapshot, one JSON object per line: a file, - for stdin, or an http(s) URL \
            answering the same lines. A balance line: {"warehouse": "WH1", "sku": "SKU-0001", "status": \
            "available", "quantity": "12.5", "uom": "EA", "sequence": 41} (status: canonical, available when \
            left out; uom and sequence optional, a correction needs the uom and waits for the workers to have \
            applied the sequence). A shipment line: {"kind": "shipment", "warehouse": "WH1", "shipmentId": \
            "SHP-1", "status": "shipped"}; a receipt line: {"kind": "receipt", "warehouse": "WH1", \
            "receiptId": "RCV-1", "status": "received"}. The ERP (the adapter ERP_KIND names, as the workers) is \
            asked for every warehouse in SOURCE, or those given with --warehouse; a balance row on one side \
            only counts as zero on the other; shipments and receipts are compared when SOURCE lists any. \
            The differences go to stdout, the summary to stderr. --correct publishes each balance difference \
            as an inventory delta of source whsync-reconcile through the workers (STORE_URL and AMQP_URL \
            needed), audited; repeating it publishes nothing twice. Exit 0: the books agree; 1: they differ; \
            2: the ERP could not be asked or its answer not read; 3: a correction failed; 64: SOURCE or an \
            option is unusable.
            """)

    @Argument(help: "The WMS's snapshot as JSON lines: a file, '-' for stdin, or an http(s) URL.") var source: String
    @Option(name: .customLong("warehouse"), help: "Only this warehouse (repeatable). Default: every warehouse in SOURCE.")
    var warehouses: [String] = []
    @Option(help: "Seconds each ERP request may take.") var timeout = 30
    @Flag(help: "One JSON object on stdout: the rows compared and every difference.") var json = false
    @Flag(help: "Publish a correction of each balance difference (needs the store and the broker).") var correct = false
    @OptionGroup var erp: ERPOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var broker: BrokerOptions
    @OptionGroup var actor: ActorOptions

    func run() async throws {
        guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 second") }
        let name = source == "-" ? "stdin" : (SnapshotSource(source)?.description ?? source)
        let snapshot = try await readSnapshot(name: name)
        let asked = warehouses.isEmpty ? snapshot.warehouses : Set(warehouses).sorted()
        guard !asked.isEmpty else { throw ValidationError("\(name) names no warehouse: nothing to compare") }

        let report: Reconciler.Report
        do {
            report = try await erp.withClient(timeout: .seconds(timeout)) { client in
                guard correct else {
                    return try await Reconciler(erp: client, logger: try broker.logger()).run(snapshot, warehouses: asked)
                }
                return try await store.withStore(logger: try broker.logger()) { store in
                    try await broker.withConnection(name: "whsync reconcile", confirms: true) { connection in
                        let corrector = Reconciler.Corrector(store: store, publisher: connection, actor: actor.name)
                        return try await Reconciler(erp: client, corrector: corrector, logger: try broker.logger())
                            .run(snapshot, warehouses: asked)
                    }
                }
            }
        } catch let failure as Reconciler.Failure {
            if failure.kind == .snapshot { throw ValidationError("\(name): \(failure)") }
            printError("whsync reconcile: \(failure)")
            throw ExitCode(2)
        }
        let view = ReconcileReport(report)
        if json {
            try printJSON(view)
        } else {
            for line in view.lines { print(line) }
        }
        for correction in view.corrections { printError(correction.line) }
        let compared = report.balances.rowsCompared
        var scope = "\(compared) balance row\(compared == 1 ? "" : "s")"
        if let documents = report.documents { scope += ", \(documents.compared) document\(documents.compared == 1 ? "" : "s")" }
        scope += " in \(asked.count) warehouse\(asked.count == 1 ? "" : "s")"
        let count = report.differenceCount
        printError(count == 0 ? "\(scope): the ERP agrees with the WMS" : "\(scope): \(count) differ")
        if view.corrections.contains(where: { $0.outcome == "failed" }) { throw ExitCode(3) }
        if count > 0 { throw ExitCode(1) }
    }

    /// The snapshot of SOURCE; a line that cannot be read is an error naming it.
    func readSnapshot(name: String) async throws -> WMSSnapshot {
        do {
            if source == "-" {
                var snapshot = WMSSnapshot()
                for try await (number, bytes) in LineReader(handle: .standardInput) {
                    try snapshot.add(line: bytes, number: number)
                }
                return snapshot
            }
            guard let location = SnapshotSource(source) else { throw ValidationError("SOURCE is empty") }
            return try WMSSnapshot.parse(try await location.read(timeout: .seconds(timeout)))
        } catch let error as WMSSnapshot.LineError {
            throw ValidationError("\(name) \(error)")
        } catch let error as SnapshotSource.ReadError {
            throw ValidationError(error.description)
        }
    }
}

/// What `whsync reconcile` prints: `--json`'s object, or the lines of text.
struct ReconcileReport: Encodable {
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

    struct Document: Encodable {
        let kind: String
        let warehouse: String
        let id: String
        /// `null`: that side does not know the document.
        let wms: String?
        let erp: String?

        enum CodingKeys: String, CodingKey {
            case kind, warehouse, id, wms, erp
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(kind, forKey: .kind)
            try container.encode(warehouse, forKey: .warehouse)
            try container.encode(id, forKey: .id)
            try container.encode(wms, forKey: .wms)
            try container.encode(erp, forKey: .erp)
        }
    }

    struct Count: Encodable {
        let kind: String
        let warehouse: String
        let wms: Int
        let erp: Int
    }

    struct Documents: Encodable {
        let compared: Int
        let differences: [Document]
        let counts: [Count]
    }

    struct Correction: Encodable {
        let warehouse: String
        let sku: String
        let status: String
        /// WMS minus ERP: what the correction books.
        let quantity: String?
        /// `published`, `resumed`, `refused` or `failed`.
        let outcome: String
        let eventId: String?
        let deadLetterId: Int64?
        let reason: String?

        var line: String {
            let subject = "\(warehouse) \(sku) \(status)"
            switch outcome {
            case "published", "resumed":
                return "corrected \(subject) by \(quantity ?? "?") as \(eventId ?? "?") (dead letter \(deadLetterId ?? 0)\(outcome == "resumed" ? ", resumed" : ""))"
            default:
                return "\(outcome == "refused" ? "not corrected" : "correction failed"): \(subject): \(reason ?? "")"
            }
        }
    }

    let warehouses: [String]
    let compared: Int
    let differences: [Row]
    let documents: Documents?
    let corrections: [Correction]

    init(_ report: Reconciler.Report) {
        warehouses = report.warehouses
        compared = report.balances.rowsCompared
        differences = report.balances.differences.map {
            Row(
                warehouse: $0.key.warehouse, sku: $0.key.sku, status: $0.key.status, wms: $0.expected.description,
                erp: $0.actual.description, difference: $0.difference?.description)
        }
        documents = report.documents.map { outcome in
            Documents(
                compared: outcome.compared,
                differences: outcome.differences.map {
                    Document(kind: $0.key.kind.rawValue, warehouse: $0.key.warehouse, id: $0.key.id, wms: $0.wms, erp: $0.erp)
                },
                counts: outcome.counts.map { Count(kind: $0.kind.rawValue, warehouse: $0.warehouse, wms: $0.wms, erp: $0.erp) })
        }
        corrections = report.corrections.map { correction in
            let key = correction.key
            func row(_ outcome: String, eventId: String? = nil, letter: Int64? = nil, reason: String? = nil) -> Correction {
                Correction(
                    warehouse: key.warehouse, sku: key.sku, status: key.status, quantity: correction.quantity?.description,
                    outcome: outcome, eventId: eventId, deadLetterId: letter, reason: reason)
            }
            switch correction.outcome {
            case .published(let eventId, let letter): return row("published", eventId: eventId, letter: letter)
            case .resumed(let eventId, let letter): return row("resumed", eventId: eventId, letter: letter)
            case .refused(let reason): return row("refused", reason: reason)
            case .failed(let reason): return row("failed", reason: reason)
            }
        }
    }

    /// The differences as lines of text.
    var lines: [String] {
        differences.map { row in
            let difference = row.difference.map { $0.hasPrefix("-") ? $0 : "+" + $0 } ?? "out of range"
            return "\(pad(row.warehouse, 8)) \(pad(row.sku, 16)) \(pad(row.status, 14)) WMS \(pad(row.wms, 14)) ERP \(pad(row.erp, 14)) ERP-WMS \(difference)"
        } + (documents?.differences ?? []).map { document in
            "\(pad(document.warehouse, 8)) \(pad(document.kind, 8)) \(pad(document.id, 22)) WMS \(pad(document.wms ?? "(none)", 16)) ERP \(document.erp ?? "(none)")"
        }
    }
}
