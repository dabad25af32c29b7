import Foundation
import ReferenceERP
import Testing
import WarehouseSyncCore

@testable import WarehouseSyncERP

@Suite("HTTPERPClient against the reference ERP")
struct HTTPERPClientTests {
    @Test("a new document is posted with its document id; a repeat is already posted")
    func postedThenAlreadyPosted() async throws {
        try await withReferenceERP { erp in
            try await using(try erp.client()) { client in
                let document = try inventoryDocument("evt-1")
                let first = await client.post(document)
                guard case .posted(let documentId?) = first else {
                    Issue.record("expected posted with a document id, got \(first)")
                    return
                }
                #expect(documentId.hasPrefix("IM-"))
                #expect(await client.post(document) == .alreadyPosted)

                // The ERP booked it once, under the event's key, with its correlation id.
                let documents = try await erp.get("/documents")["documents"]?.arrayValue ?? []
                #expect(documents.count == 1)
                #expect(documents.first?["documentId"]?.stringValue == documentId)
                #expect(documents.first?["idempotencyKey"]?.stringValue == "evt-1")
                #expect(documents.first?["correlationId"]?.stringValue == "corr-evt-1")
                let stats = try await erp.get("/stats")
                #expect(stats["endpoints"]?["/inventory-movements"]?["posted"] == 1)
                #expect(stats["endpoints"]?["/inventory-movements"]?["duplicates"] == 1)
            }
        }
    }

    @Test("an unknown SKU is rejected with the ERP's message")
    func unknownSKU() async throws {
        try await withReferenceERP { erp in
            try await using(try erp.client()) { client in
                let result = await client.post(try inventoryDocument("evt-1", sku: "SKU-9999"))
                guard case .rejected(let status, let message) = result else {
                    Issue.record("expected rejected, got \(result)")
                    return
                }
                #expect(status == 422)
                #expect(message.contains("SKU-9999"))
                #expect(message.count <= ERPResponseClass.maxMessageLength)
            }
        }
    }

    @Test("with a token required, no or a wrong token is transient 401; the token from ERP_TOKEN_FILE posts")
    func token() async throws {
        try await withReferenceERP(token: "s3cret-token") { erp in
            let document = try inventoryDocument("evt-1")
            try await using(try erp.client()) { client in
                #expect(await client.post(document) == .transient(reason: .status(401), retryAfter: nil))
                // /health stays open for probes without the secret.
                #expect(await client.health())
            }
            try await using(try erp.client(token: ERPToken("wrong"))) { client in
                #expect(await client.post(document) == .transient(reason: .status(401), retryAfter: nil))
            }
            try await withTempFile("  s3cret-token\n") { path in
                let configuration = try ERPClientConfiguration(
                    environment: ["ERP_BASE_URL": erp.baseURL + "/", "ERP_TOKEN_FILE": path])
                #expect(configuration.token != nil)
                try await using(HTTPERPClient(configuration: configuration)) { client in
                    let result = await client.post(document)
                    guard case .posted = result else {
                        Issue.record("expected posted, got \(result)")
                        return
                    }
                }
            }
            let documents = try await erp.get("/documents")["documents"]?.arrayValue ?? []
            #expect(documents.count == 1)
        }
    }

