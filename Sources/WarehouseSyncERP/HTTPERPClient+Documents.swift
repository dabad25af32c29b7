import NIOCore
import WarehouseSyncCore

extension HTTPERPClient {
    /// The ERP's journal of `warehouse` (`GET /documents?warehouse=&type=`, paged with `after`):
    /// the latest status of each shipment (goods issues and shipment statuses) and receipt (goods
    /// receipts). DESIGN §3 does not name this route: the reference ERP offers it
    /// (docs/reference-erp.md); an ERP facade without it cannot compare documents, and says so
    /// with ``ERPQueryError``.
    public func documentStatuses(warehouse: String, kinds: Set<DocumentStatus.Kind>) async throws -> [DocumentStatus] {
        var postings: [(document: DocumentStatus, sequence: Int64)] = []
        for kind in kinds.sorted() {
            let types = kind == .shipment ? ["goods-issue", "shipment-status"] : ["goods-receipt"]
            for type in types {
                var after: Int64 = 0
                while true {
                    let query = "/documents?warehouse=\(Self.queryValue(warehouse))&type=\(type)&after=\(after)&limit=\(Self.documentsPage)"
                    let context = "GET /documents?warehouse=\(warehouse)&type=\(type)"
                    let body = try await get(query, context: context, upTo: Self.maxBalancesBytes)
                    let page = try Self.documents(in: body.readableBytesView, kind: kind, warehouse: warehouse, context: context)
                    postings += page.rows
                    guard page.count == Self.documentsPage, let last = page.lastPosition else { break }
                    after = last
                }
            }
        }
        return DocumentReconciliation.latest(postings)
    }

    static let documentsPage = 5000

    static func documents(
        in bytes: some Collection<UInt8>, kind: DocumentStatus.Kind, warehouse: String, context: String
    ) throws(ERPQueryError) -> (rows: [(document: DocumentStatus, sequence: Int64)], count: Int, lastPosition: Int64?) {
        guard let answer = try? JSONValue(parsing: bytes), let documents = answer.objectValue?["documents"]?.arrayValue else {
            throw ERPQueryError("\(context): the answer is not a JSON object with a documents array")
        }
        var rows: [(document: DocumentStatus, sequence: Int64)] = []
        var lastPosition: Int64?
        for (index, document) in documents.enumerated() {
            let fields = document.objectValue
            guard let key = fields?["key"]?.stringValue, key.hasPrefix(warehouse + "/"),
                  let status = fields?["status"]?.stringValue,
                  let sequence = fields?["sequence"]?.numberLiteral.flatMap({ Int64($0) }),
                  let position = fields?["position"]?.numberLiteral.flatMap({ Int64($0) })
            else {
                throw ERPQueryError("\(context): documents[\(index)] lacks a key of the warehouse, a status, a sequence or a position")
            }
            lastPosition = position
            let id = String(key.dropFirst(warehouse.count + 1))
            rows.append((DocumentStatus(kind: kind, warehouse: warehouse, id: id, status: status), sequence))
        }
        return (rows, documents.count, lastPosition)
    }
}
