import Foundation

/// What an ERP answer, or the lack of one, means for a posting (DESIGN §3).
///
/// The adapter classifies every HTTP answer with ``classify(status:retryAfter:body:now:)`` and
/// builds ``transient(reason:retryAfter:)`` itself for timeouts and connection errors; then
/// ``disposition(attempt:retryPolicy:)`` says what to do with the message.
public enum ERPResponseClass: Sendable, Hashable {
    /// 200/201 with a JSON object carrying `documentId`: the ERP booked the document.
    case posted(documentId: String?)
    /// 409 with a JSON body: the `Idempotency-Key` was booked before (a retry or a crash between
    /// post and record). Success, not an error.
    case alreadyPosted
    /// 400 or 422 with a JSON error body: the ERP refuses the document. Retrying cannot help:
    /// dead-letter it with the ERP's message (bounded, first line only; see
    /// ``rejectionMessage(status:body:)``).
    case rejected(status: Int, message: String)
    /// Worth retrying later: 408, 429, 5xx, timeouts, connection errors, and every answer that is
    /// not the ERP speaking (``TransientReason/misanswered(status:_:)``): a wrong URL, an
    /// ingress's page or a token must not burn the queue into dead letters, nor lose an event.
    case transient(reason: TransientReason, retryAfter: Duration?)

    /// Why a posting failed transiently. The description is safe to log.
    public enum TransientReason: Sendable, Hashable, CustomStringConvertible {
        /// The ERP answered with this HTTP status, one the contract names as transient
        /// (408, 429, 5xx), or a 401/403 carrying a JSON error body (a refused token).
        case status(Int)
        /// Something answered that is not the ERP speaking (DESIGN §3): a 2xx without a JSON
        /// object carrying `documentId` (a proxy's HTML page), a 404, or a status without the
        /// JSON body the contract gives it (a wrong base URL, an ingress rule). Never posted,
        /// never rejected: the worker's `/readyz` names the ERP as misanswering.
        case misanswered(status: Int, Misanswer)
        /// No answer in time. The ERP may have booked it: the retry's `Idempotency-Key` covers that.
        case timeout
        /// No connection (refused, reset, DNS, TLS).
        case connectionFailed

        public var description: String {
            switch self {
            case .status(let code): "HTTP \(code)"
            case .misanswered(let code, let what): "HTTP \(code) \(what)"
            case .timeout: "timed out"
            case .connectionFailed: "connection failed"
            }
        }

        /// Whether the failure concerns every posting rather than this one item: no connection,
        /// no answer in time, an answer that is not the ERP speaking, or a refused token (401,
        /// 403). The ``CircuitBreaker`` counts these in a row whatever their keys; other
        /// failures (a 503 for one item) count only across distinct keys.
        public var isSystemic: Bool {
            switch self {
            case .status(let code): code == 401 || code == 403
            case .misanswered, .timeout, .connectionFailed: true
            }
        }

        /// Whether the ERP itself answered (a status with the body the contract gives it): only
        /// then can a failure belong to one item. No answer, or one from a proxy, says nothing
        /// about the item posted.
        public var isERPAnswer: Bool {
            if case .status = self { return true }
            return false
        }
    }

    /// What was wrong with an answer that is not the ERP speaking.
    public enum Misanswer: String, Sendable, Hashable, CustomStringConvertible {
        /// A 2xx whose body is not a JSON object carrying a non-empty `documentId`.
        case noDocumentId = "without a JSON documentId"
        /// A status whose meaning needs a JSON body (400, 409, 422, 401, 403, other 4xx, 3xx)
        /// came without one.
        case noJSONBody = "without a JSON body"
        /// 404: the route does not exist there (a wrong base URL or an ingress rule), whatever
        /// the body says; the contract has no business meaning for it.
        case notFound = "(no such route: check ERP_BASE_URL)"
        /// A batch answer (DESIGN §3a) without one valid result for the item: not a `200` with
        /// a `results` array, or no result (or two) with the item's index and idempotency key.
        case noBatchResult = "without a valid result for the item"

        public var description: String { rawValue }
    }

