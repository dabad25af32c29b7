import Foundation
import Hummingbird
import WarehouseSyncCore
import WarehouseSyncPublisher

/// The gateway's JSON answers (docs/gateway.md "Responses").
enum GatewayReply {
    static func json(_ status: HTTPResponse.Status, _ value: some Encodable, retryAfter: Int? = nil) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data(#"{"error":"internal","message":"could not encode the answer"}"#.utf8)
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// `{"error": code, "message": ..., "violations": [...]}`.
    static func error(
        _ status: HTTPResponse.Status, code: String, message: String, violations: [EventValidationError.Violation] = [],
        retryAfter: Int? = nil, challenge: String? = nil
    ) -> Response {
        var response = json(
            status, ErrorBody(error: code, message: message, violations: violations.isEmpty ? nil : violations.map(ViolationBody.init)),
            retryAfter: retryAfter)
        if let challenge { response.headers[.wwwAuthenticate] = challenge }
        return response
    }

    struct ErrorBody: Encodable {
        let error: String
        let message: String
        let violations: [ViolationBody]?
    }
}

struct ViolationBody: Encodable {
    let field: String
    let rule: String

    init(_ violation: EventValidationError.Violation) {
        field = violation.field
        rule = violation.rule
    }
}

/// One event's outcome: `accepted` (the broker confirmed it), `invalid` (nothing published; the
/// violations say why), or why it was not published: `unavailable`, `timeout`, `not-confirmed`
/// (send it again later).
struct EventResult: Encodable {
    /// The event's place in the batch, from 0; absent for `POST /events`.
    var index: Int?
    /// For JSON lines: the line the event was on.
    var line: Int?
    var eventId: String?
    var status: String
    var message: String?
    var violations: [ViolationBody]?

    init(event: ValidatedEvent, outcome: Result<Void, PublishError>) {
        eventId = event.event.eventId
        switch outcome {
        case .success:
            status = "accepted"
        case .failure(let error):
            status = error.code.name
            message = error.message
        }
    }

    init(index: Int, line: Int?, invalidBody: [UInt8], error: PublishError) {
        self.index = index
        self.line = line
        // Named when the body has one, so that the integrator finds the event.
        eventId = (try? JSONValue(parsing: invalidBody))?["eventId"]?.stringValue
        status = error.code.name
        message = error.message
        violations = error.violations.map(ViolationBody.init)
    }
}

/// `POST /events:batch`'s answer: counts, then one result per event in the order sent.
struct BatchResult: Encodable {
    let accepted: Int
    let invalid: Int
    /// Valid events the broker did not confirm: send them again.
    let failed: Int
    let results: [EventResult]

    init(results: [EventResult]) {
        self.results = results
        accepted = results.count { $0.status == "accepted" }
        invalid = results.count { $0.status == PublishError.Code.invalid.name }
        failed = results.count - accepted - invalid
    }

    /// `202` all accepted; `400` all invalid; `503` none accepted and some could be sent again;
    /// otherwise `207`: some accepted, look at the results.
    var httpStatus: HTTPResponse.Status {
        if accepted == results.count { return .accepted }
        if invalid == results.count { return .badRequest }
        if accepted == 0 && failed > 0 && invalid == 0 { return .serviceUnavailable }
        return HTTPResponse.Status(code: 207, reasonPhrase: "Multi-Status")
    }
}
