import Foundation

/// Where and how to connect. Built from an `amqp://` or `amqps://` URL in the form of
/// RabbitMQ's URI spec, including its query parameters (`heartbeat`, `connection_timeout`,
/// `channel_max`, `frame_max`, `cacertfile`, `certfile`, `keyfile`, `verify`).
public struct AMQPConfiguration: Sendable, Equatable {
    public struct TLS: Sendable, Equatable {
        /// PEM file with the CA(s) that must have signed the broker's certificate.
        /// Without it the system's trust store is used.
        public var caFile: String?
        public var certificateFile: String?
        public var keyFile: String?
        /// Verify the broker's certificate chain and that it names the host. On by default;
        /// `verify=verify_none` turns it off (for a lab, never production).
        public var verifyPeer: Bool = true

        public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, verifyPeer: Bool = true) {
            self.caFile = caFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.verifyPeer = verifyPeer
        }
    }

    /// One node of a cluster: where to open the TCP connection.
    public struct Node: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// The first node tried.
    public var host: String
    public var port: Int
    /// More nodes of the same cluster (`amqp://user:pass@host1:port1,host2:port2/vhost`, DESIGN
    /// §9): when the node in use fails, the connection moves to the next, in order, for consuming
    /// and publishing alike.
    public var otherNodes: [Node] = []
    public var virtualHost: String
    public var username: String
    public var password: String
    public var tls: TLS?
    /// Requested heartbeat interval in seconds (0 disables; the broker may lower it).
    public var heartbeatSeconds: Int
    public var connectionTimeout: Duration
    public var channelMax: Int
    public var frameMax: Int
    /// Shown in the broker's management UI, so an operator can tell connections apart.
    public var connectionName: String?

    public init(
        host: String = "127.0.0.1",
        port: Int? = nil,
        virtualHost: String = "/",
        username: String = "guest",
        password: String = "guest",
        tls: TLS? = nil,
        heartbeatSeconds: Int = 30,
        connectionTimeout: Duration = .seconds(10),
        channelMax: Int = 0,
        frameMax: Int = 131_072,
        connectionName: String? = nil
    ) {
        self.host = host
        self.port = port ?? (tls == nil ? 5672 : 5671)
        self.virtualHost = virtualHost
        self.username = username
        self.password = password
        self.tls = tls
        self.heartbeatSeconds = heartbeatSeconds
        self.connectionTimeout = connectionTimeout
        self.channelMax = channelMax
        self.frameMax = frameMax
        self.connectionName = connectionName
    }

    /// Every node, the first one first.
    public var nodes: [Node] { [Node(host: host, port: port)] + otherNodes }

    /// Parses an AMQP URL. Errors name the part that is wrong and never echo the password.
    /// Several nodes of a cluster are listed comma-separated where the host goes:
    /// `amqp://user:pass@rabbit-1:5672,rabbit-2:5672,rabbit-3/vhost` (a node without a port
    /// takes the scheme's default).
    public init(url: String, connectionName: String? = nil) throws(AMQPError) {
        func invalid(_ why: String) -> AMQPError {
            AMQPError(.invalidConfiguration, "invalid AMQP URL \(Self.redact(url)): \(why)")
        }
        let (url, moreNodes) = try Self.splitNodes(url, invalid: invalid)
        guard let components = URLComponents(string: url) else {
            throw invalid("not a URL")
        }
        let scheme = components.scheme?.lowercased()
        guard scheme == "amqp" || scheme == "amqps" else {
            throw invalid("the scheme must be amqp:// or amqps://")
        }
        let secure = scheme == "amqps"
        guard let host = components.host, !host.isEmpty else {
            throw invalid("no host")
        }
        if let port = components.port, !(1...65535).contains(port) {
            throw invalid("port \(port) is out of range")
        }
        // The vhost is the single path segment, percent-decoded ("%2F" is "/"); none means "/".
        var path = components.percentEncodedPath
        if path.hasPrefix("/") { path.removeFirst() }
        if path.contains("/") {
            throw invalid("the path must be one segment, the virtual host (write '/' as %2F)")
        }
        guard let vhost = path.removingPercentEncoding else {
            throw invalid("the virtual host is not valid percent-encoding")
        }

        var tls: TLS? = secure ? TLS() : nil
        var heartbeat = 30
        var timeout = Duration.seconds(10)
        var channelMax = 0
        var frameMax = 131_072
        var name = connectionName
        func integer(_ item: URLQueryItem, in range: ClosedRange<Int>) throws(AMQPError) -> Int {
            guard let text = item.value, let value = Int(text), range.contains(value) else {
                throw invalid("\(item.name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }
        func tlsOnly(_ item: URLQueryItem) throws(AMQPError) -> String {
            guard secure else { throw invalid("\(item.name) applies to amqps:// URLs only") }
            guard let value = item.value, !value.isEmpty else { throw invalid("\(item.name) is empty") }
            return value
        }
        for item in components.queryItems ?? [] {
            switch item.name {
            case "heartbeat": heartbeat = try integer(item, in: 0...3600)
            case "connection_timeout": timeout = .milliseconds(try integer(item, in: 1...600_000))
            case "channel_max": channelMax = try integer(item, in: 0...65535)
            case "frame_max": frameMax = try integer(item, in: 4096...1_048_576)
            case "connection_name": name = item.value
            case "cacertfile":
                let path = try tlsOnly(item)  // evaluated first: `tls?.x = ...` skips it for amqp://
                tls?.caFile = path
            case "certfile":
                let path = try tlsOnly(item)  // evaluated first: `tls?.x = ...` skips it for amqp://
                tls?.certificateFile = path
            case "keyfile":
                let path = try tlsOnly(item)  // evaluated first: `tls?.x = ...` skips it for amqp://
                tls?.keyFile = path
            case "verify":
                let value = try tlsOnly(item)
                switch value {
                case "verify_peer": tls?.verifyPeer = true
                case "verify_none": tls?.verifyPeer = false
                default: throw invalid("verify must be verify_peer or verify_none, not '\(value)'")
                }
            case "server_name_indication", "auth_mechanism":
                // Accepted for compatibility with other clients' URLs: SNI is always the host and
                // PLAIN is the only mechanism librabbitmq offers here.
                continue
            default:
                throw invalid("unknown parameter '\(item.name)'")
            }
        }
        if let tls, (tls.certificateFile == nil) != (tls.keyFile == nil) {
            throw invalid("certfile and keyfile must be given together")
        }

        self.init(
            host: host,
            port: components.port,
            virtualHost: vhost.isEmpty ? "/" : vhost,
            username: components.user?.removingPercentEncoding ?? "guest",
            password: components.password?.removingPercentEncoding ?? "guest",
            tls: tls,
            heartbeatSeconds: heartbeat,
            connectionTimeout: timeout,
            channelMax: channelMax,
            frameMax: frameMax,
            connectionName: name
        )
        otherNodes = try moreNodes.map { (text: Substring) throws(AMQPError) -> Node in
            guard let node = URLComponents(string: "\(secure ? "amqps" : "amqp")://\(text)"), let host = node.host, !host.isEmpty,
                node.path.isEmpty, node.user == nil
            else { throw invalid("'\(text)' is not a host or host:port") }
            if let port = node.port, !(1...65535).contains(port) { throw invalid("port \(port) is out of range") }
            return Node(host: host, port: node.port ?? (secure ? 5671 : 5672))
        }
    }

    /// The URL with only its first node, and the other nodes' `host[:port]` texts.
    private static func splitNodes(
        _ url: String, invalid: (String) -> AMQPError
    ) throws(AMQPError) -> (url: String, others: [Substring]) {
        guard let schemeEnd = url.range(of: "://") else { return (url, []) }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        // The user info may hold a comma in its percent-encoded password only, never a raw one
        // after the last '@'.
        let hostsStart = authority.lastIndex(of: "@").map { authority.index(after: $0) } ?? authority.startIndex
        let hosts = authority[hostsStart...].split(separator: ",", omittingEmptySubsequences: false)
        guard hosts.count > 1 else { return (url, []) }
        guard !hosts.contains(where: \.isEmpty) else { throw invalid("an empty node in the host list") }
        return (String(url[..<hostsStart]) + hosts[0] + url[authorityEnd...], Array(hosts.dropFirst()))
    }

    /// `amqp://user@host:port[,host:port…]/vhost` for logs and errors: no password.
    public var redactedURL: String {
        let vhost = virtualHost == "/" ? "%2F" : (virtualHost.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? virtualHost)
        return "\(tls == nil ? "amqp" : "amqps")://\(username)@\(nodes.map(\.description).joined(separator: ","))/\(vhost)"
    }

    public var endpoint: String { "\(host):\(port)" }

    static func redact(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "(unparseable URL)" }
        if components.password != nil { components.password = "***" }
        return components.string ?? "(unparseable URL)"
    }
}
