import Foundation
import Logging
import WarehouseSyncCore
import WarehouseSyncSQLite

/// The ERP's books in SQLite: documents with their lines (each under the idempotency key that
/// posted it), and balances per warehouse, SKU and stock status.
///
/// A posting is one `BEGIN IMMEDIATE` transaction: the key check, the document with its key,
/// its lines and the balance updates commit together or not at all, so a crash never leaves a
/// half-applied posting, and concurrent posts of one key produce exactly one document (the
/// database's single writer serialises them; `documents.idempotency_key UNIQUE` backs that up).
final class Ledger: Sendable {
    let database: SQLiteDatabase
    let masterData: MasterData
    /// 422 instead of a negative available balance.
    let strictStock: Bool

    init(database: SQLiteDatabase, masterData: MasterData, strictStock: Bool) {
        self.database = database
        self.masterData = masterData
        self.strictStock = strictStock
    }

    /// Opens (creating when missing) the ledger at `path` and brings its schema up to date.
    static func open(
        path: String, masterData: MasterData, strictStock: Bool = false, logger: Logger
    ) async throws -> Ledger {
        let database = try await SQLiteDatabase(path: path, logger: logger)
        do {
            try await database.migrate(Self.migrations)
        } catch {
            await database.close()
            throw error
        }
        return Ledger(database: database, masterData: masterData, strictStock: strictStock)
    }

    func close() async {
        await database.close()
    }

    static let migrations = [
        SQLiteMigration(id: "1-ledger", sql: """
            CREATE TABLE documents (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                document_id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL,
                idempotency_key TEXT NOT NULL UNIQUE,
                event_id TEXT NOT NULL,
                sequence INTEGER NOT NULL,
                warehouse TEXT NOT NULL,
                doc_key TEXT NOT NULL,
                subject TEXT NOT NULL,
                status TEXT NOT NULL,
                reason TEXT,
                correlation_id TEXT,
                moved_stock INTEGER NOT NULL,
                has_discrepancy INTEGER NOT NULL,
                body TEXT NOT NULL,
                posted_at TEXT NOT NULL
            );
            CREATE INDEX documents_by_type ON documents (type, position);
            CREATE INDEX documents_by_key ON documents (doc_key, position);
            CREATE INDEX documents_by_event ON documents (event_id);
            CREATE TABLE document_lines (
                document_id TEXT NOT NULL REFERENCES documents (document_id),
                line_no INTEGER NOT NULL,
                sku TEXT NOT NULL,
                uom TEXT NOT NULL,
                lot TEXT,
                quantity_micro INTEGER,
                quantity_expected_micro INTEGER,
                quantity_received_micro INTEGER,
                discrepancy_micro INTEGER,
                PRIMARY KEY (document_id, line_no)
            );
            CREATE TABLE idempotency_keys (
                idempotency_key TEXT PRIMARY KEY NOT NULL,
                document_id TEXT NOT NULL REFERENCES documents (document_id),
                endpoint TEXT NOT NULL,
                created_at TEXT NOT NULL
            );
            CREATE TABLE balances (
                warehouse TEXT NOT NULL,
                sku TEXT NOT NULL,
                status TEXT NOT NULL,
                quantity_micro INTEGER NOT NULL,
                uom TEXT NOT NULL,
                last_document_id TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (warehouse, sku, status)
            );
            """),
        // Every index on a random key costs a page write per posting (the WAL volume was the
        // ledger's largest cost): the key table repeated documents.idempotency_key (UNIQUE), and
        // lookups by eventId are an operator's query, fine as a scan.
        SQLiteMigration(id: "2-ledger-one-key-index", sql: """
            DROP TABLE idempotency_keys;
            DROP INDEX documents_by_event;
            """),
    ]

    // MARK: Posting

    /// What became of a posting.
    enum Outcome: Sendable {
        /// 201: the document was created.
        case posted(DocumentSummary)
        /// 409: the key was posted before, as this document. `payloadMatches` is `false` when the
        /// earlier post carried a different document or went to another endpoint.
        case duplicate(DocumentSummary, payloadMatches: Bool)
    }