    /// The longest rejection message kept, in characters (it becomes the `whsync-error` header).
    public static let maxMessageLength = 256
    /// The longest `documentId` taken from a success body, in characters; longer ones are dropped.
    public static let maxDocumentIdLength = 256

    /// Classifies an HTTP answer (DESIGN §3). `retryAfter` is the `Retry-After` header
    /// (delay-seconds or an HTTP-date, read against `now`); `body` is the start of the response
    /// body (enough of it to hold the JSON object of a posting's answer).
    public static func classify(
        status: Int, retryAfter: String?, body: some Collection<UInt8>, now: Date
    ) -> ERPResponseClass {
        classify(
            status: status, object: (try? JSONValue(parsing: body))?.objectValue,
            message: { rejectionMessage(status: status, body: body) },
            retryAfter: { retryAfter.flatMap { RetryAfter.parse($0, now: now) } })
    }

    /// The rules of DESIGN §3 on a status and the JSON object that came with it (`nil`: none):
    /// for a single route's answer and for one result of the batch route (§3a) alike.
    static func classify(
        status: Int, object: JSONObject?, message: () -> String, retryAfter: () -> Duration?
    ) -> ERPResponseClass {
        switch status {
        case 200..<300:
            guard let object, let id = documentId(in: object) else {
                return .transient(reason: .misanswered(status: status, .noDocumentId), retryAfter: nil)
            }
            return .posted(documentId: id.count <= maxDocumentIdLength ? id : nil)
        case 404:
            return .transient(reason: .misanswered(status: status, .notFound), retryAfter: nil)
        case 408, 429, 500..<600:
            // Transient by the contract, whoever said it.
            return .transient(reason: .status(status), retryAfter: retryAfter())
        default:
            guard object != nil else {
                return .transient(reason: .misanswered(status: status, .noJSONBody), retryAfter: retryAfter())
            }
            switch status {
            case 409: return .alreadyPosted
            case 400, 422: return .rejected(status: status, message: message())
            default: return .transient(reason: .status(status), retryAfter: retryAfter())
            }
        }
    }

    /// `true` for a transient failure, which counts against the ``CircuitBreaker``. Posted,
    /// already posted and rejected prove the ERP is up: report them as a success.
    public var isTransient: Bool {
        if case .transient = self { return true }
        return false
    }

    /// What to do with the message after posting attempt `attempt`
    /// (``RetryPolicy/attempt(fromHeader:)``) ended with this answer.
    public func disposition(attempt: Int, retryPolicy: RetryPolicy) -> PostingDisposition {
        switch self {
        case .posted(let documentId):
            return .recordPosted(documentId: documentId)
        case .alreadyPosted:
            return .recordPosted(documentId: nil)
        case .rejected(let status, let message):
            return .deadLetter(.erpRejected, error: "HTTP \(status): \(message)")
        case .transient(let reason, let retryAfter):
            switch retryPolicy.decide(afterFailedAttempt: attempt, retryAfter: retryAfter) {
            case .retry(let tier, let nextAttempt):
                return .retry(tier: tier, nextAttempt: nextAttempt)
            case .exhausted:
                let error = "\(reason) on attempt \(attempt) of \(retryPolicy.maxAttempts)"
                return .deadLetter(.retriesExhausted, error: error)
            }
        }
    }

    /// The ERP's message from a rejection body, safe for a header and a log line: the `message`,
    /// `error`, `detail` or `title` string of a JSON object (also one level down, as in
    /// `{"error": {"message": …}}`), else the body as text; only its first line (a stack trace
    /// never follows it out), control characters as spaces, at most ``maxMessageLength``
    /// characters.
    public static func rejectionMessage(status: Int, body: some Collection<UInt8>) -> String {
        var text = String(decoding: body, as: UTF8.self)
        if let object = (try? JSONValue(parsing: body))?.objectValue, let message = messageField(of: object) {
            text = message
        }
        return cleanedMessage(text, status: status)
    }

    /// ``rejectionMessage(status:body:)`` of a JSON object (a batch result).
    static func rejectionMessage(status: Int, object: JSONObject) -> String {
        cleanedMessage(messageField(of: object) ?? JSONValue.object(object).serialized(), status: status)
    }

