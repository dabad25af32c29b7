import Foundation

extension ERPEndpoint {
    /// The item `kind` of this endpoint's documents on the batch route (DESIGN §3a).
    public var batchKind: String {
        switch self {
        case .inventoryMovements: "inventory-movement"
        case .goodsIssues: "goods-issue"
        case .shipmentStatus: "shipment-status"
        case .goodsReceipts: "goods-receipt"
        }
    }
}

/// One request of the ERP's batch route (DESIGN §3a): `POST /postings:batch` with the items'
/// documents, each exactly the body its single route would get, and the rules that read the
/// answer back into one ``ERPResponseClass`` per item.
public struct PostingBatch: Sendable, Equatable {
    /// The route, relative to `ERP_BASE_URL`.
    public static let path = "/postings:batch"
    /// The most items a request may carry (`ERP_BATCH_MAX` is 1…this).
    public static let maxItems = 1000

    public let documents: [PostingDocument]

    public init(_ documents: [PostingDocument]) {
        self.documents = documents
    }

    /// `{"items": [{"kind", "idempotencyKey", "correlationId", "document"}, ...]}`.
    public var body: JSONValue {
        ["items": .array(documents.map { document in
            var members: [(String, JSONValue)] = [
                ("kind", .string(document.endpoint.batchKind)), ("idempotencyKey", .string(document.idempotencyKey)),
            ]
            if let correlationId = document.correlationId { members.append(("correlationId", .string(correlationId))) }
            members.append(("document", document.body))
            return .object(JSONObject(uniqueKeysWithValues: members))
        })]
    }

    /// The outcome of each item, in the items' order, from the envelope's answer (§3a): a `200`
    /// whose `results` hold, per item, exactly one object with its `index`, `idempotencyKey`
    /// and `status`, classified as that status on the single route (its `documentId`, `error`
    /// or `message`, and `retryAfter` in seconds read as they would be there). Any other
    /// envelope answer, and an item without exactly one valid result, is transient: the
    /// envelope's own reason when its status is transient by the single route's rules (a 503, a
    /// 429 with `Retry-After`, a 404), else a misanswer (``ERPResponseClass/Misanswer/noBatchResult``).
    public func classify(status: Int, retryAfter: String?, body: some Collection<UInt8>, now: Date) -> [ERPResponseClass] {
        let missing = ERPResponseClass.transient(reason: .misanswered(status: status, .noBatchResult), retryAfter: nil)
        guard status == 200, let results = (try? JSONValue(parsing: body))?.objectValue?["results"]?.arrayValue else {
            let envelope = ERPResponseClass.classify(status: status, retryAfter: retryAfter, body: body, now: now)
            let transient = envelope.isTransient && !(200..<300).contains(status)
            return Array(repeating: transient ? envelope : missing, count: documents.count)
        }
        var outcomes: [ERPResponseClass?] = Array(repeating: nil, count: documents.count)
        var seen = Array(repeating: 0, count: documents.count)
        for result in results {
            guard let object = result.objectValue, let index = object["index"]?.numberLiteral.flatMap({ Int($0) }),
                documents.indices.contains(index), object["idempotencyKey"]?.stringValue == documents[index].idempotencyKey,
                let itemStatus = object["status"]?.numberLiteral.flatMap({ Int($0) })
            else { continue }
            seen[index] += 1
            outcomes[index] = ERPResponseClass.classify(
                status: itemStatus, object: object,
                message: { ERPResponseClass.rejectionMessage(status: itemStatus, object: object) },
                retryAfter: { object["retryAfter"]?.numberLiteral.flatMap { Double($0) }.map { .milliseconds(Int64(max(0, min($0, 86_400)) * 1000)) } })
        }
        return documents.indices.map { seen[$0] == 1 ? outcomes[$0] ?? missing : missing }
    }
}
