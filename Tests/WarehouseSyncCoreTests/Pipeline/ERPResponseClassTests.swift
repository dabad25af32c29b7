import Foundation
import Testing
import WarehouseSyncCore

@Suite("ERPResponseClass")
struct ERPResponseClassTests {
    let now = PipelineFixtures.epoch  // 2024-05-01T08:00:00Z, a Wednesday

    private func classify(_ status: Int, retryAfter: String? = nil, body: String = "") -> ERPResponseClass {
        ERPResponseClass.classify(status: status, retryAfter: retryAfter, body: Array(body.utf8), now: now)
    }

    @Test("2xx is posted, with the documentId when the body has one")
    func posted() {
        #expect(classify(201, body: #"{"documentId":"DOC-9","x":1}"#) == .posted(documentId: "DOC-9"))
        #expect(classify(200, body: #"{"documentId":123}"#) == .posted(documentId: "123"))
        #expect(classify(200, body: "OK") == .posted(documentId: nil))
        #expect(classify(204) == .posted(documentId: nil))
        let long = String(repeating: "d", count: ERPResponseClass.maxDocumentIdLength + 1)
        #expect(classify(201, body: #"{"documentId":"\#(long)"}"#) == .posted(documentId: nil))
    }

    @Test("409 is success: the Idempotency-Key was booked before")
    func conflictIsAlreadyPosted() {
        #expect(classify(409, body: #"{"message":"duplicate"}"#) == .alreadyPosted)
    }

    @Test("400, 404 and 422 are business rejections carrying the ERP's message", arguments: [400, 404, 422])
    func rejections(status: Int) {
        #expect(classify(status, body: #"{"message":"unknown SKU 'X-1'"}"#) == .rejected(status: status, message: "unknown SKU 'X-1'"))
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

    @Test("408, 429, 5xx and unnamed statuses are transient", arguments: [408, 429, 500, 502, 503, 504, 401, 403, 301, 418])
    func transientStatuses(status: Int) {
        #expect(classify(status) == .transient(reason: .status(status), retryAfter: nil))
        #expect(classify(status).isTransient)
    }

    @Test("only transient answers count against the circuit breaker")
    func isTransient() {
        #expect(!classify(201).isTransient)
        #expect(!classify(409).isTransient)
        #expect(!classify(422).isTransient)
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
        #expect(classify(409).disposition(attempt: 2, retryPolicy: retryPolicy) == .recordPosted(documentId: nil))
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
            "invalid", "conflict", "erp-rejected", "retries-exhausted", "gap-timeout", "delivery-limit",
        ])
        #expect(DeadLetterReason(rawValue: "erp-rejected") == .erpRejected)
        #expect(DeadLetterReason.retriesExhausted.description == "retries-exhausted")
    }
}
