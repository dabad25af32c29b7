import PostgresNIO

/// Where a ``PostgresWorkerStore`` connects and how it treats the connection. Its description
/// never shows the password.
public struct PostgresStoreConfiguration: Sendable, CustomStringConvertible {
    /// How the connection is encrypted.
    public enum TLSMode: Sendable, Hashable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it, without checking its certificate (libpq's
        /// `sslmode=prefer`); plain TCP otherwise.
        case prefer
        /// TLS required, the server's certificate and name verified against the system's trust
        /// roots (libpq's `sslmode=verify-full`).
        case verifyFull
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    /// Connections the store's pool may open. A worker's decisions are short transactions, so a
    /// few suffice; mind the server's `max_connections` across replicas.
    public var maximumConnections: Int = 8
    /// Time to open one TCP connection.
    public var connectTimeout: Duration = .seconds(10)
    /// How long an operation waits for a pooled connection (the pool keeps reconnecting
    /// meanwhile) before it fails as `unavailable`.
    public var leaseTimeout: Duration = .seconds(10)
    /// Attempts of one operation that fails on a lost connection (the first one included).
    public var attempts: Int = 4
    /// The first retry's delay; each next one doubles it, up to ``maximumRetryDelay``.
    public var retryDelay: Duration = .milliseconds(100)
    public var maximumRetryDelay: Duration = .seconds(2)
    /// How long opening the store keeps trying to reach the server (a server that is still
    /// starting, replicas that start together with it) before it fails as `unavailable`.
    public var openTimeout: Duration = .seconds(15)

    public init(host: String, port: Int = 5432, username: String, password: String?, database: String, tls: TLSMode = .prefer) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// `postgres://user@host:port/db`, never the password.
    public var description: String { "postgres://\(username)@\(host):\(port)/\(database)" }

    var clientConfiguration: PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: clientTLS
        )
        configuration.options.maximumConnections = max(1, maximumConnections)
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = connectTimeout
        configuration.options.additionalStartupParameters = Self.sessionParameters
        return configuration
    }

    /// Sent when a session starts: a name that shows in `pg_stat_activity`, and a bound on how
    /// long a stalled transaction may hold a key's row lock.
    static let sessionParameters = [
        ("application_name", "whsync"),
        ("idle_in_transaction_session_timeout", "60s"),
    ]

    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let connectionTLS: PostgresConnection.Configuration.TLS
        switch tls {
        case .disable: connectionTLS = .disable
        case .prefer: connectionTLS = .prefer(try NIOSSLContext(configuration: Self.unverifiedTLS))
        case .verifyFull: connectionTLS = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: connectionTLS
        )
        configuration.options.connectTimeout = TimeAmount.nanoseconds(
            connectTimeout.components.seconds * 1_000_000_000 + connectTimeout.components.attoseconds / 1_000_000_000
        )
        configuration.options.additionalStartupParameters = Self.sessionParameters
        return configuration
    }

    private var clientTLS: PostgresClient.Configuration.TLS {
        switch tls {
        case .disable: .disable
        case .prefer: .prefer(Self.unverifiedTLS)
        case .verifyFull: .require(.makeClientConfiguration())
        }
    }

    private static var unverifiedTLS: TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        return configuration
    }

    /// The delay before retry `retry` (1-based).
    func delay(beforeRetry retry: Int) -> Duration {
        var delay = retryDelay
        for _ in 1..<max(1, retry) {
            delay = delay * 2
            if delay >= maximumRetryDelay { return maximumRetryDelay }
        }
        return min(delay, maximumRetryDelay)
    }
}
