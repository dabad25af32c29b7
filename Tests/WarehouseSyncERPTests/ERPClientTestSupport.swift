import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import ReferenceERP
import WarehouseSyncCore
import WarehouseSyncTesting

@testable import WarehouseSyncERP

/// The repository's seed file (WH1…WH5, SKU-0001…SKU-0050).
let seedFile = TestRepository.seedFile
let seedMasterData = InProcessERP.seedMasterData

/// A reference ERP running in-process on a free loopback port.
struct RunningERP: Sendable {
    let port: Int
    let admin: any TestClientProtocol
    let token: String?

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// `POST /admin/faults` with this JSON document.
    func setFaults(_ json: String) async throws {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let token { headers[.authorization] = "Bearer \(token)" }
        let response = try await admin.executeRequest(
            uri: "/admin/faults", method: .post, headers: headers, body: ByteBuffer(string: json))
        guard response.status == .ok else {
            throw TestFailure("POST /admin/faults answered \(response.status): \(String(buffer: response.body))")
        }
    }

    /// `GET uri` parsed as JSON.
    func get(_ uri: String) async throws -> JSONValue {
        var headers = HTTPFields()
        if let token { headers[.authorization] = "Bearer \(token)" }
        let response = try await admin.executeRequest(uri: uri, method: .get, headers: headers, body: nil)
        return try JSONValue(parsing: Array(response.body.readableBytesView))
    }

    /// A client for this ERP.
    func client(
        token: ERPToken? = nil, requestTimeout: Duration = .seconds(10), maxConcurrentPosts: Int = 16
    ) throws -> HTTPERPClient {
        // The health probe gets the request's patience: its 2 s default is for production, and
        // a test machine busy with the rest of the suite took longer (the outage test flaked).
        HTTPERPClient(configuration: try ERPClientConfiguration(
            baseURL: baseURL, token: token, requestTimeout: requestTimeout, healthTimeout: requestTimeout,
            maxConcurrentPosts: maxConcurrentPosts))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` against a reference ERP over a new temp SQLite ledger, stopped afterwards.
func withReferenceERP<T: Sendable>(
    token: String? = nil, faults: FaultSettings = FaultSettings(),
    _ body: @Sendable (RunningERP) async throws -> T
) async throws -> T {
    try await TestDirectory.with("erp-client-test") { directory in
        let configuration = InProcessERP.configuration(
            databasePath: directory.appendingPathComponent("ledger.db").path, token: token, faults: faults)
        return try await InProcessERP.with(configuration) { client in
            guard let port = client.port else { throw TestFailure("the live test client has no port") }
            return try await body(RunningERP(port: port, admin: client, token: token))
        }
    }
}

/// Runs `body` with `client`, then shuts it down whatever happened.
func using<T: Sendable>(_ client: HTTPERPClient, _ body: (HTTPERPClient) async throws -> T) async throws -> T {
    do {
        let result = try await body(client)
        try await client.shutdown()
        return result
    } catch {
        try? await client.shutdown()
        throw error
    }
}

/// A valid inventory delta as the WMS writes it, as the workers post it.
func inventoryDocument(
    _ eventId: String, warehouse: String = "WH1", sku: String = "SKU-0001", sequence: Int = 1, quantity: String = "5"
) throws -> PostingDocument {
    let body = #"{"schema":"inventory.delta/1","eventId":"\#(eventId)","occurredAt":"2024-05-01T08:30:00Z","warehouse":"\#(warehouse)","sequence":\#(sequence),"correlationId":"corr-\#(eventId)","sku":"\#(sku)","quantity":\#(quantity),"uom":"EA","status":"available","reason":"adjustment"}"#
    return PostingDocument(event: try EventDecoder().decode(Array(body.utf8)))
}

/// A temp file holding `contents`, removed after `body`.
@discardableResult
func withTempFile<T>(_ contents: String, _ body: (String) async throws -> T) async throws -> T {
    let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("erp-token-\(UUID().uuidString)")
    try contents.write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}
