import Foundation
import Hummingbird
import Logging
import WarehouseSyncCore

/// Runs around every route: echoes `X-Correlation-ID`, injects faults, checks the bearer token,
/// answers errors as JSON, counts and logs the request.
///
/// Order: faults first (an ERP that is down answers nobody, authorised or not), then the token.
/// `/admin/*` is exempt from faults, so a test can always end the outage it started; `GET
/// /health` is exempt from the token, so probes need no secret.
struct ERPMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext

    let server: ReferenceERPServer

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let started = ContinuousClock.now
        let path = request.uri.path
        let isAdmin = path.hasPrefix("/admin/")
        let isPosting = request.method == .post && (DocumentType.allCases.contains { $0.path == path } || path == PostingBatch.path)
        let correlationId = request.headers[.correlationID]

        var injected = false
        var response: Response
        if !isAdmin, let faulted = await injectFault(isPosting: isPosting) {
            response = faulted
            injected = true
        } else if let token = server.configuration.token, !(request.method == .get && path == "/health"),
                  !token.matches(authorization: request.headers[.authorization])
        {
            response = ReferenceERPServer.json(401, [
                "error": "unauthorized",
                "message": "a valid Authorization: Bearer token is required",
            ])
            response.headers[.wwwAuthenticate] = "Bearer"
        } else {
            do {
                response = try await next(request, context)
            } catch let error as HTTPResponseError {
                let status = Int(error.status.code)
                response = ReferenceERPServer.json(status, [
                    "error": .string(status == 404 ? "not-found" : "http-\(status)"),
                    "message": .string(error.status.reasonPhrase),
                ])
            } catch {
                server.logger.error("request failed", metadata: ["erp.path": "\(path)", "error": "\(error)"])
                response = ReferenceERPServer.json(500, ["error": "internal", "message": "internal error; see the ERP's log"])
            }
            injected = response.headers[.injectedFault] != nil
        }
        if let correlationId {
            response.headers[.correlationID] = correlationId
        }

        let status = Int(response.status.code)
        let endpoint = Self.statsEndpoint(method: request.method, path: path)
        server.stats.record(endpoint: endpoint, status: status, injected: injected)
        log(request, path: path, status: status, started: started, correlationId: correlationId, isPosting: isPosting)
        return response
    }

    /// The answer the fault injector makes up, after its latency; `nil` to go on.
    private func injectFault(isPosting: Bool) async -> Response? {
        let decision = server.faults.decide(for: isPosting ? .posting : .other)
        if let latency = decision.latency {
            try? await Task.sleep(for: latency)
        }
        guard let status = decision.failure else { return nil }
        let outage = decision.outage
        var response = ReferenceERPServer.json(status, [
            "error": "injected-fault",
            "message": .string(outage ? "the ERP is down (injected outage)" : "injected error"),
        ])
        response.headers[.injectedFault] = outage ? "outage" : "error"
        if let seconds = decision.retryAfterSeconds {
            response.headers[.retryAfter] = String(seconds)
        }
        return response
    }

    /// Stats group requests by route: the posting endpoints by path, the rest by method and path.
    static func statsEndpoint(method: HTTPRequest.Method, path: String) -> String {
        if method == .post, DocumentType.allCases.contains(where: { $0.path == path }) {
            return path
        }
        let known = ["/health", "/balances", "/documents", "/stats", "/admin/faults", PostingBatch.path]
        return "\(method.rawValue) \(known.contains(path) ? path : "other")"
    }

    private func log(
        _ request: Request, path: String, status: Int, started: ContinuousClock.Instant, correlationId: String?, isPosting: Bool
    ) {
        // Built only for a line that is logged: this runs for every request.
        func metadata() -> Logger.Metadata {
            var metadata: Logger.Metadata = [
                "http.method": "\(request.method.rawValue)", "http.path": "\(path)", "http.status": "\(status)",
                "http.durationMs": "\((ContinuousClock.now - started).wholeMilliseconds)",
            ]
            if let correlationId { metadata["correlationId"] = "\(correlationId)" }
            if let key = request.headers[.idempotencyKey] { metadata["erp.idempotencyKey"] = "\(key)" }
            return metadata
        }
        // Postings that were neither posted nor recognised as duplicates are worth seeing at info.
        if isPosting, status != 201, status != 409, !(path == PostingBatch.path && status == 200) {
            server.logger.info("posting not accepted", metadata: metadata())
        } else {
            server.logger.debug("request", metadata: metadata())
        }
    }
}
