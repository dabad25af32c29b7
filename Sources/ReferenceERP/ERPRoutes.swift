import Foundation
import Hummingbird
import Logging
import WarehouseSyncCore

/// `HTTPTypes.HTTPField.Name`, reached through the `HTTPFields` that Hummingbird exports.
typealias HTTPFieldName = HTTPFields.Element.Name

extension HTTPFieldName {
    static let idempotencyKey = HTTPFieldName("Idempotency-Key")!
    static let correlationID = HTTPFieldName("X-Correlation-ID")!
    /// Set on answers the fault injector made up: `outage`, `error` or `lost-response`.
    static let injectedFault = HTTPFieldName("X-Injected-Fault")!
}

extension ReferenceERPServer {
    func addRoutes(to router: Router<BasicRequestContext>) {
        for type in DocumentType.allCases {
            router.post(RouterPath(type.path)) { request, context in
                try await self.post(type, request: request, context: context)
            }
        }
        router.post(RouterPath(PostingBatch.path)) { request, context in
            try await self.postBatch(request: request, context: context)
        }
        router.get("/health") { _, _ in
            Self.json(200, ["status": "ok"])
        }
        router.get("/balances") { request, _ in
            try await self.balances(request)
        }
        router.get("/documents") { request, _ in
            try await self.documents(request)
        }
        router.get("/stats") { _, _ in
            try await self.statsResponse()
        }
        router.get("/admin/faults") { _, _ in
            Self.json(200, self.faults.snapshot())
        }
        router.post("/admin/faults") { request, context in
            var request = request
            let body = try await request.collectBody(upTo: context.maxUploadSize)
            let document: JSONValue
            do {
                document = try JSONValue(parsing: body.readableBytesView)
            } catch {
                return Self.rejection(.malformed("the body is not valid JSON: \(error)"))
            }
            do throws(ERPRejection) {
                try self.faults.update(with: document)
            } catch {
                return Self.rejection(error)
            }
            self.logger.notice("faults changed", metadata: ["erp.faults": "\(self.faults.snapshot())"])
            return Self.json(200, self.faults.snapshot())
        }
        router.delete("/admin/faults") { _, _ in
            try? self.faults.update(with: ["reset": true])
            self.logger.notice("faults cleared")
            return Self.json(200, self.faults.snapshot())
        }
    }

    // MARK: Posting

    func post(_ type: DocumentType, request: Request, context: BasicRequestContext) async throws -> Response {
        guard let key = request.headers[.idempotencyKey], !key.isEmpty else {
            return Self.rejection(ERPRejection(
                status: 400, code: "missing-idempotency-key", message: "the Idempotency-Key header is required"))
        }
        var request = request
        let body = try await request.collectBody(upTo: configuration.maxBodyBytes)
        let posting: Posting
        do throws(ERPRejection) {
            posting = try Posting(type: type, bytes: body.readableBytesView)
        } catch {
            return Self.rejection(error)
        }
        guard posting.eventId == key else {
            return Self.rejection(ERPRejection(
                status: 400, code: "idempotency-key-mismatch",
                message: "the Idempotency-Key header must equal the document's eventId", field: "eventId"))
        }

        let outcome: Ledger.Outcome
        do {
            outcome = try await ledger.post(posting, idempotencyKey: key)
        } catch let rejection as ERPRejection {
            return Self.rejection(rejection)
        }

        // Built only for a line that is logged: this runs for every posting.
        let correlationId = request.headers[.correlationID]
        func metadata(_ extra: Logger.Metadata) -> Logger.Metadata {
            var metadata: Logger.Metadata = [
                "erp.idempotencyKey": "\(key)", "erp.key": "\(posting.key)", "erp.sequence": "\(posting.sequence)",
            ]
            if let correlationId { metadata["correlationId"] = "\(correlationId)" }
            return metadata.merging(extra) { $1 }
        }
        switch outcome {
        case .posted(let document):
            logger.info("posted", metadata: metadata(["erp.documentId": "\(document.documentId)", "erp.type": "\(type)"]))
            if faults.loseResponse() {
                logger.notice("answering 503 for a committed posting (injected lost response)", metadata: metadata([:]))
                var response = Self.json(503, ["error": "injected-fault", "message": "injected lost response"])
                response.headers[.injectedFault] = "lost-response"
                return response
            }
            return Self.json(201, .object(JSONObject(uniqueKeysWithValues: document.jsonMembers)))
        case .duplicate(let document, let payloadMatches):
            logger.info(
                "duplicate",
                metadata: metadata(["erp.documentId": "\(document.documentId)", "erp.payloadMatches": "\(payloadMatches)"]))
            var members: [(String, JSONValue)] = [
                ("error", "duplicate"),
                ("message", .string("Idempotency-Key '\(key)' was already posted as \(document.documentId)")),
            ]
            members += document.jsonMembers
            members.append(("payloadMatches", .bool(payloadMatches)))
            return Self.json(409, .object(JSONObject(uniqueKeysWithValues: members)))
        }
    }

