import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import WarehouseSyncCore
import WarehouseSyncTracing

/// What one Tryton JSON-RPC call came to.
enum TrytonOutcome: Sendable {
    /// The call's `result`.
    case result(JSONValue)
    /// Tryton refused the call for a business reason (`UserError`, `UserWarning`): its message.
    case userError(String)
    /// No usable answer: retry later.
    case transient(ERPResponseClass.TransientReason, retryAfter: Duration?)
}

/// Tryton's JSON-RPC over AsyncHTTPClient: `POST {base}/rpc/` with
/// `{"id", "method", "params"}`, logged in with `common.db.login` and carrying
/// `Authorization: Session base64(login:userId:token)`; the session is renewed when Tryton
/// answers 401. Model calls get the user's company in their context (the last parameter).
final class TrytonRPC: Sendable {
    private let configuration: TrytonConfiguration
    private let httpClient: HTTPClient
    private let rpcURL: String
    private let session = SessionBox()
    private let logger: Logger

    init(configuration: TrytonConfiguration, httpClient: HTTPClient, logger: Logger) {
        self.configuration = configuration
        self.httpClient = httpClient
        self.logger = logger
        rpcURL = configuration.http.baseURL + "/rpc/"
    }

    /// `model.<model>.<method>(params..., context)`; `extraContext`'s members join the session's.
    func model(
        _ model: String, _ method: String, _ params: [JSONValue], timeout: Duration? = nil, extraContext: JSONObject? = nil
    ) async -> TrytonOutcome {
        let deadline = timeout ?? configuration.http.requestTimeout
        for attempt in 0..<2 {
            let current: Session
            switch await session.current(login: { await self.login(timeout: deadline) }) {
            case .success(let value): current = value
            case .failure(let failure): return failure.outcome
            }
            var context = current.context
            for member in extraContext ?? JSONObject() {
                context = .object(JSONObject(uniqueKeysWithValues: (context.objectValue ?? JSONObject()).map { ($0.key, $0.value) }
                    .filter { $0.0 != member.key } + [(member.key, member.value)]))
            }
            let outcome = await send(
                "model.\(model).\(method)", params + [context], authorization: current.authorization, timeout: deadline)
            if case .transient(.status(401), _) = outcome, attempt == 0 {
                // The session expired or the server restarted: log in again, once.
                await session.invalidate(current)
                continue
            }
            return outcome
        }
        return .transient(.status(401), retryAfter: nil)
    }

    /// Drops the session so that the next call logs in (after a refused login, say).
    func reset() async {
        await session.reset()
    }

    struct Session: Sendable, Equatable {
        let authorization: String
        let context: JSONValue
        let companyId: Int
    }

    struct LoginFailure: Error {
        let outcome: TrytonOutcome
    }

    /// `common.db.login`, then the user's preferences for the company.
    private func login(timeout: Duration) async -> Result<Session, LoginFailure> {
        let outcome = await send(
            "common.db.login",
            [.string(configuration.user), .object(JSONObject(uniqueKeysWithValues: [("password", .string(configuration.password.value))])), "en"],
            authorization: nil, timeout: timeout)
        guard case .result(let result) = outcome else {
            if case .userError(let message) = outcome {
                // A LoginException (a second factor, say): nothing a retry of the posting fixes soon.
                logger.warning("Tryton refused the login", metadata: ["erp.message": "\(message)"])
                return .failure(LoginFailure(outcome: .transient(.status(403), retryAfter: nil)))
            }
            return .failure(LoginFailure(outcome: outcome))
        }
        guard let values = result.arrayValue, values.count >= 2, let userId = values[0].numberLiteral.flatMap({ Int($0) }),
              let token = values[1].stringValue
        else {
            return .failure(LoginFailure(outcome: .transient(.misanswered(status: 200, .noJSONBody), retryAfter: nil)))
        }
        let credentials = Data("\(configuration.user):\(userId):\(token)".utf8).base64EncodedString()
        let authorization = "Session \(credentials)"
        let preferences = await send(
            "model.res.user.get_preferences", [true, .object(JSONObject())], authorization: authorization, timeout: timeout)
        guard case .result(let prefs) = preferences else {
            return .failure(LoginFailure(outcome: preferences))
        }
        guard let company = prefs["company"]?.numberLiteral.flatMap({ Int($0) }) else {
            logger.warning("Tryton user has no company", metadata: ["erp.user": "\(configuration.user)"])
            return .failure(LoginFailure(outcome: .userError("Tryton user '\(configuration.user)' has no company set")))
        }
        let context = JSONValue.object(JSONObject(uniqueKeysWithValues: [
            ("company", .number(company)), ("companies", .array([.number(company)])), ("language", "en"),
        ]))
        logger.debug("logged in to Tryton", metadata: ["erp.user": "\(configuration.user)", "erp.database": "\(configuration.database)"])
        return .success(Session(authorization: authorization, context: context, companyId: company))
    }

