import Foundation
import Hummingbird
import Logging
import WarehouseSyncCore

extension ReferenceERPServer {
    /// `POST /postings:batch` (DESIGN §3a): each item applied on its own, as its single route
    /// would, all in one ledger transaction; one result per item. The envelope is refused (400)
    /// only when it is not a batch at all: not JSON, no `items` array, none or more than
    /// ``ReferenceERPConfiguration/maxBatchItems`` items.
    func postBatch(request: Request, context: BasicRequestContext) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: configuration.maxBatchBodyBytes)
        guard let envelope = try? JSONValue(parsing: body.readableBytesView), let items = envelope.objectValue?["items"]?.arrayValue
        else {
            return Self.rejection(.malformed("the body must be a JSON object with an items array", field: "items"))
        }
        guard (1...configuration.maxBatchItems).contains(items.count) else {
            return Self.rejection(.malformed("must hold 1-\(configuration.maxBatchItems) items, found \(items.count)", field: "items"))
        }

        // Items that are not documents are answered at once; the rest go to the ledger together.
        var results: [JSONValue?] = Array(repeating: nil, count: items.count)
        var accepted: [(index: Int, posting: Posting, idempotencyKey: String)] = []
        var keysInBatch: Set<String> = []
        for (index, item) in items.enumerated() {
            let idempotencyKey = item["idempotencyKey"]?.stringValue ?? ""
            do throws(ERPRejection) {
                let posting = try Self.batchItem(item, index: index)
                // DESIGN §3a: at most one item per sequencing key in a request.
                guard keysInBatch.insert("\(Self.stream(of: posting.type))/\(posting.key)").inserted else {
                    throw ERPRejection(
                        status: 400, code: "key-repeated-in-batch",
                        message: "items[\(index)]: key \(posting.key) already has an item in this request", field: "items[\(index)]")
                }
                accepted.append((index, posting, idempotencyKey))
            } catch {
                results[index] = Self.batchResult(index: index, idempotencyKey: idempotencyKey, rejection: error)
            }
        }

        let outcomes = try await ledger.post(batch: accepted.map { ($0.posting, $0.idempotencyKey) })
        let loseResponse = faults.loseResponse()
        for (item, outcome) in zip(accepted, outcomes) {
            switch outcome {
            case .success(.posted(let document)):
                stats.record(endpoint: item.posting.type.path, status: 201, injected: false)
                results[item.index] = Self.batchResult(index: item.index, idempotencyKey: item.idempotencyKey, status: 201, document.jsonMembers)
            case .success(.duplicate(let document, let payloadMatches)):
                stats.record(endpoint: item.posting.type.path, status: 409, injected: false)
                results[item.index] = Self.batchResult(
                    index: item.index, idempotencyKey: item.idempotencyKey, status: 409,
                    [("error", "duplicate"), ("message", .string("Idempotency-Key '\(item.idempotencyKey)' was already posted as \(document.documentId)"))]
                        + document.jsonMembers + [("payloadMatches", .bool(payloadMatches))])
            case .failure(let rejection):
                stats.record(endpoint: item.posting.type.path, status: rejection.status, injected: false)
                results[item.index] = Self.batchResult(index: item.index, idempotencyKey: item.idempotencyKey, rejection: rejection)
            }
        }
        logger.debug("batch posted", metadata: ["erp.items": "\(items.count)", "erp.accepted": "\(accepted.count)"])
        if loseResponse {
            logger.notice("answering 503 for a committed batch (injected lost response)", metadata: ["erp.items": "\(items.count)"])
            var response = Self.json(503, ["error": "injected-fault", "message": "injected lost response"])
            response.headers[.injectedFault] = "lost-response"
            return response
        }
        return Self.json(200, ["results": .array(results.map { $0 ?? .null })])
    }

    /// The posting of batch item `index`: its `kind` names the single route, its `document` is
    /// that route's body, and its `idempotencyKey` must be the document's `eventId`.
    private static func batchItem(_ item: JSONValue, index: Int) throws(ERPRejection) -> Posting {
        let path = "items[\(index)]"
        guard let kind = item["kind"]?.stringValue, let type = DocumentType(rawValue: kind) else {
            let kinds = DocumentType.allCases.map(\.rawValue).joined(separator: ", ")
            throw .malformed("must be one of \(kinds)", field: "\(path).kind")
        }
        guard let key = item["idempotencyKey"]?.stringValue, !key.isEmpty else {
            throw ERPRejection(status: 400, code: "missing-idempotency-key", message: "\(path).idempotencyKey is required", field: "\(path).idempotencyKey")
        }
        guard let document = item["document"] else {
            throw .malformed("is required", field: "\(path).document")
        }
        let posting: Posting
        do throws(ERPRejection) {
            posting = try Posting(type: type, body: document)
        } catch {
            throw ERPRejection(
                status: error.status, code: error.code, message: "\(path).document: \(error.message)",
                field: error.field.map { "\(path).document.\($0)" })
        }
        guard posting.eventId == key else {
            throw ERPRejection(
                status: 400, code: "idempotency-key-mismatch",
                message: "\(path): the idempotencyKey must equal the document's eventId", field: "\(path).idempotencyKey")
        }
        return posting
    }

    /// The stream whose sequencing keys a document type's `key` belongs to.
    private static func stream(of type: DocumentType) -> String {
        switch type {
        case .inventoryMovement: "inventory"
        case .goodsIssue, .shipmentStatus: "shipment"
        case .goodsReceipt: "receipt"
        }
    }

    /// A result: `index`, `idempotencyKey`, `status`, then the single route's answer members.
    private static func batchResult(index: Int, idempotencyKey: String, status: Int, _ members: [(String, JSONValue)]) -> JSONValue {
        let own = ["index", "idempotencyKey", "status"]
        return .object(JSONObject(uniqueKeysWithValues: [
            ("index", .number(index)), ("idempotencyKey", .string(idempotencyKey)), ("status", .number(status)),
        ] + members.filter { !own.contains($0.0) }))
    }

    private static func batchResult(index: Int, idempotencyKey: String, rejection: ERPRejection) -> JSONValue {
        batchResult(index: index, idempotencyKey: idempotencyKey, status: rejection.status, rejection.json.objectValue.map { $0.map { ($0.key, $0.value) } } ?? [])
    }
}