    /// Posts `posting` under `idempotencyKey` in one transaction. Throws ``ERPRejection`` (422)
    /// for unknown master data or a balance the ERP cannot take; nothing is written then.
    func post(_ posting: Posting, idempotencyKey: String, now: Date = Date()) async throws -> Outcome {
        let (masterData, strictStock) = (masterData, strictStock)
        return try await database.write { db in
            var positions = DocumentPositions()
            return try Self.post(
                posting, idempotencyKey: idempotencyKey, now: now, masterData: masterData, strictStock: strictStock,
                positions: &positions, db)
        }
    }

    /// Posts each item of a batch request (DESIGN §3a) on its own, as ``post(_:idempotencyKey:now:)``
    /// would, in one transaction: an item refused (``ERPRejection``) leaves nothing of itself and
    /// takes nothing from the others. One outcome per item, in order.
    ///
    /// Every check of an item comes before its first write (``post(_:idempotencyKey:now:masterData:strictStock:positions:_:)``),
    /// so a refused item has written nothing and needs no savepoint.
    func post(batch: [(posting: Posting, idempotencyKey: String)], now: Date = Date()) async throws -> [Result<Outcome, ERPRejection>] {
        let (masterData, strictStock) = (masterData, strictStock)
        return try await database.write { db in
            var positions = DocumentPositions()
            return try batch.map { item in
                do {
                    return .success(try Self.post(
                        item.posting, idempotencyKey: item.idempotencyKey, now: now, masterData: masterData, strictStock: strictStock,
                        positions: &positions, db))
                } catch let rejection as ERPRejection {
                    return .failure(rejection)
                }
            }
        }
    }

    /// The next document position within one transaction: read once, then counted.
    struct DocumentPositions {
        private var next: Int64?

