import AsyncHTTPClient
import Logging
import Testing
import Tracing
import WarehouseSyncCore
import WarehouseSyncTracing
@testable import WarehouseSyncERP

/// How a Tryton JSON-RPC answer is read (trytond 8.2's protocols/jsonrpc.py and dispatcher.py).
@Suite struct TrytonAnswerTests {
    private func classify(_ status: Int, _ body: String, retryAfter: String? = nil) -> TrytonOutcome {
        TrytonRPC.classify(
            status: status, retryAfter: retryAfter, body: Array(body.utf8), method: "model.x.create", logger: Logger(label: "test"))
    }

    @Test func aResultIsTheResult() {
        guard case .result(let value) = classify(200, #"{"id": 1, "result": [42]}"#) else {
            Issue.record("not a result")
            return
        }
        #expect(value == [42])
    }

    @Test func aUserErrorIsTrytonsMessageWithItsDescription() {
        let answer = classify(200, #"{"id": 1, "error": ["UserError", ["The value is wrong.", "Fix it.", null]]}"#)
        guard case .userError(let message) = answer else {
            Issue.record("not a user error: \(answer)")
            return
        }
        #expect(message == "The value is wrong. - Fix it.")
        #expect(TrytonERPClient.answer(answer) == .rejected(status: 422, message: "Tryton: The value is wrong. - Fix it."))
    }

    @Test func aUserWarningIsRefusedWithItsMessage() {
        let answer = classify(200, #"{"id": 1, "error": ["UserWarning", ["check_quantity", "Quantities differ.", ""]]}"#)
        guard case .userError(let message) = answer else {
            Issue.record("not refused: \(answer)")
            return
        }
        #expect(message == "Quantities differ.")
    }

    @Test(arguments: [
        (200, #"{"id": 1, "error": ["ConcurrencyException", "Records were modified"]}"#, ERPResponseClass.TransientReason.status(409)),
        (200, #"{"id": 1, "error": ["KeyError: 'x'", "Traceback ..."]}"#, .status(500)),
        (503, "Service Unavailable", .status(503)),
        (401, "", .status(401)),
        (404, "<html>Not Found</html>", .misanswered(status: 404, .notFound)),
        (200, "<html>proxy</html>", .misanswered(status: 200, .noJSONBody)),
        (302, "", .misanswered(status: 302, .noJSONBody)),
    ])
    func everythingElseIsTransient(status: Int, body: String, reason: ERPResponseClass.TransientReason) {
        guard case .transient(let found, _) = classify(status, body) else {
            Issue.record("not transient")
            return
        }
        #expect(found == reason)
    }

    @Test func aRateLimitHonoursRetryAfter() {
        guard case .transient(.status(429), let delay) = classify(429, "", retryAfter: "7") else {
            Issue.record("not a 429")
            return
        }
        #expect(delay == .seconds(7))
    }

    @Test func fractionDigitsAreCountedOnTheCanonicalForm() throws {
        #expect(try Quantity.parse("12.500").fractionDigits == 1)
        #expect(try Quantity.parse("-0.125").fractionDigits == 3)
        #expect(try Quantity.parse("7").fractionDigits == 0)
        #expect(try Quantity.parse("-3.5").magnitudeText == "3.5")
    }

    @Test func aCallCarriesTheEventsTraceContextAsTheHTTPAdapterDoes() throws {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let configuration = try TrytonConfiguration(
            baseURL: "http://127.0.0.1:8000/whsync", user: "admin", password: try #require(TrytonPassword("secret")))
        let rpc = TrytonRPC(configuration: configuration, httpClient: HTTPClient.shared, logger: Logger(label: "test"))
        let traced = ServiceContext.$current.withValue(TraceHeaders.context(from: ["traceparent": parent, "tracestate": "a=1"])) {
            rpc.request("model.stock.move.create", [], authorization: "Session x")
        }
        #expect(traced.headers.first(name: "traceparent") == parent)
        #expect(traced.headers.first(name: "tracestate") == "a=1")
        #expect(traced.headers.first(name: "Authorization") == "Session x")
        let untraced = rpc.request("model.stock.move.create", [], authorization: nil)
        #expect(untraced.headers.first(name: "traceparent") == nil)
    }
}
