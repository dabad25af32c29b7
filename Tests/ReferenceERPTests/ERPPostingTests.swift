import Foundation
import HummingbirdTesting
import Testing
import WarehouseSyncCore
import WarehouseSyncSQLite

@testable import ReferenceERP

@Suite("Reference ERP: postings over HTTP")
struct ERPPostingTests {
    @Test("a posting is answered 201 with a document id; the correlation id is echoed")
    func posting() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                let response = try await erp.post(.inventoryMovement, inventoryMovement("e-1"), correlationId: "corr-42")
                #expect(response.status == 201)
                #expect(response.json["documentId"]?.stringValue == "IM-00000001")
                #expect(response.json["eventId"]?.stringValue == "e-1")
                #expect(response.json["key"]?.stringValue == "WH1/SKU-0001")
                #expect(response.header("X-Correlation-ID") == "corr-42")
                #expect(response.header("Content-Type") == "application/json")
            }
        }
    }

    @Test("a repeated Idempotency-Key is answered 409 naming the same document, and posts nothing")
    func duplicate() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                let first = try await erp.post(.goodsIssue, shipment("e-1"))
                #expect(first.status == 201)
                let documentId = try #require(first.json["documentId"]?.stringValue)

                let again = try await erp.post(.goodsIssue, shipment("e-1"))
                #expect(again.status == 409)
                #expect(again.json["documentId"]?.stringValue == documentId)
                #expect(again.json["payloadMatches"] == .bool(true))
                #expect(again.json["message"]?.stringValue?.contains(documentId) == true)

                // Same key, another document (or endpoint): still 409, flagged as a different payload.
                let changed = try await erp.post(.goodsIssue, shipment("e-1", lines: [("SKU-0001", "2", "EA")]))
                #expect(changed.status == 409)
                #expect(changed.json["payloadMatches"] == .bool(false))
                let otherEndpoint = try await erp.post(.inventoryMovement, inventoryMovement("e-1"))
                #expect(otherEndpoint.status == 409)
                #expect(otherEndpoint.json["documentId"]?.stringValue == documentId)

                #expect(try await erp.documents().count == 1)
                #expect(try await erp.balance("WH1", "SKU-0001") == "-1")
            }
        }
    }

    @Test(
        "unknown master data and a wrong unit of measure are answered 422, and the key stays unused",
        arguments: [
            (DocumentType.inventoryMovement, inventoryMovement("e-1", warehouse: "WH9"), "unknown-warehouse", "warehouse"),
            (.inventoryMovement, inventoryMovement("e-1", sku: "SKU-9999"), "unknown-sku", "sku"),
            (.inventoryMovement, inventoryMovement("e-1", uom: "KG"), "uom-mismatch", "uom"),
            (.goodsIssue, shipment("e-1", lines: [("SKU-0001", "1", "EA"), ("NOPE", "1", "EA")]), "unknown-sku", "lines[1].sku"),
            (.goodsReceipt, receipt("e-1", lines: [("SKU-0003", "1", "1", "EA")]), "uom-mismatch", "lines[0].uom"),
        ]
    )
    func unprocessable(type: DocumentType, document: JSONValue, code: String, field: String) async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                let response = try await erp.post(type, document)
                #expect(response.status == 422)
                #expect(response.json["error"]?.stringValue == code)
                #expect(response.json["field"]?.stringValue == field)
                #expect(response.json["message"]?.stringValue?.isEmpty == false)
                #expect(try await erp.documents().isEmpty)
                #expect(try await erp.get("/balances").json["balances"]?.arrayValue?.isEmpty == true)

                // The rejection did not consume the key: the corrected document posts.
                let fixed: JSONValue = switch type {
                case .inventoryMovement: inventoryMovement("e-1")
                case .goodsReceipt: receipt("e-1")
                default: shipment("e-1")
                }
                #expect(try await erp.post(type, fixed).status == 201)
            }
        }
    }

    static let wellFormed =
        #"{"eventId":"e-1","sequence":1,"warehouse":"WH1","sku":"SKU-0001","quantity":1,"uom":"EA","status":"available","reason":"pick"}"#

    @Test(
        "malformed requests are answered 400",
        arguments: [
            ("{\"eventId\": ", "e-1", "invalid-document"),
            ("[1, 2]", "e-1", "invalid-document"),
            (wellFormed.replacingOccurrences(of: #""quantity":1"#, with: #""quantity":"1.5""#), "e-1", "invalid-document"),
            (wellFormed.replacingOccurrences(of: #""quantity":1"#, with: #""quantity":0.1234567"#), "e-1", "invalid-document"),
            (wellFormed.replacingOccurrences(of: #""sequence":1"#, with: #""sequence":0"#), "e-1", "invalid-document"),
            (wellFormed.replacingOccurrences(of: #""sequence":1"#, with: #""sequence":1.5"#), "e-1", "invalid-document"),
            (wellFormed.replacingOccurrences(of: #""warehouse":"WH1","#, with: ""), "e-1", "invalid-document"),
            (wellFormed, "other-key", "idempotency-key-mismatch"),
            (wellFormed, "", "missing-idempotency-key"),
        ]
    )
    func malformed(body: String, key: String, code: String) async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                let headers = key.isEmpty ? [:] : ["Idempotency-Key": key]
                let response = try await erp.request(.post, "/inventory-movements", headers: headers, body: body)
                #expect(response.status == 400)
                #expect(response.json["error"]?.stringValue == code)
                #expect(try await erp.documents().isEmpty)
            }
        }
    }

    @Test(
        "values outside the canonical vocabulary, and statuses posted to the wrong endpoint, are answered 422",
        arguments: [
            (DocumentType.inventoryMovement, inventoryMovement("e-1", status: "QC"), "invalid-status"),
            (.inventoryMovement, inventoryMovement("e-1", reason: "theft"), "invalid-reason"),
            (.inventoryMovement, inventoryMovement("e-1", quantity: "0"), "invalid-quantity"),
            (.goodsIssue, shipment("e-1", status: "packed"), "wrong-endpoint"),
            (.shipmentStatus, shipment("e-1", status: "shipped"), "wrong-endpoint"),
            (.goodsIssue, shipment("e-1", lines: [("SKU-0001", "-1", "EA")]), "invalid-quantity"),
            (.goodsIssue, shipment("e-1", lines: []), "invalid-lines"),
            (.goodsReceipt, receipt("e-1", lines: [("SKU-0001", "1", "-1", "EA")]), "invalid-quantity"),
        ]
    )
    func vocabulary(type: DocumentType, document: JSONValue, code: String) async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                let response = try await erp.post(type, document)
                #expect(response.status == 422)
                #expect(response.json["error"]?.stringValue == code)
            }
        }
    }

    @Test("balances are exact decimals: 0.1 + 0.2 is 0.3, six fraction digits are kept")
    func exactDecimals() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("a", sequence: 1, quantity: "0.1")).status == 201)
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("b", sequence: 2, quantity: "0.2")).status == 201)
                #expect(try await erp.balance("WH1", "SKU-0001") == "0.3")
                let text = try await erp.get("/balances?warehouse=WH1&sku=SKU-0001").text
                #expect(text.contains(#""quantity":0.3,"#))

                let sku = "SKU-0005"  // kept in KG
                let steps = ["0.000001", "1.999999", "-0.5", "1e-6", "12.50"]
                for (index, step) in steps.enumerated() {
                    let response = try await erp.post(
                        .inventoryMovement,
                        inventoryMovement("k-\(index)", sequence: index + 1, sku: sku, quantity: step, uom: "KG"))
                    #expect(response.status == 201)
                }
                #expect(try await erp.balance("WH1", sku) == "14.000001")

                // Per status: quarantined stock is a balance of its own.
                #expect(try await erp.post(
                    .inventoryMovement,
                    inventoryMovement("q", sequence: 9, sku: sku, quantity: "-0.000001", uom: "KG", status: "quarantined")
                ).status == 201)
                #expect(try await erp.balance("WH1", sku, status: "quarantined") == "-0.000001")
                #expect(try await erp.balance("WH1", sku) == "14.000001")

                // Unknown filters are refused rather than answered with an empty list.
                #expect(try await erp.get("/balances?warehouse=WH9").status == 422)
                #expect(try await erp.get("/balances?sku=NOPE").status == 422)
            }
        }
    }

    @Test("goods issues take available stock; receipts add quantityReceived once and record discrepancies")
    func stockFlows() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                let received = try await erp.post(.goodsReceipt, receipt(
                    "r-1", lines: [("SKU-0001", "10", "8", "EA"), ("SKU-0005", "2.5", "2.5", "KG")]))
                #expect(received.status == 201)
                #expect(received.json["hasDiscrepancy"] == .bool(true))
                #expect(received.json["documentId"]?.stringValue?.hasPrefix("GR-") == true)
                // putaway-complete of the same receipt is recorded without counting the stock twice.
                let putaway = try await erp.post(.goodsReceipt, receipt(
                    "r-2", sequence: 2, status: "putaway-complete", lines: [("SKU-0001", "10", "8", "EA")]))
                #expect(putaway.status == 201)
                #expect(try await erp.balance("WH1", "SKU-0001") == "8")
                #expect(try await erp.balance("WH1", "SKU-0005") == "2.5")

                #expect(try await erp.post(.shipmentStatus, shipment("s-1", status: "packed")).status == 201)
                #expect(try await erp.balance("WH1", "SKU-0001") == "8")
                #expect(try await erp.post(.goodsIssue, shipment(
                    "s-2", sequence: 2, lines: [("SKU-0001", "3", "EA"), ("SKU-0001", "0.25", "EA")])).status == 201)
                #expect(try await erp.balance("WH1", "SKU-0001") == "4.75")

                let discrepancies = try await erp.documents("hasDiscrepancy=true")
                #expect(discrepancies.count == 2)
                let lines = discrepancies.first?["lines"]?.arrayValue ?? []
                #expect(lines.first?["discrepancy"] == .bool(true))
                #expect(lines.first?["discrepancyQuantity"]?.numberLiteral == "-2")
                #expect(lines.last?["discrepancy"] == .bool(false))
                #expect(discrepancies.map { $0["movedStock"] } == [.bool(true), .bool(false)])
            }
        }
    }

    @Test("strict stock refuses a goods issue beyond the available balance")
    func strictStock() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration(strictStock: true)) { erp in
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("in", quantity: "2")).status == 201)
                let response = try await erp.post(.goodsIssue, shipment("out", lines: [("SKU-0001", "2.5", "EA")]))
                #expect(response.status == 422)
                #expect(response.json["error"]?.stringValue == "insufficient-stock")
                #expect(try await erp.balance("WH1", "SKU-0001") == "2")
                #expect(try await erp.post(.goodsIssue, shipment("out", lines: [("SKU-0001", "2", "EA")])).status == 201)
                #expect(try await erp.balance("WH1", "SKU-0001") == "0")
            }
        }
    }

    @Test("a batch refuses an item whose later line lacks stock and books the others, positions without holes")
    func batchItemRefusedAtItsSecondLine() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration(strictStock: true)) { erp in
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("in", quantity: "2")).status == 201)
                func item(_ type: DocumentType, _ document: JSONValue) -> JSONValue {
                    ["kind": .string(type.rawValue), "idempotencyKey": document["eventId"]!, "document": document]
                }
                let batch: JSONValue = ["items": [
                    // Its two lines of one SKU take 2.5 of the 2 there are: refused at the second.
                    item(.goodsIssue, shipment("short", shipmentId: "SHP-1", lines: [("SKU-0001", "1", "EA"), ("SKU-0001", "1.5", "EA")])),
                    item(.inventoryMovement, inventoryMovement("other", sku: "SKU-0002", quantity: "3")),
                    // Two lines of one SKU taking exactly what there is.
                    item(.goodsIssue, shipment("exact", shipmentId: "SHP-2", lines: [("SKU-0001", "1", "EA"), ("SKU-0001", "1", "EA")])),
                ]]
                let response = try await erp.request(.post, "/postings:batch", body: batch.serialized())
                #expect(response.status == 200)
                let results = response.json["results"]?.arrayValue ?? []
                #expect(results.map { $0["status"]?.numberLiteral } == ["422", "201", "201"])
                #expect(results.first?["error"]?.stringValue == "insufficient-stock")
                #expect(try await erp.balance("WH1", "SKU-0001") == "0")
                #expect(try await erp.balance("WH1", "SKU-0002") == "3")
                let documents = try await erp.documents()
                #expect(documents.map { $0["eventId"]?.stringValue } == ["in", "other", "exact"])
                #expect(documents.map { $0["position"]?.numberLiteral } == ["1", "2", "3"])
                #expect(documents.map { $0["documentId"]?.stringValue } == ["IM-00000001", "IM-00000002", "GI-00000003"])
                // The single route counts on from there.
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("later", sequence: 2)).json["documentId"] == "IM-00000004")
            }
        }
    }

    @Test("GET /documents lists postings in order, by type and by key, with eventId and sequence")
    func documents() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("i-1", sequence: 1)).status == 201)
                #expect(try await erp.post(.shipmentStatus, shipment("s-1", sequence: 1, status: "packed")).status == 201)
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("i-2", sequence: 2)).status == 201)
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("i-3", sequence: 1, sku: "SKU-0002")).status == 201)
                #expect(try await erp.post(.goodsIssue, shipment("s-2", sequence: 2)).status == 201)

                let all = try await erp.documents()
                #expect(all.map { $0["eventId"]?.stringValue } == ["i-1", "s-1", "i-2", "i-3", "s-2"])
                #expect(all.map { $0["position"]?.numberLiteral } == ["1", "2", "3", "4", "5"])

                let byKey = try await erp.documents("key=WH1/SKU-0001")
                #expect(byKey.map { $0["eventId"]?.stringValue } == ["i-1", "i-2"])
                #expect(byKey.map { $0["sequence"]?.numberLiteral } == ["1", "2"])

                let shipmentKey = try await erp.documents("key=WH1/SHP-1")
                #expect(shipmentKey.map { $0["type"]?.stringValue } == ["shipment-status", "goods-issue"])
                #expect(try await erp.documents("type=goods-issues").map { $0["eventId"]?.stringValue } == ["s-2"])
                let page = try await erp.documents("type=inventory-movement&after=1&limit=1")
                #expect(page.map { $0["eventId"]?.stringValue } == ["i-2"])
                let one = try await erp.documents("eventId=i-3")
                #expect(one.count == 1)
                #expect(one.first?["body"]?["sku"]?.stringValue == "SKU-0002")
                #expect(one.first?["body"]?["occurredAt"]?.stringValue == "2026-01-15T10:00:00Z")
                #expect(try await erp.get("/documents?type=bogus").status == 400)
            }
        }
    }

    @Test("concurrent posts of one key produce exactly one document")
    func concurrentSameKey() async throws {
        try await withTestDirectory { directory in
            // AsyncHTTPClient (HummingbirdTesting's .ahc): .live's client sends one request at a time.
            try await withERP(directory.configuration(), setup: .ahc(.http)) { erp in
                let results = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                    for _ in 0..<24 {
                        group.addTask {
                            let response = try await erp.post(.goodsIssue, shipment("same-key"))
                            return (response.status, response.json["documentId"]?.stringValue)
                        }
                    }
                    var results: [(Int, String?)] = []
                    for try await result in group { results.append(result) }
                    return results
                }
                #expect(results.filter { $0.0 == 201 }.count == 1)
                #expect(results.filter { $0.0 == 409 }.count == 23)
                #expect(Set(results.map(\.1)).count == 1)
                #expect(try await erp.documents().count == 1)
                #expect(try await erp.balance("WH1", "SKU-0001") == "-1")
            }
        }
    }

    @Test("a ledger written before migration 2 keeps its documents and still answers a repeated key with 409")
    func upgradeFromTheFirstSchema() async throws {
        try await withTestDirectory { fresh in
            // A posting as the current code writes it, to copy into a ledger of the first schema.
            let first = try await withERP(fresh.configuration()) { erp in
                try await erp.post(.inventoryMovement, inventoryMovement("u-1"))
            }
            #expect(first.status == 201)
            let source = try await SQLiteDatabase(path: fresh.databasePath)
            let document = try #require(try await source.read { db in try db.queryFirst("SELECT * FROM documents") })
            let lines = try await source.read { db in try db.query("SELECT * FROM document_lines") }
            await source.close()

            try await withTestDirectory { old in
                let database = try await SQLiteDatabase(path: old.databasePath)
                _ = try await database.migrate([Ledger.migrations[0]])
                try await database.write { db in
                    func insert(_ table: String, _ row: SQLiteRow) throws {
                        let placeholders = Array(repeating: "?", count: row.values.count).joined(separator: ", ")
                        _ = try db.execute(
                            "INSERT INTO \(table) (\(row.columns.joined(separator: ", "))) VALUES (\(placeholders))", row.values)
                    }
                    try insert("documents", document)
                    for line in lines { try insert("document_lines", line) }
                    _ = try db.execute(
                        "INSERT INTO idempotency_keys (idempotency_key, document_id, endpoint, created_at) VALUES (?, ?, ?, ?)",
                        [document["idempotency_key"]!, document["document_id"]!, .text("/inventory-movements"), document["posted_at"]!])
                }
                await database.close()

                try await withERP(old.configuration()) { erp in
                    let again = try await erp.post(.inventoryMovement, inventoryMovement("u-1"))
                    #expect(again.status == 409)
                    let documentId = try #require(document["document_id"]?.stringValue)
                    #expect(again.json["documentId"] == .string(documentId))
                    #expect(again.json["payloadMatches"] == .bool(true))
                    #expect(try await erp.post(.inventoryMovement, inventoryMovement("u-2", sequence: 2)).status == 201)
                    #expect(try await erp.documents().count == 2)
                    #expect(try await erp.documents("eventId=u-1").count == 1)
                }
                let upgraded = try await SQLiteDatabase(path: old.databasePath)
                let tables = try await upgraded.read { db in
                    try db.query("SELECT name FROM sqlite_master WHERE name IN ('idempotency_keys', 'documents_by_event')")
                }
                await upgraded.close()
                #expect(tables.isEmpty)
            }
        }
    }

    @Test("the ledger survives a restart on the same file")
    func persistence() async throws {
        try await withTestDirectory { directory in
            let configuration = directory.configuration()
            let documentId = try await withERP(configuration) { erp in
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("p-1", quantity: "0.1")).status == 201)
                let second = try await erp.post(.inventoryMovement, inventoryMovement("p-2", sequence: 2, quantity: "0.2"))
                return try #require(second.json["documentId"]?.stringValue)
            }
            try await withERP(configuration) { erp in
                #expect(try await erp.balance("WH1", "SKU-0001") == "0.3")
                let again = try await erp.post(.inventoryMovement, inventoryMovement("p-2", sequence: 2, quantity: "0.2"))
                #expect(again.status == 409)
                #expect(again.json["documentId"]?.stringValue == documentId)
                let next = try await erp.post(.inventoryMovement, inventoryMovement("p-3", sequence: 3))
                #expect(next.json["documentId"]?.stringValue == "IM-00000003")
                #expect(try await erp.documents().count == 3)
            }
        }
    }

    @Test("GET /stats counts postings, duplicates and rejections per endpoint")
    func stats() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                _ = try await erp.post(.inventoryMovement, inventoryMovement("a"))
                _ = try await erp.post(.inventoryMovement, inventoryMovement("a"))
                _ = try await erp.post(.inventoryMovement, inventoryMovement("b", sku: "NOPE"))
                _ = try await erp.post(.goodsIssue, shipment("c"))
                let stats = try await erp.get("/stats").json
                let inventory = stats["endpoints"]?["/inventory-movements"]
                #expect(inventory?["requests"] == 3)
                #expect(inventory?["posted"] == 1)
                #expect(inventory?["duplicates"] == 1)
                #expect(inventory?["rejected"] == 1)
                #expect(inventory?["statuses"]?["422"] == 1)
                #expect(stats["totals"]?["posted"] == 2)
                #expect(stats["documents"]?["goods-issue"] == 1)
                #expect(stats["documents"]?["inventory-movement"] == 1)
            }
        }
    }
}