    // MARK: Queries

    func balances(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let warehouse = query["warehouse"].map(String.init)
        let sku = query["sku"].map(String.init)
        let status = query["status"].map(String.init)
        if let warehouse, configuration.masterData.warehouses[warehouse] == nil {
            return Self.rejection(.unprocessable("unknown-warehouse", "unknown warehouse '\(warehouse)'", field: "warehouse"))
        }
        if let sku, configuration.masterData.skus[sku] == nil {
            return Self.rejection(.unprocessable("unknown-sku", "unknown SKU '\(sku)'", field: "sku"))
        }
        let balances = try await ledger.balances(warehouse: warehouse, sku: sku, status: status)
        return Self.json(200, ["balances": .array(balances.map(\.json))])
    }

    func documents(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var filter = DocumentFilter()
        if let typeName = query["type"] {
            guard let type = DocumentType(name: String(typeName)) else {
                let names = DocumentType.allCases.map(\.rawValue).joined(separator: ", ")
                return Self.rejection(.malformed("'\(typeName)' is not one of \(names)", field: "type"))
            }
            filter.type = type
        }
        filter.key = query["key"].map(String.init)
        filter.warehouse = query["warehouse"].map(String.init)
        filter.eventId = query["eventId"].map(String.init)
        filter.idempotencyKey = query["idempotencyKey"].map(String.init)
        filter.documentId = query["documentId"].map(String.init)
        if let text = query["hasDiscrepancy"] {
            guard let flag = ReferenceERPConfiguration.flag(String(text)) else {
                return Self.rejection(.malformed("must be true or false", field: "hasDiscrepancy"))
            }
            filter.hasDiscrepancy = flag
        }
        if let text = query["after"] {
            guard let position = Int64(text), position >= 0 else {
                return Self.rejection(.malformed("must be a position ≥ 0", field: "after"))
            }
            filter.afterPosition = position
        }
        if let text = query["limit"] {
            guard let limit = Int(text), (1...10_000).contains(limit) else {
                return Self.rejection(.malformed("must be in 1…10000", field: "limit"))
            }
            filter.limit = limit
        }
        let documents = try await ledger.documents(filter)
        return Self.json(200, [
            "count": .number(documents.count),
            "documents": .array(documents.map(\.json)),
        ])
    }

    func statsResponse() async throws -> Response {
        let counts = try await ledger.documentCounts()
        let perEndpoint = stats.snapshot()
        var total = ERPStats.Counts()
        for counts in perEndpoint.values {
            total.requests += counts.requests
            total.posted += counts.posted
            total.duplicates += counts.duplicates
            total.rejected += counts.rejected
            total.unauthorized += counts.unauthorized
            total.injectedFaults += counts.injectedFaults
            total.statuses.merge(counts.statuses, uniquingKeysWith: +)
        }
        return Self.json(200, [
            "startedAt": .string(stats.startedAt),
            "endpoints": .object(JSONObject(uniqueKeysWithValues: perEndpoint.sorted { $0.key < $1.key }.map {
                ($0.key, $0.value.json)
            })),
            "totals": total.json,
            "documents": .object(JSONObject(uniqueKeysWithValues: DocumentType.allCases.map {
                ($0.rawValue, JSONValue.number(counts[$0] ?? 0))
            })),
            "faults": faults.snapshot(),
        ])
    }

    // MARK: Responses

    static func json(_ status: Int, _ body: JSONValue) -> Response {
        var buffer = ByteBuffer()
        buffer.writeBytes(body.serializedBytes())
        buffer.writeString("\n")
        return Response(
            status: HTTPResponse.Status(code: status),
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: buffer))
    }

    static func rejection(_ rejection: ERPRejection) -> Response {
        json(rejection.status, rejection.json)
    }
}
