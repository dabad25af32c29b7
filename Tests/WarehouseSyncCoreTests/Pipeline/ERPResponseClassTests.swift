import Foundation
import Testing
import WarehouseSyncCore

@Suite("ERPResponseClass")
struct ERPResponseClassTests {
    let now = PipelineFixtures.epoch  // 2024-05-01T08:00:00Z, a Wednesday

    private func classify(_ status: Int, retryAfter: String? = nil, body: String = "") -> ERPResponseClass {
        ERPResponseClass.classify(status: status, retryAfter: retryAfter, body: Array(body.utf8), now: now)
    }

    @Test("2xx with a JSON object carrying documentId is posted")
    func posted() {
        #expect(classify(201, body: #"{"documentId":"DOC-9","x":1}"#) == .posted(documentId: "DOC-9"))
        #expect(classify(200, body: #"{"documentId":123}"#) == .posted(documentId: "123"))
        let long = String(repeating: "d", count: ERPResponseClass.maxDocumentIdLength + 1)
        #expect(classify(201, body: #"{"documentId":"\#(long)"}"#) == .posted(documentId: nil))
    }

    @Test(
        "a 2xx that is not the ERP speaking is transient, never posted (DESIGN §3)",
        arguments: [
            (200, "<html><body>Welcome to nginx</body></html>"),
            (200, "OK"),
            (204, ""),
            (201, #"{"id":"DOC-1"}"#),
            (201, #"{"documentId":""}"#),
            (201, #"{"documentId":null}"#),
            (200, #"["documentId"]"#),
            (201, #"{"documentId":"DOC-1""#),
        ]
    )
    func successWithoutDocumentId(status: Int, body: String) {
        #expect(classify(status, body: body) == .transient(reason: .misanswered(status: status, .noDocumentId), retryAfter: nil))
    }

    @Test("409 with a JSON body is success: the Idempotency-Key was booked before")
    func conflictIsAlreadyPosted() {
        #expect(classify(409, body: #"{"message":"duplicate"}"#) == .alreadyPosted)
        #expect(classify(409, body: "<html>409 Conflict</html>") == .transient(reason: .misanswered(status: 409, .noJSONBody), retryAfter: nil))
    }

    @Test("400 and 422 with a JSON error body are business rejections carrying the ERP's message", arguments: [400, 422])
    func rejections(status: Int) {
        #expect(classify(status, body: #"{"message":"unknown SKU 'X-1'"}"#) == .rejected(status: status, message: "unknown SKU 'X-1'"))
    }

    @Test("400 and 422 without a JSON error body are not the ERP speaking: transient", arguments: [400, 422])
    func rejectionsWithoutJSON(status: Int) {
        for body in ["", "<html><h1>Bad Request</h1></html>", "plain text"] {
            #expect(classify(status, body: body) == .transient(reason: .misanswered(status: status, .noJSONBody), retryAfter: nil))
        }
    }

    @Test("404 is transient whatever its body: a wrong base URL or an ingress, never a rejection")
    func notFound() {
        for body in ["", "<html>404 Not Found</html>", #"{"error":"not-found","message":"Not Found"}"#] {
            let answer = classify(404, body: body)
            #expect(answer == .transient(reason: .misanswered(status: 404, .notFound), retryAfter: nil))
            guard case .transient(let reason, _) = answer else { continue }
            #expect(reason.isSystemic)
            #expect(reason.description == "HTTP 404 (no such route: check ERP_BASE_URL)")
        }
    }

    @Test(
        "the rejection message: a JSON message field, else the text; first line; bounded",
        arguments: [
            (#"{"error":"uom KG not allowed"}"#, "uom KG not allowed"),
            (#"{"error":{"code":7,"message":"period closed"}}"#, "period closed"),
            (#"{"detail":"bad lot","title":"Unprocessable"}"#, "bad lot"),
            (#"{"code":7}"#, #"{"code":7}"#),
            ("plain text reason", "plain text reason"),
            ("java.lang.IllegalStateException: boom\n\tat com.erp.Post(Post.java:10)\n\tat x", "java.lang.IllegalStateException: boom"),
            ("\n\n  second line first  \nthird", "second line first"),
            ("tab\there\u{7}bell", "tab here bell"),
            ("", "no message (HTTP 422)"),
            ("   \n  ", "no message (HTTP 422)"),
        ]
    )
    func rejectionMessage(body: String, message: String) {
        #expect(ERPResponseClass.rejectionMessage(status: 422, body: Array(body.utf8)) == message)
    }

    @Test("a long rejection message is cut to 256 characters, ending in an ellipsis")
    func longMessage() {
        let message = ERPResponseClass.rejectionMessage(status: 400, body: Array(String(repeating: "é", count: 1000).utf8))
        #expect(message.count == ERPResponseClass.maxMessageLength)
        #expect(message.hasSuffix("…"))
    }

    @Test("408, 429 and 5xx are transient whatever their body", arguments: [408, 429, 500, 502, 503, 504])
    func transientStatuses(status: Int) {
        #expect(classify(status) == .transient(reason: .status(status), retryAfter: nil))
        #expect(classify(status, body: "<html>busy</html>") == .transient(reason: .status(status), retryAfter: nil))
        #expect(classify(status).isTransient)
    }

    @Test("other statuses are transient: with a JSON body the ERP said it, without one something else did", arguments: [401, 403, 301, 418])
    func otherStatuses(status: Int) {
        #expect(classify(status, body: #"{"error":"unauthorized"}"#) == .transient(reason: .status(status), retryAfter: nil))
        #expect(classify(status, body: "<html></html>") == .transient(reason: .misanswered(status: status, .noJSONBody), retryAfter: nil))
    }

    @Test("systemic failures concern every posting; a 5xx or 429 may concern one item")
    func systemic() {
        typealias Reason = ERPResponseClass.TransientReason
        for reason: Reason in [.timeout, .connectionFailed, .status(401), .status(403), .misanswered(status: 200, .noDocumentId)] {
            #expect(reason.isSystemic, "\(reason)")
        }
        for reason: Reason in [.status(503), .status(500), .status(429), .status(408)] {
            #expect(!reason.isSystemic, "\(reason)")
            #expect(reason.isERPAnswer, "\(reason)")
        }
        for reason: Reason in [.timeout, .connectionFailed, .misanswered(status: 404, .notFound)] {
            #expect(!reason.isERPAnswer, "\(reason)")
        }
    }

    @Test("only transient answers count against the circuit breaker")
    func isTransient() {
        #expect(!classify(201, body: #"{"documentId":"D"}"#).isTransient)
        #expect(!classify(409, body: "{}").isTransient)
        #expect(!classify(422, body: "{}").isTransient)
        #expect(ERPResponseClass.transient(reason: .timeout, retryAfter: nil).isTransient)
    }

    @Test(
        "Retry-After as seconds or as an HTTP-date in each of its three forms",
        arguments: [
            ("120", Duration.seconds(120)),
            (" 7 ", .seconds(7)),
            ("0", .zero),
            ("99999999999999999999", .seconds(86_400)),
            ("Wed, 01 May 2024 08:00:30 GMT", .seconds(30)),
            ("Wednesday, 01-May-24 08:05:00 GMT", .seconds(300)),
            ("Wed May  1 08:00:10 2024", .seconds(10)),
            ("Wed, 01 May 2024 07:00:00 GMT", .zero),
        ]
    )
    func retryAfter(header: String, expected: Duration) {
        #expect(classify(429, retryAfter: header) == .transient(reason: .status(429), retryAfter: expected))
    }

    @Test(
        "a Retry-After that is neither form is ignored",
        arguments: ["soon", "-5", "1.5", "Wed, 01 May 2024 08:00:30 UTC", "Wed, 32 May 2024 08:00:30 GMT", "Wed, 01 Foo 2024 08:00:30 GMT", ""]
    )
    func badRetryAfter(header: String) {
        #expect(classify(503, retryAfter: header) == .transient(reason: .status(503), retryAfter: nil))
    }

    @Test("transient reasons describe themselves without detail worth hiding")
    func reasonDescriptions() {
        #expect(ERPResponseClass.TransientReason.status(503).description == "HTTP 503")
        #expect(ERPResponseClass.TransientReason.timeout.description == "timed out")
        #expect(ERPResponseClass.TransientReason.connectionFailed.description == "connection failed")
    }

    // MARK: Dispositions

    let retryPolicy = RetryPolicy(maxAttempts: 3, topology: PipelineFixtures.topology())!

    @Test("posted and already-posted are recorded as posted")
    func successDispositions() {
        #expect(classify(201, body: #"{"documentId":"D1"}"#).disposition(attempt: 1, retryPolicy: retryPolicy) == .recordPosted(documentId: "D1"))
        #expect(classify(409, body: "{}").disposition(attempt: 2, retryPolicy: retryPolicy) == .recordPosted(documentId: nil))
    }

    @Test("a rejection is dead-lettered as erp-rejected with status and message")
    func rejectionDisposition() {
        #expect(
            classify(422, body: #"{"message":"no such PO"}"#).disposition(attempt: 1, retryPolicy: retryPolicy)
                == .deadLetter(.erpRejected, error: "HTTP 422: no such PO")
        )
    }

    @Test("a transient failure is retried until the last attempt, then dead-lettered as retries-exhausted")
    func transientDisposition() {
        let failure = ERPResponseClass.transient(reason: .timeout, retryAfter: nil)
        let tiers = PipelineFixtures.topology().retry.tiers
        #expect(failure.disposition(attempt: 1, retryPolicy: retryPolicy) == .retry(tier: tiers[0], nextAttempt: 2))
        #expect(failure.disposition(attempt: 2, retryPolicy: retryPolicy) == .retry(tier: tiers[1], nextAttempt: 3))
        #expect(
            failure.disposition(attempt: 3, retryPolicy: retryPolicy)
                == .deadLetter(.retriesExhausted, error: "timed out on attempt 3 of 3")
        )
    }

    @Test("dead-letter reasons keep their wire strings")
    func deadLetterReasons() {
        #expect(DeadLetterReason.allCases.map(\.rawValue) == [
            "invalid", "conflict", "erp-rejected", "retries-exhausted", "gap-timeout", "delivery-limit", "reconciliation",
        ])
        #expect(DeadLetterReason(rawValue: "erp-rejected") == .erpRejected)
        #expect(DeadLetterReason.retriesExhausted.description == "retries-exhausted")
    }
}