    /// The company of the logged-in user (logs in when needed).
    func companyId() async -> Result<Int, LoginFailure> {
        await session.current(login: { await self.login(timeout: self.configuration.http.requestTimeout) }).map(\.companyId)
    }

    /// A JSON-RPC call's request, with the W3C trace context of the task's current context
    /// (`traceparent`, `tracestate`: docs/tracing.md) when it carries one, as the HTTP adapter sends.
    func request(_ method: String, _ params: [JSONValue], authorization: String?) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: rpcURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in TraceHeaders.current { request.headers.replaceOrAdd(name: name, value: value) }
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        let body = JSONValue.object(JSONObject(uniqueKeysWithValues: [
            ("id", 1), ("method", .string(method)), ("params", .array(params)),
        ]))
        request.body = .bytes(ByteBuffer(bytes: body.serializedBytes()))
        return request
    }

    /// One JSON-RPC exchange, classified.
    private func send(_ method: String, _ params: [JSONValue], authorization: String?, timeout: Duration) async -> TrytonOutcome {
        let request = request(method, params, authorization: authorization)
        let status: Int
        let bytes: ByteBuffer
        let retryAfter: String?
        do {
            let response = try await httpClient.execute(request, deadline: .now() + HTTPERPClient.timeAmount(timeout))
            status = Int(response.status.code)
            retryAfter = response.headers.first(name: "Retry-After")
            bytes = try await response.body.collect(upTo: Self.maxAnswerBytes)
        } catch {
            logger.debug("Tryton call failed", metadata: ["erp.method": "\(method)", "error": "\(HTTPERPClient.describe(error))"])
            return .transient(HTTPERPClient.transientReason(for: error), retryAfter: nil)
        }
        return Self.classify(status: status, retryAfter: retryAfter, body: bytes.readableBytesView, method: method, logger: logger)
    }

    /// The most of an answer read (a balance query of many products).
    static let maxAnswerBytes = 64 << 20

    /// A JSON-RPC answer: 200 with `result` is the result; 200 with an `error` of a
    /// `UserError` or `UserWarning` is Tryton's business message; a `ConcurrencyException` and
    /// any other error (a server fault) are transient, as are 429, 5xx, 401 and 403; a 404 or a
    /// 200 that is not JSON-RPC is not Tryton speaking (a wrong URL or database).
    static func classify(status: Int, retryAfter: String?, body: some Collection<UInt8>, method: String, logger: Logger) -> TrytonOutcome {
        let delay = retryAfter.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }.map { Duration.seconds(max(0, $0)) }
        switch status {
        case 200:
            guard let object = (try? JSONValue(parsing: body))?.objectValue else {
                return .transient(.misanswered(status: 200, .noJSONBody), retryAfter: nil)
            }
            if let result = object["result"] { return .result(result) }
            guard let error = object["error"]?.arrayValue, let kind = error.first?.stringValue else {
                return .transient(.misanswered(status: 200, .noJSONBody), retryAfter: nil)
            }
            let details = error.count > 1 ? error[1] : .null
            switch kind {
            case "UserError":
                return .userError(message(details.arrayValue?.first, details.arrayValue?.dropFirst().first))
            case "UserWarning":
                // [name, message, description]
                let parts = details.arrayValue ?? []
                return .userError(message(parts.dropFirst().first, parts.dropFirst(2).first))
            case "ConcurrencyException":
                return .transient(.status(409), retryAfter: nil)
            case "LoginException":
                return .transient(.status(401), retryAfter: nil)
            default:
                // [str(exception), traceback]: a fault in the server, not the document's.
                logger.warning("Tryton answered a server error", metadata: ["erp.method": "\(method)", "erp.error": "\(kind.prefix(200))"])
                return .transient(.status(500), retryAfter: nil)
            }
        case 404:
            return .transient(.misanswered(status: 404, .notFound), retryAfter: nil)
        case 401, 403, 408, 429, 500...599:
            return .transient(.status(status), retryAfter: delay)
        default:
            return .transient(.misanswered(status: status, .noJSONBody), retryAfter: nil)
        }
    }

    private static func message(_ message: JSONValue?, _ description: JSONValue?) -> String {
        let text = message?.stringValue ?? "Tryton refused the document"
        guard let description = description?.stringValue, !description.isEmpty else { return text }
        return "\(text) - \(description)"
    }
}

/// The session, shared by every call; one login at a time.
private actor SessionBox {
    private var session: TrytonRPC.Session?
    private var pending: Task<Result<TrytonRPC.Session, TrytonRPC.LoginFailure>, Never>?

    func current(
        login: @escaping @Sendable () async -> Result<TrytonRPC.Session, TrytonRPC.LoginFailure>
    ) async -> Result<TrytonRPC.Session, TrytonRPC.LoginFailure> {
        if let session { return .success(session) }
        if let pending { return await pending.value }
        let task = Task { await login() }
        pending = task
        let result = await task.value
        pending = nil
        if case .success(let value) = result { session = value }
        return result
    }

    func invalidate(_ stale: TrytonRPC.Session) {
        if session == stale { session = nil }
    }

    func reset() {
        session = nil
    }
}