    private static func cleanedMessage(_ text: String, status: Int) -> String {
        let firstLine = text.split(whereSeparator: \.isNewline).first { !$0.allSatisfy(\.isWhitespace) } ?? ""
        let isControl = { (character: Character) in
            character.unicodeScalars.contains { $0.properties.generalCategory == .control }
        }
        let cleaned = String(firstLine.map { isControl($0) ? " " : $0 })
            .trimmingCharacters(in: .whitespaces)
        guard !cleaned.isEmpty else { return "no message (HTTP \(status))" }
        guard cleaned.count > maxMessageLength else { return cleaned }
        return String(cleaned.prefix(maxMessageLength - 1)) + "…"
    }

    private static func messageField(of object: JSONObject) -> String? {
        for key in ["message", "error", "detail", "title"] {
            switch object[key] {
            case .string(let text) where !text.isEmpty: return text
            case .object(let nested): if let text = nested["message"]?.stringValue, !text.isEmpty { return text }
            default: continue
            }
        }
        return nil
    }

    /// The non-empty `documentId` (a string or a number) of a success answer.
    private static func documentId(in object: JSONObject) -> String? {
        switch object["documentId"] {
        case .string(let text) where !text.isEmpty: text
        case .number(let literal): literal
        default: nil
        }
    }
}

/// What the pipeline does with a message once its posting attempt has an answer.
public enum PostingDisposition: Sendable, Hashable {
    /// Record the `eventId` as posted (with the document id, when the ERP gave one), settle the
    /// key (``SequenceGate/settle(_:sequence:)``) in the same transaction, then ack.
    case recordPosted(documentId: String?)
    /// Publish to the dead-letter exchange with `whsync-reason` and `whsync-error: error`
    /// (bounded, safe to log) and wait for the confirm; record the `eventId` as dead-lettered and
    /// settle the key in one transaction; then ack. The key moves on without it.
    case deadLetter(DeadLetterReason, error: String)
    /// Publish to the retry exchange for `tier` with `whsync-attempt: nextAttempt`, wait for the
    /// confirm, then ack. Record nothing: the key waits for this event.
    case retry(tier: Topology.RetryTier, nextAttempt: Int)
}

/// The `Retry-After` header (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date in any of its
/// three forms (IMF-fixdate, RFC 850, asctime).
enum RetryAfter {
    /// The delay it asks for, never negative; `nil` when the value is neither form.
    static func parse(_ value: String, now: Date) -> Duration? {
        let text = value.trimmingCharacters(in: .whitespaces)
        if !text.isEmpty, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) {
            // A day is far beyond any retry tier; more digits only risk overflow.
            return .seconds(min(Int64(text.prefix(9)) ?? 0, 86_400))
        }
        guard let date = httpDate(text) else { return nil }
        let seconds = max(0, date.secondsSince1970 - Int64(now.timeIntervalSince1970.rounded(.down)))
        return .seconds(seconds)
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT`, `Sun Nov  6 08:49:37 1994`.
    private static func httpDate(_ text: String) -> Timestamp? {
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "-" }).map(String.init)
        guard tokens.count >= 5 else { return nil }
        let day: String, month: String, year: String, time: String
        if months.contains(tokens[1]) {
            guard tokens.count == 5 else { return nil }  // asctime: weekday month day time year
            (month, day, time, year) = (tokens[1], tokens[2], tokens[3], tokens[4])
        } else {
            guard tokens.count == 6, tokens[5] == "GMT" else { return nil }
            (day, month, year, time) = (tokens[1], tokens[2], tokens[3], tokens[4])
        }
        guard let monthIndex = months.firstIndex(of: month), day.count <= 2, let dayNumber = Int(day),
            let yearNumber = Int(year), year.count == 4 || year.count == 2
        else { return nil }
        // RFC 850's two-digit years: RFC 9110 reads them as at most 50 years ahead; for a
        // Retry-After that means this century.
        let fullYear = year.count == 2 ? 2000 + yearNumber : yearNumber
        func padded(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return Timestamp(parsing: "\(padded(fullYear, 4))-\(padded(monthIndex + 1, 2))-\(padded(dayNumber, 2))T\(time)Z")
    }
}