        mutating func take(_ db: SQLiteConnection) throws -> Int64 {
            let position = try next ?? db.queryFirst(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'documents'), 0) + 1 AS next"
            )?.int64("next") ?? 1
            next = position + 1
            return position
        }
    }

    private static func post(
        _ posting: Posting, idempotencyKey: String, now: Date, masterData: MasterData, strictStock: Bool,
        positions: inout DocumentPositions, _ db: SQLiteConnection
    ) throws -> Outcome {
        if let existing = try Self.document(forKey: idempotencyKey, db) {
            let matches = existing.type == posting.type && existing.body == posting.body
            return .duplicate(existing.summary, payloadMatches: matches)
        }
        try posting.check(against: masterData)
        let postedAt = Timestamp(now, fractionDigits: 3).text
        // Every refusal comes before the first write (a batch item refused leaves nothing without
        // a savepoint), and a position is taken only by a document that is written. Lines moving
        // one balance twice (a SKU on two lines) add up before it is written.
        var moved: [(StockMovement, Quantity)] = []
        var after: [String: Quantity] = [:]
        for movement in try Self.stockMovements(of: posting, db) {
            let balance = "\(movement.sku)\u{0}\(movement.status)"
            let updated = try Self.balanceAfter(
                movement, from: after[balance], warehouse: posting.warehouse, strictStock: strictStock, db)
            after[balance] = updated
            moved.append((movement, updated))
        }
        let position = try positions.take(db)
        let documentId = "\(posting.type.documentPrefix)-\(Self.pad(position))"
        for (movement, balance) in moved {
            try Self.write(balance, of: movement, warehouse: posting.warehouse, documentId: documentId, at: postedAt, masterData: masterData, db)
        }
        try db.execute(
            """
            INSERT INTO documents (position, document_id, type, idempotency_key, event_id, sequence, warehouse,
                doc_key, subject, status, reason, correlation_id, moved_stock, has_discrepancy, body, posted_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .integer(position), .text(documentId), .text(posting.type.rawValue), .text(idempotencyKey),
                .text(posting.eventId), .integer(posting.sequence), .text(posting.warehouse), .text(posting.key),
                .text(posting.subject), .text(posting.status), SQLiteValue(posting.reason),
                SQLiteValue(posting.correlationId), SQLiteValue(!moved.isEmpty), SQLiteValue(posting.hasDiscrepancy),
                .text(posting.body.serialized()), .text(postedAt),
            ])
        for (index, line) in posting.lines.enumerated() {
            try db.execute(
                """
                INSERT INTO document_lines (document_id, line_no, sku, uom, lot, quantity_micro,
                    quantity_expected_micro, quantity_received_micro, discrepancy_micro)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(documentId), SQLiteValue(index + 1), .text(line.sku), .text(line.uom), SQLiteValue(line.lot),
                    SQLiteValue(line.quantity?.microUnits), SQLiteValue(line.quantityExpected?.microUnits),
                    SQLiteValue(line.quantityReceived?.microUnits), SQLiteValue(line.discrepancy?.microUnits),
                ])
        }
        return .posted(DocumentSummary(
            position: position, documentId: documentId, type: posting.type, idempotencyKey: idempotencyKey,
            eventId: posting.eventId, sequence: posting.sequence, warehouse: posting.warehouse, key: posting.key,
            postedAt: postedAt, hasDiscrepancy: posting.hasDiscrepancy))
    }

    /// One change to a balance.
    struct StockMovement {
        let sku: String
        let uom: String
        let status: String
        let delta: Quantity
    }

    /// The balance changes a posting makes:
    /// - an inventory movement: its signed quantity, in its own status;
    /// - a goods issue: each line out of `available`;
    /// - a goods receipt: each line's `quantityReceived` into `available`, once per receipt (the
    ///   first goods receipt of a receipt id moves stock; a later one, such as
    ///   `putaway-complete` after `received`, is recorded without moving it again);
    /// - a shipment status: nothing.
    static func stockMovements(of posting: Posting, _ db: SQLiteConnection) throws -> [StockMovement] {
        let available = InventoryStatus.available.rawValue
        switch posting.type {
        case .inventoryMovement:
            return posting.lines.compactMap { line in
                line.quantity.map { StockMovement(sku: line.sku, uom: line.uom, status: posting.status, delta: $0) }
            }
        case .goodsIssue:
            return posting.lines.compactMap { line in
                line.quantity.map { StockMovement(sku: line.sku, uom: line.uom, status: available, delta: -$0) }
            }
        case .shipmentStatus:
            return []
        case .goodsReceipt:
            let earlier = try db.queryFirst(
                "SELECT 1 FROM documents WHERE type = ? AND doc_key = ? AND moved_stock = 1",
                [.text(DocumentType.goodsReceipt.rawValue), .text(posting.key)])
            guard earlier == nil else { return [] }
            return posting.lines.compactMap { line in
                guard let received = line.quantityReceived, !received.isZero else { return nil }
                return StockMovement(sku: line.sku, uom: line.uom, status: available, delta: received)
            }
        }
    }

    /// The balance `movement` leaves, from `pending` (what an earlier line of the same posting
    /// left) or else the stored one; throws ``ERPRejection`` when the ERP cannot take it.
    static func balanceAfter(
        _ movement: StockMovement, from pending: Quantity?, warehouse: String, strictStock: Bool, _ db: SQLiteConnection
    ) throws -> Quantity {
        let balance = try pending ?? Quantity(microUnits: db.queryFirst(
            "SELECT quantity_micro FROM balances WHERE warehouse = ? AND sku = ? AND status = ?",
            [.text(warehouse), .text(movement.sku), .text(movement.status)]
        )?.int64("quantity_micro") ?? 0)
        guard let updated = balance.adding(movement.delta) else {
            throw ERPRejection.unprocessable(
                "balance-out-of-range",
                "the \(movement.status) balance of \(movement.sku) in \(warehouse) would leave the range of ±9223372036854.775807")
        }
        if strictStock, movement.delta < .zero, updated < .zero {
            throw ERPRejection.unprocessable(
                "insufficient-stock",
                "\(movement.status) stock of \(movement.sku) in \(warehouse) is \(balance), less than the \(-movement.delta) taken")
        }
        return updated
    }

    static func write(
        _ updated: Quantity, of movement: StockMovement, warehouse: String, documentId: String, at postedAt: String,
        masterData: MasterData, _ db: SQLiteConnection
    ) throws {
        try db.execute(
            """
            INSERT INTO balances (warehouse, sku, status, quantity_micro, uom, last_document_id, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (warehouse, sku, status) DO UPDATE SET
                quantity_micro = excluded.quantity_micro, uom = excluded.uom,
                last_document_id = excluded.last_document_id, updated_at = excluded.updated_at
            """,
            [
                .text(warehouse), .text(movement.sku), .text(movement.status), .integer(updated.microUnits),
                .text(masterData.skus[movement.sku]?.uom ?? movement.uom), .text(documentId), .text(postedAt),
            ])
    }

    static func pad(_ position: Int64) -> String {
        let digits = String(position)
        return digits.count >= 8 ? digits : String(repeating: "0", count: 8 - digits.count) + digits
    }

    // MARK: Reading

    /// The document posted under `key`, with its type and body for the duplicate check.
    private static func document(forKey key: String, _ db: SQLiteConnection) throws -> (summary: DocumentSummary, type: DocumentType?, body: JSONValue?)? {
        guard let row = try db.queryFirst(
            "SELECT * FROM documents WHERE idempotency_key = ?",
            [.text(key)])
        else { return nil }
        let summary = try DocumentSummary(row: row)
        let body = try? JSONValue(parsing: row.string("body"))
        return (summary, summary.type, body)
    }

    /// Balances in warehouse, SKU, status order; `nil` filters match all.
    func balances(warehouse: String?, sku: String?, status: String?) async throws -> [Balance] {
        try await database.read { db in
            try db.query(
                """
                SELECT * FROM balances
                WHERE (?1 IS NULL OR warehouse = ?1) AND (?2 IS NULL OR sku = ?2) AND (?3 IS NULL OR status = ?3)
                ORDER BY warehouse, sku, status
                """,
                [SQLiteValue(warehouse), SQLiteValue(sku), SQLiteValue(status)]
            ).map { row in
                Balance(
                    warehouse: try row.string("warehouse"), sku: try row.string("sku"), status: try row.string("status"),
                    quantity: Quantity(microUnits: try row.int64("quantity_micro")), uom: try row.string("uom"),
                    lastDocumentId: try row.string("last_document_id"), updatedAt: try row.string("updated_at"))
            }
        }
    }

    /// Documents in posting order, with their lines.
    func documents(_ filter: DocumentFilter) async throws -> [Document] {
        try await database.read { db in
            let rows = try db.query(
                """
                SELECT * FROM documents
                WHERE (?1 IS NULL OR type = ?1) AND (?2 IS NULL OR doc_key = ?2) AND (?3 IS NULL OR warehouse = ?3)
                  AND (?4 IS NULL OR event_id = ?4) AND (?5 IS NULL OR idempotency_key = ?5)
                  AND (?6 IS NULL OR document_id = ?6) AND (?7 IS NULL OR has_discrepancy = ?7)
                  AND position > ?8
                ORDER BY position
                LIMIT ?9
                """,
                [
                    SQLiteValue(filter.type?.rawValue), SQLiteValue(filter.key), SQLiteValue(filter.warehouse),
                    SQLiteValue(filter.eventId), SQLiteValue(filter.idempotencyKey), SQLiteValue(filter.documentId),
                    filter.hasDiscrepancy.map { SQLiteValue($0) } ?? .null, .integer(filter.afterPosition),
                    SQLiteValue(filter.limit),
                ])
            return try rows.map { row in
                let summary = try DocumentSummary(row: row)
                let lines = try db.query(
                    "SELECT * FROM document_lines WHERE document_id = ? ORDER BY line_no", [.text(summary.documentId)]
                ).map(DocumentLine.init(row:))
                let body = (try? JSONValue(parsing: row.string("body"))) ?? .null
                return Document(
                    summary: summary, status: try row.string("status"), reason: try row.optionalString("reason"),
                    correlationId: try row.optionalString("correlation_id"), movedStock: try row.bool("moved_stock"),
                    lines: lines, body: body)
            }
        }
    }

    /// Documents per type.
    func documentCounts() async throws -> [DocumentType: Int64] {
        try await database.read { db in
            var counts: [DocumentType: Int64] = [:]
            for row in try db.query("SELECT type, count(*) AS n FROM documents GROUP BY type") {
                if let type = DocumentType(rawValue: try row.string("type")) {
                    counts[type] = try row.int64("n")
                }
            }
            return counts
        }
    }
}

