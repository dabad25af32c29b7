import Foundation
import PostgresNIO
import WarehouseSyncStore

/// Where a ``PostgresWorkerStore`` connects and how it treats the connection. Its description
/// never shows the password.
public struct PostgresStoreConfiguration: Sendable, CustomStringConvertible {
    /// How the connection is encrypted: libpq's `sslmode`, less `allow`.
    public enum TLSMode: String, Sendable, Hashable, CaseIterable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it, without checking its certificate; plain TCP otherwise.
        case prefer
        /// TLS required, the server's certificate not checked (unless ``caFile`` is set: then its
        /// chain is verified, as libpq does when a root certificate file is given).
        case require
        /// TLS required, the server's certificate chain verified against ``caFile`` (the system's
        /// trust roots without it); its names are not checked.
        case verifyCA = "verify-ca"
        /// As ``verifyCA``, and the certificate must name the host connected to.
        case verifyFull = "verify-full"

        /// libpq's spelling (`sslmode=...`).
        public var sslmode: String { rawValue }
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    /// A PEM file of the CA certificates that verify the server's certificate (libpq's
    /// `sslrootcert`), for ``TLSMode/require``, ``TLSMode/verifyCA`` and ``TLSMode/verifyFull``;
    /// `nil`: the system's trust roots. Read when a connection is configured; a file that is
    /// missing, unreadable or holds no certificate fails opening the store, naming the file.
    public var caFile: String?

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

    public init(
        host: String, port: Int = 5432, username: String, password: String?, database: String, tls: TLSMode = .prefer,
        caFile: String? = nil
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.caFile = caFile
    }

    /// `postgres://user@host:port/db`, with `?sslmode=…&sslrootcert=…` when they are not the
    /// defaults; never the password.
    public var description: String {
        "postgres://\(username)@\(host):\(port)/\(database)" + Self.query(tls: tls, caFile: caFile)
    }

    /// `?sslmode=MODE[&sslrootcert=FILE]`, or nothing for `prefer` without a CA file.
    public static func query(tls: TLSMode, caFile: String?) -> String {
        var parameters: [String] = []
        if tls != .prefer || caFile != nil { parameters.append("sslmode=\(tls.sslmode)") }
        if let caFile { parameters.append("sslrootcert=\(caFile)") }
        return parameters.isEmpty ? "" : "?" + parameters.joined(separator: "&")
    }

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

    /// Sent when a session starts: a name that shows in `pg_stat_activity`, a bound on how long a
    /// stalled transaction may hold a key's row lock, and a plan made for each execution of a
    /// prepared round statement (``RoundStatement``): the generic plans PostgreSQL would cache
    /// after five runs were made on the tables as a fresh store has them (empty: sequential
    /// scans) and doubled the server's CPU per event as they grew (bench/README, "Prepared round
    /// statements"); parsing once is what the prepared statements save.
    static let sessionParameters = [
        ("application_name", "whsync"),
        ("idle_in_transaction_session_timeout", "60s"),
        ("plan_cache_mode", "force_custom_plan"),
    ]

    /// Throws a ``StoreError`` (never retried) when the CA file cannot be used.
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let connectionTLS: PostgresConnection.Configuration.TLS
        do {
            switch (tls, try tlsConfiguration()) {
            case (_, nil): connectionTLS = .disable
            case (.prefer, let configuration?): connectionTLS = .prefer(try NIOSSLContext(configuration: configuration))
            case (_, let configuration?): connectionTLS = .require(try NIOSSLContext(configuration: configuration))
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(code: .unavailable, message: "\(self): cannot set up TLS: \(error)")
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

    /// The pool's TLS. The store opened (and so read the CA file) before it makes its pool; a CA
    /// file that became unusable since then fails each connection, never weakens it.
    private var clientTLS: PostgresClient.Configuration.TLS {
        let configuration: TLSConfiguration?
        do {
            configuration = try tlsConfiguration()
        } catch {
            configuration = tlsConfiguration { .file($0) }
        }
        switch (tls, configuration) {
        case (_, nil): return .disable
        case (.prefer, let configuration?): return .prefer(configuration)
        case (_, let configuration?): return .require(configuration)
        }
    }

    /// How the server's certificate is checked; nil: no TLS.
    public var certificateVerification: CertificateVerification? {
        switch tls {
        case .disable: nil
        case .prefer: CertificateVerification.none
        case .require: caFile == nil ? CertificateVerification.none : .noHostnameVerification
        case .verifyCA: .noHostnameVerification
        case .verifyFull: .fullVerification
        }
    }

    /// The client's TLS configuration for ``tls`` (nil: plain TCP), its trust roots read from
    /// ``caFile`` now (the system's without it). Throws a ``StoreError`` naming the file when it
    /// cannot be used.
    public func tlsConfiguration() throws(StoreError) -> TLSConfiguration? {
        try tlsConfiguration { path throws(StoreError) in .certificates(try Self.certificates(path)) }
    }

    private func tlsConfiguration<E: Error>(
        trustRoots: (String) throws(E) -> NIOSSLTrustRoots
    ) throws(E) -> TLSConfiguration? {
        guard let verification = certificateVerification else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = verification
        if verification != .none, let caFile { configuration.trustRoots = try trustRoots(caFile) }
        return configuration
    }

    /// The certificates of the PEM file `path`.
    static func certificates(_ path: String) throws(StoreError) -> [NIOSSLCertificate] {
        func fail(_ problem: String) -> StoreError {
            StoreError(code: .unavailable, message: "the CA file \(path) (sslrootcert) \(problem)")
        }
        guard FileManager.default.fileExists(atPath: path) else { throw fail("does not exist") }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot be read") }
        guard let certificates = try? NIOSSLCertificate.fromPEMBytes(Array(data)), !certificates.isEmpty else {
            throw fail("holds no PEM certificate")
        }
        return certificates
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

extension PostgresStoreConfiguration {
    /// What went wrong when `error` is a TLS set-up that failed: the server refused TLS, or its
    /// certificate was not accepted. Retrying does not help; the message says which check failed.
    static func tlsFailure(_ error: PSQLError) -> String? {
        if error.code == .sslUnsupported {
            return "the server does not offer TLS (sslmode=require, verify-ca and verify-full need it)"
        }
        guard error.code == .connectionError || error.code == .failedToAddSSLHandler, let underlying = error.underlying else {
            return nil
        }
        if let extra = underlying as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return "TLS: the server's certificate does not name the host connected to (sslmode=verify-full checks "
                + "the name, verify-ca does not): \(extra)"
        }
        guard let ssl = underlying as? NIOSSLError, case .handshakeFailed(let reason) = ssl else { return nil }
        if "\(reason)".contains("CERTIFICATE_VERIFY_FAILED") {
            return "TLS: the server's certificate does not verify against the trusted CAs (sslrootcert, or the "
                + "system's trust roots without it): not signed by one of them, or expired"
        }
        return "TLS handshake failed: \(reason)"
    }
}
