import AsyncHTTPClient
import Foundation
import NIOCore

/// Where the WMS's snapshot for reconciliation comes from (docs/reconciliation.md): a file, or
/// an `http(s)://` URL answering the same JSON lines (`RECONCILE_SOURCE`, `whsync reconcile
/// SOURCE`). Read whole at each run; neither blocks the cooperative thread pool (a file is read on
/// a thread of its own, a URL through AsyncHTTPClient's event loops).
public enum SnapshotSource: Sendable, Hashable, CustomStringConvertible {
    case file(String)
    case url(String)

    /// The most of a snapshot read.
    public static let maxBytes = 256 << 20

    /// An `http://` or `https://` URL, else a path; `nil` for an empty text.
    public init?(_ text: String) {
        guard !text.isEmpty else { return nil }
        let lower = text.lowercased()
        self = lower.hasPrefix("http://") || lower.hasPrefix("https://") ? .url(text) : .file(text)
    }

    /// The URL without user info or query (they may carry a token), or the path.
    public var description: String {
        switch self {
        case .file(let path): return path
        case .url(let text):
            guard var components = URLComponents(string: text) else { return "(a URL)" }
            components.user = nil
            components.password = nil
            components.query = nil
            return components.string ?? "(a URL)"
        }
    }

    public struct ReadError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// The snapshot's bytes.
    public func read(timeout: Duration = .seconds(60)) async throws(ReadError) -> [UInt8] {
        switch self {
        case .file(let path):
            let result: Result<[UInt8], ReadError> = await withCheckedContinuation { continuation in
                Thread {
                    guard let handle = FileHandle(forReadingAtPath: path) else {
                        continuation.resume(returning: .failure(ReadError(description: "\(path): cannot be opened")))
                        return
                    }
                    defer { try? handle.close() }
                    let data = (try? handle.readToEnd()) ?? Data()
                    continuation.resume(returning: data.count > Self.maxBytes
                        ? .failure(ReadError(description: "\(path): larger than \(Self.maxBytes >> 20) MiB"))
                        : .success([UInt8](data)))
                }.start()
            }
            return try result.get()
        case .url(let text):
            var request = HTTPClientRequest(url: text)
            request.headers.add(name: "Accept", value: "application/x-ndjson, application/json, text/plain")
            do {
                let response = try await HTTPClient.shared.execute(request, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000))
                let body = try await response.body.collect(upTo: Self.maxBytes)
                guard (200..<300).contains(Int(response.status.code)) else {
                    throw ReadError(description: "GET \(self) answered HTTP \(response.status.code)")
                }
                return Array(body.readableBytesView)
            } catch let error as ReadError {
                throw error
            } catch {
                throw ReadError(description: "GET \(self) failed: \(error)")
            }
        }
    }
}