/// What identifies a posted document.
struct DocumentSummary: Sendable, Equatable {
    let position: Int64
    let documentId: String
    let type: DocumentType
    let idempotencyKey: String
    let eventId: String
    let sequence: Int64
    let warehouse: String
    let key: String
    let postedAt: String
    let hasDiscrepancy: Bool

    init(
        position: Int64, documentId: String, type: DocumentType, idempotencyKey: String, eventId: String,
        sequence: Int64, warehouse: String, key: String, postedAt: String, hasDiscrepancy: Bool
    ) {
        self.position = position
        self.documentId = documentId
        self.type = type
        self.idempotencyKey = idempotencyKey
        self.eventId = eventId
        self.sequence = sequence
        self.warehouse = warehouse
        self.key = key
        self.postedAt = postedAt
        self.hasDiscrepancy = hasDiscrepancy
    }

    init(row: SQLiteRow) throws {
        let typeName = try row.string("type")
        guard let type = DocumentType(rawValue: typeName) else {
            throw SQLiteError(code: .decoding, message: "unknown document type '\(typeName)'")
        }
        self.init(
            position: try row.int64("position"), documentId: try row.string("document_id"), type: type,
            idempotencyKey: try row.string("idempotency_key"), eventId: try row.string("event_id"),
            sequence: try row.int64("sequence"), warehouse: try row.string("warehouse"), key: try row.string("doc_key"),
            postedAt: try row.string("posted_at"), hasDiscrepancy: try row.bool("has_discrepancy"))
    }