@Suite("Reference ERP: bearer token")
struct ERPAuthTests {
    @Test("with a token configured, requests need it: 401 without or with a wrong one")
    func token() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration(token: "s3cret-token")) { erp in
                let missing = try await erp.post(.inventoryMovement, inventoryMovement("e-1"))
                #expect(missing.status == 401)
                #expect(missing.header("WWW-Authenticate") == "Bearer")
                #expect(missing.json["error"]?.stringValue == "unauthorized")
                #expect(missing.text.contains("s3cret") == false)
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("e-1"), token: "s3cret-tokem").status == 401)
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("e-1"), token: "s3cret-token-").status == 401)
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("e-1"), token: "").status == 401)
                #expect(try await erp.get("/balances").status == 401)
                #expect(try await erp.setFaults(["errorRate": 1]).status == 401)

                #expect(try await erp.post(.inventoryMovement, inventoryMovement("e-1"), token: "s3cret-token").status == 201)
                #expect(try await erp.get("/balances", token: "s3cret-token").status == 200)
                // Probes need no secret.
                #expect(try await erp.get("/health").status == 200)
                let stats = try await erp.get("/stats", token: "s3cret-token").json
                #expect(stats["totals"]?["unauthorized"] == 6)
            }
        }
    }

    @Test("the comparison accepts exactly 'Bearer <token>', the scheme in any case")
    func matching() throws {
        let token = try #require(BearerToken("abc.DEF-123"))
        #expect(token.matches(authorization: "Bearer abc.DEF-123"))
        #expect(token.matches(authorization: "bearer abc.DEF-123"))
        #expect(token.matches(authorization: "BEARER abc.DEF-123"))
        #expect(!token.matches(authorization: "Bearer abc.DEF-12"))
        #expect(!token.matches(authorization: "Bearer abc.DEF-1234"))
        #expect(!token.matches(authorization: "Basic abc.DEF-123"))
        #expect(!token.matches(authorization: "Bearerabc.DEF-123"))
        #expect(!token.matches(authorization: nil))
        #expect("\(token)" == "<redacted>")
        #expect(BearerToken("") == nil)
        #expect(BearerToken("has space") == nil)
    }
}