    @Test("injected 503 with Retry-After is transient with the delay")
    func injectedErrors() async throws {
        try await withReferenceERP { erp in
            try await erp.setFaults(#"{"errorRate": 1, "errorStatuses": [503], "retryAfterSeconds": 3}"#)
            try await using(try erp.client()) { client in
                let result = await client.post(try inventoryDocument("evt-1"))
                #expect(result == .transient(reason: .status(503), retryAfter: .seconds(3)))
                #expect(result.isTransient)
                try await erp.setFaults(#"{"errorStatuses": [500]}"#)
                #expect(await client.post(try inventoryDocument("evt-1")) == .transient(reason: .status(500), retryAfter: nil))
                try await erp.setFaults(#"{"errorRate": 0}"#)
                let posted = await client.post(try inventoryDocument("evt-1"))
                guard case .posted = posted else {
                    Issue.record("expected posted after the faults ended, got \(posted)")
                    return
                }
            }
        }
    }

    @Test("an outage makes health() false, and true again once cleared")
    func outage() async throws {
        try await withReferenceERP { erp in
            try await using(try erp.client()) { client in
                #expect(await client.health())
                try await erp.setFaults(#"{"outage": true, "retryAfterSeconds": 1}"#)
                #expect(await client.health() == false)
                #expect(await client.post(try inventoryDocument("evt-1")) == .transient(reason: .status(503), retryAfter: .seconds(1)))
                try await erp.setFaults(#"{"outage": false}"#)
                #expect(await client.health())
            }
        }
    }

    @Test("latency beyond the request timeout is a transient timeout; the retry is covered by the key")
    func timeout() async throws {
        try await withReferenceERP { erp in
            try await erp.setFaults(#"{"latencyMs": 1500}"#)
            try await using(try erp.client(requestTimeout: .milliseconds(300))) { client in
                let document = try inventoryDocument("evt-1")
                // A timeout, not the answer that comes after 1.5 s: the deadline ended the wait.
                // (No wall-clock bound on it: on a loaded machine it says nothing.)
                #expect(await client.post(document) == .transient(reason: .timeout, retryAfter: nil))

                try await erp.setFaults(#"{"latencyMs": null}"#)
                // The ERP may have booked the timed-out post: either answer means booked once.
                // The retry gets a normal timeout: on a loaded machine a real post can take longer
                // than the 300 ms that made the first one time out.
                let retry = try await using(try erp.client()) { patient in await patient.post(document) }
                switch retry {
                case .posted, .alreadyPosted: break
                default: Issue.record("expected posted or already posted, got \(retry)")
                }
                let documents = try await erp.get("/documents")["documents"]?.arrayValue ?? []
                #expect(documents.count == 1)
            }
        }
    }

    @Test("a closed port is a transient connection failure, and health() is false")
    func closedPort() async throws {
        // The port of an ERP that has stopped: nothing listens there any more.
        let port = try await withReferenceERP { erp in erp.port }
        let configuration = try ERPClientConfiguration(
            baseURL: "http://127.0.0.1:\(port)", connectTimeout: .milliseconds(500), requestTimeout: .seconds(2))
        try await using(HTTPERPClient(configuration: configuration)) { client in
            let document = try inventoryDocument("evt-1")
            let clock = ContinuousClock()
            let start = clock.now
            #expect(await client.post(document) == .transient(reason: .connectionFailed, retryAfter: nil))
            #expect(clock.now - start < .seconds(3))
            #expect(await client.health() == false)
        }
    }

    @Test("a client shut down answers a transient connection failure rather than throwing")
    func afterShutdown() async throws {
        try await withReferenceERP { erp in
            let client = try erp.client()
            try await client.shutdown()
            let document = try inventoryDocument("evt-1")
            #expect(await client.post(document) == .transient(reason: .connectionFailed, retryAfter: nil))
            #expect(await client.health() == false)
        }
    }

    /// Posts `documents` all at once; the answers and how long they took.
    static func postConcurrently(
        _ documents: [PostingDocument], with client: HTTPERPClient
    ) async -> (results: [ERPResponseClass], elapsed: Duration) {
        let clock = ContinuousClock()
        let start = clock.now
        let results = await withTaskGroup(of: ERPResponseClass.self) { group in
            for document in documents {
                group.addTask { await client.post(document) }
            }
            var results: [ERPResponseClass] = []
            for await result in group { results.append(result) }
            return results
        }
        return (results, clock.now - start)
    }

    @Test("50 concurrent posts with a limit of 4 never have more than 4 in flight")
    func boundedConcurrency() async throws {
        let latency = 100
        try await withReferenceERP { erp in
            try await erp.setFaults(#"{"latencyMs": \#(latency)}"#)
            // The same load with a limit of 25 first: two rounds, far quicker.
            let unbounded = try await using(try erp.client(maxConcurrentPosts: 25)) { client in
                let documents = try (1...50).map { index in try inventoryDocument("wide-\(index)", sku: "SKU-0002", sequence: index) }
                let (results, elapsed) = await Self.postConcurrently(documents, with: client)
                #expect(results.count == 50)
                #expect(client.peakPostsInFlight <= 25)
                return elapsed
            }
            try await using(try erp.client(maxConcurrentPosts: 4)) { client in
                // One key, 50 events: the ERP books them in whatever order they arrive.
                let documents = try (1...50).map { index in try inventoryDocument("evt-\(index)", sequence: index) }
                let (results, elapsed) = await Self.postConcurrently(documents, with: client)
                #expect(results.count == 50)
                let notPosted = results.filter { if case .posted = $0 { false } else { true } }
                #expect(notPosted.isEmpty, "not posted: \(notPosted.prefix(3))")
                #expect(client.peakPostsInFlight == 4)
                #expect(client.postsInFlight == 0)
                // 50 posts of ≥ 100 ms through 4 slots take at least 13 rounds; with more in
                // flight they would finish sooner.
                #expect(elapsed >= .milliseconds(13 * latency), "took \(elapsed)")
                let stats = try await erp.get("/stats")
                #expect(stats["endpoints"]?["/inventory-movements"]?["posted"] == 100)
                #expect(unbounded < elapsed, "limit 25: \(unbounded), limit 4: \(elapsed)")
                print("boundedConcurrency: 50 posts, \(latency) ms latency: limit 4 \(elapsed), limit 25 \(unbounded)")
            }
        }
    }
}