    var jsonMembers: [(String, JSONValue)] {
        [
            ("documentId", .string(documentId)), ("type", .string(type.rawValue)),
            ("idempotencyKey", .string(idempotencyKey)), ("eventId", .string(eventId)),
            ("sequence", .number(sequence)), ("warehouse", .string(warehouse)), ("key", .string(key)),
            ("hasDiscrepancy", .bool(hasDiscrepancy)), ("postedAt", .string(postedAt)),
        ]
    }
}

struct DocumentLine: Sendable, Equatable {
    let lineNumber: Int64
    let sku: String
    let uom: String
    let lot: String?
    let quantity: Quantity?
    let quantityExpected: Quantity?
    let quantityReceived: Quantity?
    let discrepancy: Quantity?

    init(row: SQLiteRow) throws {
        func quantity(_ column: String) throws -> Quantity? {
            try row.optionalInt64(column).map { Quantity(microUnits: $0) }
        }
        lineNumber = try row.int64("line_no")
        sku = try row.string("sku")
        uom = try row.string("uom")
        lot = try row.optionalString("lot")
        self.quantity = try quantity("quantity_micro")
        quantityExpected = try quantity("quantity_expected_micro")
        quantityReceived = try quantity("quantity_received_micro")
        discrepancy = try quantity("discrepancy_micro")
    }

    var json: JSONValue {
        var members: [(String, JSONValue)] = [("line", .number(lineNumber)), ("sku", .string(sku)), ("uom", .string(uom))]
        if let lot { members.append(("lot", .string(lot))) }
        if let quantity { members.append(("quantity", quantity.jsonValue)) }
        if let quantityExpected { members.append(("quantityExpected", quantityExpected.jsonValue)) }
        if let quantityReceived { members.append(("quantityReceived", quantityReceived.jsonValue)) }
        if let discrepancy {
            members.append(("discrepancy", .bool(!discrepancy.isZero)))
            members.append(("discrepancyQuantity", discrepancy.jsonValue))
        }
        return .object(JSONObject(uniqueKeysWithValues: members))
    }
}

struct Document: Sendable {
    let summary: DocumentSummary
    let status: String
    let reason: String?
    let correlationId: String?
    let movedStock: Bool
    let lines: [DocumentLine]
    let body: JSONValue

    var json: JSONValue {
        var members: [(String, JSONValue)] = [("position", .number(summary.position))]
        members += summary.jsonMembers
        members.append(("status", .string(status)))
        if let reason { members.append(("reason", .string(reason))) }
        members.append(("correlationId", correlationId.map(JSONValue.string) ?? .null))
        members.append(("movedStock", .bool(movedStock)))
        members.append(("lines", .array(lines.map(\.json))))
        members.append(("body", body))
        return .object(JSONObject(uniqueKeysWithValues: members))
    }
}

struct DocumentFilter: Sendable {
    var type: DocumentType?
    var key: String?
    var warehouse: String?
    var eventId: String?
    var idempotencyKey: String?
    var documentId: String?
    var hasDiscrepancy: Bool?
    /// Only documents after this position (for paging).
    var afterPosition: Int64 = 0
    var limit = 1000
}

struct Balance: Sendable, Equatable {
    let warehouse: String
    let sku: String
    let status: String
    let quantity: Quantity
    let uom: String
    let lastDocumentId: String
    let updatedAt: String

    var json: JSONValue {
        [
            "warehouse": .string(warehouse), "sku": .string(sku), "status": .string(status),
            "quantity": quantity.jsonValue, "uom": .string(uom), "lastDocumentId": .string(lastDocumentId),
            "updatedAt": .string(updatedAt),
        ]
    }
}
