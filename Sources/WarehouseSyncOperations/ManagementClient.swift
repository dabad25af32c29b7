import AMQPClient
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import WarehouseSyncCore

/// Runs `body` with a ``ManagementClient`` for the API at `baseURL`, authenticating as
/// `username` (HTTP basic auth), and shuts the client's connection pool down when `body` returns
/// or throws. The only way to get a client: one left running would leak its connections.
public func withManagementClient<Result>(
    baseURL: URL, username: String, password: String,
    isolation: isolated (any Actor)? = #isolation,
    _ body: (ManagementClient) async throws -> Result
) async throws -> Result {
    let client = ManagementClient(baseURL: baseURL, username: username, password: password)
    let result: Result
    do {
        result = try await body(client)
    } catch {
        // The body's error is the one worth reporting; the pool is closed either way.
        try? await client.shutdown()
        throw error
    }
    try await client.shutdown()
    return result
}

/// The little of RabbitMQ's management HTTP API that AMQP cannot answer: bindings, and users
/// and permissions (`ManagementClient+Users.swift`). Over AsyncHTTPClient, like the ERP client;
/// get one with ``withManagementClient(baseURL:username:password:isolation:_:)``.
public final class ManagementClient: Sendable {
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

    /// The API's URL as given (a password in it is never sent nor shown: see ``displayURL``).
    public let baseURL: URL
    let username: String
    let password: String
    private let httpClient: HTTPClient

    /// Connect and read (idle) timeout, as the URLRequest `timeoutInterval` this client had.
    static let timeout = TimeAmount.seconds(15)
    /// The most of one answer read (the bindings of a large vhost fit many times over).
    static let maxBodyBytes = 64 << 20

    init(baseURL: URL, username: String, password: String) {
        self.baseURL = baseURL
        self.username = username
        self.password = password
        var configuration = HTTPClient.Configuration()
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: Self.timeout, read: Self.timeout)
        // A redirect must not carry the credentials elsewhere; a 3xx is reported as an error.
        configuration.redirectConfiguration = .disallow
        // A one-shot command: a refused connection fails at once, as it did on URLSession, instead
        // of being retried with backoff until the connect timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.tracing.tracer = nil
        httpClient = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Closes the connection pool; ``withManagementClient(baseURL:username:password:isolation:_:)`` calls it.
    func shutdown() async throws {
        try await httpClient.shutdown()
    }

    /// `baseURL` without a password, for messages.
    public var displayURL: String {
        Self.withoutPassword(baseURL)
    }

    /// `url` as text without its password, if it has one.
    public static func withoutPassword(_ url: URL) -> String {
        guard url.password != nil, var components = URLComponents(url: url, resolvingAgainstBaseURL: true) else {
            return url.absoluteString
        }
        components.password = nil
        return components.string ?? url.absoluteString
    }

    public func bindings(vhost: String) async throws -> [Binding] {
        try JSONDecoder().decode([Binding].self, from: try await send("GET", "api/bindings/\(Self.segment(vhost))") ?? Data())
    }

    /// Sends a request to the API at `path` (relative, percent-encoded) with a JSON `body`.
    /// Returns the answer's body, or nil for `404` when `notFoundIsNil`; any other status
    /// outside 2xx throws, naming the URL and the status (never the credentials).
    @discardableResult
    func send(_ method: String, _ path: String, body: Data? = nil, notFoundIsNil: Bool = false) async throws -> Data? {
        guard let url = URL(string: path, relativeTo: baseURL.appendingPathComponent("/")),
            var components = URLComponents(url: url, resolvingAgainstBaseURL: true)
        else {
            throw AMQPError(.invalidConfiguration, "invalid management URL \(displayURL)")
        }
        // The credentials go in the Authorization header only, never in the URL.
        components.user = nil
        components.password = nil
        let target = components.string ?? url.absoluteString
        var request = HTTPClientRequest(url: target)
        request.method = HTTPMethod(rawValue: method)
        request.headers.add(name: "Authorization", value: "Basic " + Data("\(username):\(password)".utf8).base64EncodedString())
        if let body {
            request.body = .bytes(ByteBuffer(bytes: body))
            request.headers.add(name: "Content-Type", value: "application/json")
        }
        let status: Int
        let data: Data
        do {
            // Connect and read timeouts bound the exchange (the configuration's); no overall deadline.
            let response = try await httpClient.execute(request, deadline: .distantFuture)
            status = Int(response.status.code)
            data = Data(try await response.body.collect(upTo: Self.maxBodyBytes).readableBytesView)
        } catch {
            throw AMQPError(.connectionRefused, "cannot reach the management API at \(displayURL): \(Self.describe(error))")
        }
        if status == 404 && notFoundIsNil { return nil }
        guard (200..<300).contains(status) else {
            throw AMQPError(
                status == 401 || status == 403 ? .accessRefused : .protocolError,
                "management API \(method) \(target) answered HTTP \(status)")
        }
        return data
    }

    /// An AsyncHTTPClient or NIO error in one line (`localizedDescription` says nothing of them).
    static func describe(_ error: any Error) -> String {
        "\(error)"
    }

    /// A vhost or user name as one path segment.
    static func segment(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name
    }
}
