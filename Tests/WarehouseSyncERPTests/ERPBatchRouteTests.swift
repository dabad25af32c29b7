import Foundation
import ReferenceERP
import Testing
import WarehouseSyncCore

@testable import WarehouseSyncERP

/// The batch route (DESIGN §3a) end to end: HTTPERPClient's envelope and reading, the reference
/// ERP's route, over real HTTP.
@Suite("The batch route against the reference ERP")
struct ERPBatchRouteTests {
    @Test("each item is applied on its own: posted, already posted, rejected with the ERP's message")
    func itemsOnTheirOwn() async throws {
        try await withReferenceERP { erp in
            try await using(try erp.client()) { client in
                let earlier = try inventoryDocument("e0", sku: "SKU-0002")
                guard case .posted = await client.post(earlier) else { throw TestFailure("the single post failed") }

                let batch = PostingBatch([
                    try inventoryDocument("e1"), earlier, try inventoryDocument("e2", sku: "SKU-9999"),
                    try inventoryDocument("e3", warehouse: "WH2"),
                ])
                let outcomes = await client.post(batch: batch)
                #expect(outcomes.count == 4)
                guard case .posted(let first?) = outcomes[0], case .posted(let fourth?) = outcomes[3] else {
                    Issue.record("expected items 0 and 3 posted, got \(outcomes)")
                    return
                }
                #expect(first.hasPrefix("IM-") && fourth.hasPrefix("IM-") && first != fourth)
                #expect(outcomes[1] == .alreadyPosted)
                guard case .rejected(422, let message) = outcomes[2] else {
                    Issue.record("expected item 2 rejected with 422, got \(outcomes[2])")
                    return
                }
                #expect(message.contains("SKU-9999"))

                // The refused item left nothing; the others are booked once each.
                let documents = try await erp.get("/documents")["documents"]?.arrayValue ?? []
                #expect(documents.compactMap { $0["idempotencyKey"]?.stringValue }.sorted() == ["e0", "e1", "e3"])
                let stats = try await erp.get("/stats")
                #expect(stats["endpoints"]?["POST /postings:batch"]?["requests"] == 1)
                #expect(stats["endpoints"]?["/inventory-movements"]?["posted"] == 3)
                #expect(stats["endpoints"]?["/inventory-movements"]?["duplicates"] == 1)
                #expect(stats["endpoints"]?["/inventory-movements"]?["rejected"] == 1)
            }
        }
    }

    @Test("two items of one key in a request: the second is refused alone, the first posts")
    func oneItemPerKey() async throws {
        try await withReferenceERP { erp in
            try await using(try erp.client()) { client in
                let outcomes = await client.post(batch: PostingBatch([
                    try inventoryDocument("k1", sequence: 1), try inventoryDocument("k2", sequence: 2),
                ]))
                guard case .posted = outcomes[0], case .rejected(400, let message) = outcomes[1] else {
                    Issue.record("expected posted then a 400 rejection, got \(outcomes)")
                    return
                }
                #expect(message.contains("already has an item in this request"))
            }
        }
    }

    @Test("a lost answer makes every item transient; the repeat finds each already posted")
    func lostAnswer() async throws {
        try await withReferenceERP { erp in
            try await using(try erp.client()) { client in
                let batch = PostingBatch([try inventoryDocument("l1"), try inventoryDocument("l2", sku: "SKU-0002")])
                try await erp.setFaults(#"{"lostResponseRate": 1}"#)
                let lost = await client.post(batch: batch)
                #expect(lost == Array(repeating: .transient(reason: .status(503), retryAfter: nil), count: 2))
                try await erp.setFaults(#"{"reset": true}"#)
                #expect(await client.post(batch: batch) == [.alreadyPosted, .alreadyPosted])
                #expect((try await erp.get("/documents")["documents"]?.arrayValue ?? []).count == 2)
            }
        }
    }

    @Test("an ERP without the route: every item is a misanswer, nothing is rejected")
    func noRoute() async throws {
        try await withReferenceERP { erp in
            let client = HTTPERPClient(configuration: try ERPClientConfiguration(baseURL: "http://127.0.0.1:\(erp.port)/nowhere"))
            try await using(client) { client in
                let outcomes = await client.post(batch: PostingBatch([try inventoryDocument("n1")]))
                #expect(outcomes == [.transient(reason: .misanswered(status: 404, .notFound), retryAfter: nil)])
            }
        }
    }
}
