import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization

/// An ERP that books every single-route posting and records each request's headers: for tests
/// of what reaches the ERP besides the body (the W3C `traceparent`). Runs in the test process on
/// a free loopback port; `GET /health` answers `{}`. It doubles as an OTLP/HTTP collector: what
/// is posted under `/v1/` (`/v1/traces`) is recorded, and not counted as a posting.
public final class RecordingERP: Sendable {
    /// One request as it arrived: header names lowercase.
    public struct Request: Sendable {
        public let method: String
        public let path: String
        public let headers: [String: String]
    }

    private let recorded = Mutex<[Request]>([])

    /// The requests so far, oldest first.
    public var requests: [Request] { recorded.withLock { $0 } }

    /// The postings so far (every `POST` but the collector's).
    public var postings: [Request] { requests.filter { $0.method == "POST" && !$0.path.hasPrefix("/v1/") } }

    /// The OTLP exports so far (`POST /v1/traces`).
    public var traceExports: [Request] { requests.filter { $0.method == "POST" && $0.path == "/v1/traces" } }

    /// Starts one, runs `body` with it and its base URL (`http://127.0.0.1:PORT`), then stops it.
    public static func with<T: Sendable>(_ body: @Sendable (RecordingERP, String) async throws -> T) async throws -> T {
        let erp = RecordingERP()
        let router = Router(context: BasicRequestContext.self)
        router.get("/health") { request, _ in
            erp.record(request)
            return Self.json(.ok, "{}")
        }
        router.post("**") { request, _ in
            erp.record(request)
            return Self.json(.created, #"{"documentId":"REC-\#(erp.postings.count)"}"#)
        }
        var logger = Logger(label: "recording-erp")
        logger.logLevel = .warning
        let app = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)), logger: logger)
        return try await app.test(.live) { client in
            guard let port = client.port else { throw Missing() }
            return try await body(erp, "http://127.0.0.1:\(port)")
        }
    }

    private struct Missing: Error, CustomStringConvertible {
        var description: String { "the recording ERP's live test client has no port" }
    }

    private func record(_ request: Hummingbird.Request) {
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let entry = Request(method: request.method.rawValue, path: request.uri.path, headers: headers)
        recorded.withLock { $0.append(entry) }
    }

    private static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
