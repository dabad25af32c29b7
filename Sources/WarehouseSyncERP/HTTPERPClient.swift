import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import WarehouseSyncCore
import WarehouseSyncTracing

/// ``ERPClient`` over HTTP/1.1 with AsyncHTTPClient: keep-alive connection pool, connect and
/// request timeouts, at most ``ERPClientConfiguration/maxConcurrentPosts`` posts in flight.
///
/// Call ``shutdown()`` before dropping it.
public final class HTTPERPClient: ERPClient {
    public let configuration: ERPClientConfiguration
    private let httpClient: HTTPClient
    private let slots: AsyncSemaphore
    private let logger: Logger
    /// The whole of a response body read at most; beyond it the connection is dropped instead.
    private static let maxDrainBytes = 1 << 20

    public init(configuration: ERPClientConfiguration, logger: Logger = Logger(label: "whsync.erp-client")) {
        self.configuration = configuration
        self.logger = logger
        slots = AsyncSemaphore(limit: configuration.maxConcurrentPosts)
        var http = HTTPClient.Configuration()
        http.timeout = HTTPClient.Configuration.Timeout(
            connect: Self.timeAmount(configuration.connectTimeout), read: Self.timeAmount(configuration.requestTimeout))
        // One connection per posting slot, plus room for health probes beside them.
        http.connectionPool = HTTPClient.Configuration.ConnectionPool(
            idleTimeout: Self.timeAmount(configuration.idleTimeout),
            concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.maxConcurrentPosts + 1)
        // A redirect must not carry the token elsewhere; an unexpected 3xx is transient.
        http.redirectConfiguration = .disallow
        http.decompression = .disabled
        // No tracer is bootstrapped; without this every posting still builds a no-op span.
        http.tracing.tracer = nil
        httpClient = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: http)
    }

    /// Closes the pool's connections. Posts after this answer `.transient(.connectionFailed)`.
    public func shutdown() async throws {
        try await httpClient.shutdown()
    }

    /// Posts holding a slot right now (for metrics and tests).
    public var postsInFlight: Int { slots.holders }
    /// The most posts ever in flight at once (for metrics and tests); never above the limit.
    public var peakPostsInFlight: Int { slots.peakHolders }

    public func post(_ document: PostingDocument) async -> ERPResponseClass {
        await slots.withPermit {
            await send(document)
        }
    }

    public func post(batch: PostingBatch) async -> [ERPResponseClass] {
        await slots.withPermit {
            await send(batch)
        }
    }

    public func health() async -> Bool {
        var request = HTTPClientRequest(url: configuration.baseURL + "/health")
        request.method = .GET
        addAuthorization(to: &request)
        do {
            let response = try await httpClient.execute(request, deadline: deadline(configuration.healthTimeout))
            _ = try await Self.readBody(response.body, keep: 0)
            return (200..<300).contains(Int(response.status.code))
        } catch {
            logger.debug("ERP health probe failed", metadata: ["error": "\(Self.describe(error))"])
            return false
        }
    }

    /// The ERP's balances of `warehouse` (`GET /balances?warehouse=`, DESIGN §3), for
    /// reconciliation. The answer must be a JSON object whose `balances` array holds objects with
    /// `warehouse`, `sku`, `status` and `quantity` (a JSON number or a decimal string), as the
    /// reference ERP answers. Throws ``ERPQueryError`` for anything else.
    public func balances(warehouse: String) async throws -> [StockBalance] {
        let query = "/balances?warehouse=" + Self.queryValue(warehouse)
        let body = try await get(query, context: "GET /balances?warehouse=\(warehouse)", upTo: Self.maxBalancesBytes)
        return try Self.balances(in: body.readableBytesView, warehouse: warehouse)
    }

    /// `GET {ERP_BASE_URL}{pathAndQuery}` with the token: the body of a 2xx answer; anything else
    /// throws ``ERPQueryError`` naming `context`.
    func get(_ pathAndQuery: String, context: String, upTo maxBytes: Int) async throws(ERPQueryError) -> ByteBuffer {
        var request = HTTPClientRequest(url: configuration.baseURL + pathAndQuery)
        request.method = .GET
        addAuthorization(to: &request)
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await httpClient.execute(request, deadline: deadline(configuration.requestTimeout))
            body = try await response.body.collect(upTo: maxBytes)
        } catch {
            throw ERPQueryError("\(context) failed: \(Self.describe(error))")
        }
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            let message = ERPResponseClass.rejectionMessage(status: status, body: body.readableBytesView)
            throw ERPQueryError("\(context) answered HTTP \(status): \(message)")
        }
        return body
    }

    /// `value` percent-encoded for a query string.
    static func queryValue(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: unreserved) ?? value
    }

    /// RFC 3986's unreserved characters, all a query value keeps unencoded: URLComponents would
    /// leave '+', which servers read as a space.
    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// The most of a `GET /balances` answer read (one warehouse's rows).
    static let maxBalancesBytes = 64 << 20

    static func balances(in bytes: some Collection<UInt8>, warehouse: String) throws(ERPQueryError) -> [StockBalance] {
        let context = "GET /balances?warehouse=\(warehouse)"
        guard let document = try? JSONValue(parsing: bytes), let rows = document.objectValue?["balances"]?.arrayValue else {
            throw ERPQueryError("\(context): the answer is not a JSON object with a balances array")
        }
        return try rows.enumerated().map { (index, row) throws(ERPQueryError) in
            let fields = row.objectValue
            guard let warehouse = fields?["warehouse"]?.stringValue, let sku = fields?["sku"]?.stringValue,
                  let status = fields?["status"]?.stringValue, let quantity = Quantity(json: fields?["quantity"])
            else {
                throw ERPQueryError("\(context): balances[\(index)] lacks a warehouse, sku, status or decimal quantity")
            }
            return StockBalance(warehouse: warehouse, sku: sku, status: status, quantity: quantity)
        }
    }

    private func send(_ document: PostingDocument) async -> ERPResponseClass {
        var request = postRequest(path: document.endpoint.path, body: document.body)
        request.headers.add(name: "Idempotency-Key", value: document.idempotencyKey)
        if let correlationId = document.correlationId {
            request.headers.add(name: "X-Correlation-ID", value: correlationId)
        }

        let result: ERPResponseClass
        var failure: String?
        switch await exchange(request, keep: configuration.maxBodyBytes) {
        case .answered(let status, let retryAfter, let body):
            result = ERPResponseClass.classify(status: status, retryAfter: retryAfter, body: body, now: Date())
        case .failed(let error):
            result = .transient(reason: Self.transientReason(for: error), retryAfter: nil)
            failure = Self.describe(error)
        }
        // Metadata is built only when the level is logged: this runs for every posting.
        switch result {
        case .posted, .alreadyPosted:
            logger.trace("ERP posting answered", metadata: Self.metadata(document, ["erp.result": "\(result)"]))
        case .rejected(let status, _):
            logger.debug("ERP rejected posting", metadata: Self.metadata(document, ["erp.status": "\(status)"]))
        case .transient(let reason, _):
            var extra: Logger.Metadata = ["erp.reason": "\(reason)"]
            if let failure { extra["error"] = "\(failure)" }
            logger.debug("ERP posting failed transiently", metadata: Self.metadata(document, extra))
        }
        return result
    }

    private func send(_ batch: PostingBatch) async -> [ERPResponseClass] {
        // Every item's result must arrive: a batch answer is kept whole, up to the drain limit.
        switch await exchange(postRequest(path: PostingBatch.path, body: batch.body), keep: Self.maxDrainBytes) {
        case .answered(let status, let retryAfter, let body):
            return batch.classify(status: status, retryAfter: retryAfter, body: body, now: Date())
        case .failed(let error):
            let reason = Self.transientReason(for: error)
            logger.debug(
                "ERP batch failed transiently",
                metadata: ["erp.items": "\(batch.documents.count)", "erp.reason": "\(reason)", "error": "\(Self.describe(error))"])
            return Array(repeating: .transient(reason: reason, retryAfter: nil), count: batch.documents.count)
        }
    }

    /// A JSON `POST` to `path` with the token, and the W3C trace context of the task's current
    /// context (`traceparent`, `tracestate`: docs/tracing.md) when it carries one.
    private func postRequest(path: String, body: JSONValue) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: configuration.baseURL + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in TraceHeaders.current { request.headers.replaceOrAdd(name: name, value: value) }
        addAuthorization(to: &request)
        request.body = .bytes(ByteBuffer(bytes: body.serializedBytes()))
        return request
    }

    private enum Exchange {
        /// The ERP answered `status`; `body` holds the first bytes kept (none when the body broke
        /// off: the status decides then).
        case answered(status: Int, retryAfter: String?, body: [UInt8])
        /// No answer: no connection, or no status in time.
        case failed(any Error)
    }

    private func exchange(_ request: HTTPClientRequest, keep: Int) async -> Exchange {
        var answered: (status: Int, retryAfter: String?)?
        do {
            let response = try await httpClient.execute(request, deadline: deadline(configuration.requestTimeout))
            answered = (Int(response.status.code), response.headers.first(name: "Retry-After"))
            let body = try await Self.readBody(response.body, keep: keep)
            return .answered(status: Int(response.status.code), retryAfter: answered?.retryAfter, body: body)
        } catch {
            guard let answered else { return .failed(error) }
            return .answered(status: answered.status, retryAfter: answered.retryAfter, body: [])
        }
    }

    private static func metadata(_ document: PostingDocument, _ extra: Logger.Metadata) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["eventId": "\(document.idempotencyKey)", "erp.endpoint": "\(document.endpoint)"]
        if let correlationId = document.correlationId { metadata["correlationId"] = "\(correlationId)" }
        return metadata.merging(extra) { $1 }
    }

    private func addAuthorization(to request: inout HTTPClientRequest) {
        if let token = configuration.token {
            request.headers.add(name: "Authorization", value: "Bearer \(token.value)")
        }
    }

    private func deadline(_ timeout: Duration) -> NIODeadline {
        .now() + Self.timeAmount(timeout)
    }

    /// The first `keep` bytes of `body`; the rest is read and dropped (so the connection can be
    /// reused) up to ``maxDrainBytes``, beyond which reading stops and the connection closes.
    static func readBody(_ body: HTTPClientResponse.Body, keep: Int) async throws -> [UInt8] {
        var kept: [UInt8] = []
        var total = 0
        for try await chunk in body {
            if kept.count < keep {
                kept += chunk.readableBytesView.prefix(keep - kept.count)
            }
            total += chunk.readableBytes
            if total > maxDrainBytes { break }
        }
        return kept
    }

    /// Timeouts (the request's deadline, a read or write timeout, cancellation: the ERP may have
    /// booked it) versus connection failures (nothing or not all of it was sent or answered).
    static func transientReason(for error: any Error) -> ERPResponseClass.TransientReason {
        if error is CancellationError { return .timeout }
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .writeTimeout, .cancelled:
                return .timeout
            default:
                return .connectionFailed
            }
        }
        return .connectionFailed
    }

    /// An error for a log line: its type and description, no request contents.
    static func describe(_ error: any Error) -> String {
        "\(type(of: error)): \(error)"
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !nanoseconds.overflow else { return .nanoseconds(Int64.max) }
        return .nanoseconds(nanoseconds.partialValue + attoseconds / 1_000_000_000)
    }
}

/// A query to the ERP (not a posting) that failed; the description is one line for an operator.
public struct ERPQueryError: Error, Sendable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
