import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import WarehouseSyncCore
import WarehouseSyncTesting

@testable import ReferenceERP

/// The repository's seed file, the one the executable uses by default.
let repositorySeedFile = TestRepository.seedFile
let testMasterData = InProcessERP.seedMasterData

/// A temp directory holding the ledger file of one test (or of several servers in a row).
struct ERPTestDirectory: Sendable {
    let path: String

    var databasePath: String { (path as NSString).appendingPathComponent("ledger.db") }

    func configuration(token: String? = nil, faults: FaultSettings = FaultSettings(), strictStock: Bool = false) -> ReferenceERPConfiguration {
        InProcessERP.configuration(databasePath: databasePath, token: token, faults: faults, strictStock: strictStock)
    }
}

/// Runs `body` with a new temp directory, removed afterwards.
func withTestDirectory<T>(_ body: (ERPTestDirectory) async throws -> T) async throws -> T {
    try await TestDirectory.with("reference-erp-test") { try await body(ERPTestDirectory(path: $0.path)) }
}

/// Starts an ERP on a free loopback port, runs `body` with a client for it over real HTTP, then
/// stops it (closing its ledger).
func withERP<T: Sendable>(
    _ configuration: ReferenceERPConfiguration,
    setup: TestingSetup = .live,
    _ body: @Sendable (ERPClient) async throws -> T
) async throws -> T {
    try await InProcessERP.with(configuration, setup: setup) { client in try await body(ERPClient(client: client)) }
}

/// A response with its body parsed as JSON.
struct ERPResponse: Sendable {
    let status: Int
    let headers: HTTPFields
    let text: String
    let json: JSONValue

    func header(_ name: String) -> String? {
        headers[HTTPFields.Element.Name(name)!]
    }
}

struct ERPClient: Sendable {
    let client: any TestClientProtocol

    func request(
        _ method: HTTPRequest.Method, _ uri: String, headers: [String: String] = [:], body: String? = nil
    ) async throws -> ERPResponse {
        var fields = HTTPFields()
        for (name, value) in headers {
            fields[HTTPFields.Element.Name(name)!] = value
        }
        if body != nil {
            fields[.contentType] = "application/json"
        }
        let response = try await client.executeRequest(
            uri: uri, method: method, headers: fields, body: body.map { ByteBuffer(string: $0) })
        let text = String(buffer: response.body)
        let json = (try? JSONValue(parsing: text)) ?? .null
        return ERPResponse(status: Int(response.status.code), headers: response.headers, text: text, json: json)
    }

    /// POSTs `document` with `Idempotency-Key` = its `eventId` unless `key` says otherwise.
    func post(
        _ type: DocumentType, _ document: JSONValue, key: String? = nil, token: String? = nil,
        correlationId: String? = nil
    ) async throws -> ERPResponse {
        var headers: [String: String] = [:]
        if let idempotencyKey = key ?? document["eventId"]?.stringValue { headers["Idempotency-Key"] = idempotencyKey }
        if let token { headers["Authorization"] = "Bearer \(token)" }
        if let correlationId { headers["X-Correlation-ID"] = correlationId }
        return try await request(.post, type.path, headers: headers, body: document.serialized())
    }

    func get(_ uri: String, token: String? = nil) async throws -> ERPResponse {
        try await request(.get, uri, headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:])
    }

    func setFaults(_ document: JSONValue, token: String? = nil) async throws -> ERPResponse {
        var headers: [String: String] = [:]
        if let token { headers["Authorization"] = "Bearer \(token)" }
        return try await request(.post, "/admin/faults", headers: headers, body: document.serialized())
    }

    /// The balance of one warehouse, SKU and status as its exact JSON number text; `nil` when
    /// there is no balance row.
    func balance(_ warehouse: String, _ sku: String, status: String = "available") async throws -> String? {
        let response = try await get("/balances?warehouse=\(warehouse)&sku=\(sku)&status=\(status)")
        return response.json["balances"]?.arrayValue?.first?["quantity"]?.numberLiteral
    }

    func documents(_ query: String = "") async throws -> [JSONValue] {
        let response = try await get("/documents" + (query.isEmpty ? "" : "?" + query))
        return response.json["documents"]?.arrayValue ?? []
    }
}

// MARK: Documents

/// A canonical inventory movement.
func inventoryMovement(
    _ eventId: String, sequence: Int = 1, warehouse: String = "WH1", sku: String = "SKU-0001",
    quantity: String = "1", uom: String = "EA", status: String = "available", reason: String = "adjustment"
) -> JSONValue {
    [
        "eventId": .string(eventId), "sequence": .number(sequence), "warehouse": .string(warehouse),
        "occurredAt": "2026-01-15T10:00:00Z", "sku": .string(sku), "quantity": .number(quantity),
        "uom": .string(uom), "status": .string(status), "reason": .string(reason),
    ]
}

/// A canonical goods issue (`shipped`) or shipment status.
func shipment(
    _ eventId: String, sequence: Int = 1, warehouse: String = "WH1", shipmentId: String = "SHP-1",
    status: String = "shipped", lines: [(sku: String, quantity: String, uom: String)] = [("SKU-0001", "1", "EA")]
) -> JSONValue {
    [
        "eventId": .string(eventId), "sequence": .number(sequence), "warehouse": .string(warehouse),
        "occurredAt": "2026-01-15T10:00:00Z", "shipmentId": .string(shipmentId), "orderRef": "SO-1",
        "status": .string(status), "carrier": "DHL",
        "lines": .array(lines.map { ["sku": .string($0.sku), "quantity": .number($0.quantity), "uom": .string($0.uom)] }),
    ]
}

/// A canonical goods receipt.
func receipt(
    _ eventId: String, sequence: Int = 1, warehouse: String = "WH1", receiptId: String = "RCV-1",
    status: String = "received",
    lines: [(sku: String, expected: String, received: String, uom: String)] = [("SKU-0001", "10", "10", "EA")]
) -> JSONValue {
    [
        "eventId": .string(eventId), "sequence": .number(sequence), "warehouse": .string(warehouse),
        "occurredAt": "2026-01-15T10:00:00Z", "receiptId": .string(receiptId), "purchaseOrderRef": "PO-1",
        "supplier": "ACME", "status": .string(status),
        "lines": .array(lines.map {
            [
                "sku": .string($0.sku), "quantityExpected": .number($0.expected),
                "quantityReceived": .number($0.received), "uom": .string($0.uom),
            ]
        }),
    ]
}
