import AMQPClient
import Foundation
import WarehouseSyncCore

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The little of RabbitMQ's management HTTP API that AMQP cannot answer: bindings, and users
/// and permissions (`ManagementClient+Users.swift`).
public struct ManagementClient: Sendable {
    public struct Binding: Sendable, Decodable {
        public let source: String
        public let destination: String
        public let destinationType: String
        public let routingKey: String
        public let arguments: [String: ArgumentValue]

        enum CodingKeys: String, CodingKey {
            case source, destination, arguments
            case destinationType = "destination_type"
            case routingKey = "routing_key"
        }

        func matches(_ spec: BindingSpec) -> Bool {
            source == spec.source && destination == spec.destination
                && destinationType == spec.destinationType.rawValue && routingKey == spec.routingKey
                && arguments.mapValues(\.topologyValue) == spec.arguments.mapValues(Optional.some)
        }
    }

    /// A binding argument as the API returns it (we only declare strings, integers and booleans).
    public enum ArgumentValue: Sendable, Decodable {
        case string(String)
        case int(Int64)
        case bool(Bool)
        case other

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let b = try? container.decode(Bool.self) {
                self = .bool(b)
            } else if let i = try? container.decode(Int64.self) {
                self = .int(i)
            } else if let s = try? container.decode(String.self) {
                self = .string(s)
            } else {
                self = .other
            }
        }

        var topologyValue: TopologyValue? {
            switch self {
            case .string(let s): .string(s)
            case .int(let i): .int(i)
            case .bool(let b): .bool(b)
            case .other: nil
            }
        }
    }

    public let baseURL: URL
    let username: String
    let password: String

    public init(baseURL: URL, username: String, password: String) {
        self.baseURL = baseURL
        self.username = username
        self.password = password
    }

    public func bindings(vhost: String) async throws -> [Binding] {
        try JSONDecoder().decode([Binding].self, from: try await send("GET", "api/bindings/\(Self.segment(vhost))") ?? Data())
    }

    /// Sends a request to the API at `path` (relative, percent-encoded) with a JSON `body`.
    /// Returns the answer's body, or nil for `404` when `notFoundIsNil`; any other status
    /// outside 2xx throws, naming the URL and the status (never the credentials).
    @discardableResult
    func send(_ method: String, _ path: String, body: Data? = nil, notFoundIsNil: Bool = false) async throws -> Data? {
        guard let url = URL(string: path, relativeTo: baseURL.appendingPathComponent("/")) else {
            throw AMQPError(.invalidConfiguration, "invalid management URL \(baseURL)")
        }
        var request = URLRequest(url: url, timeoutInterval: 15)
        request.httpMethod = method
        request.setValue("Basic " + Data("\(username):\(password)".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response): (Data, URLResponse)
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw AMQPError(.connectionRefused, "cannot reach the management API at \(baseURL): \(error.localizedDescription)")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        if status == 404 && notFoundIsNil { return nil }
        guard (200..<300).contains(status) else {
            throw AMQPError(
                status == 401 || status == 403 ? .accessRefused : .protocolError,
                "management API \(method) \(url.absoluteString) answered HTTP \(status)")
        }
        return data
    }

    /// A vhost or user name as one path segment.
    static func segment(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name
    }
}
