import Foundation
import Logging
import ServiceLifecycle
import WarehouseSyncCore
import WarehouseSyncOps
import WarehouseSyncPostgres
import WarehouseSyncSettings
import WarehouseSyncSQLiteStore
import WarehouseSyncStore
import WarehouseSyncWorker

/// Where a worker keeps its state: `STORE_URL`.
public enum StoreLocation: Sendable, Equatable, CustomStringConvertible {
    /// `sqlite:/abs/path.db`: the absolute path of the database file.
    case sqlite(path: String)
    /// `postgres://user:pass@host:port/db[?sslmode=…&sslrootcert=…]`: a PostgreSQL database
    /// (`PostgresWorkerStore`).
    case postgres(PostgresLocation)

    /// The form accepted, for error messages.
    public static let acceptedForm = "sqlite:/abs/path.db or postgres://user:pass@host:port/db"

    /// The SQLite file of a `sqlite:` store. Throws for a PostgreSQL store, which has none.
    public func sqlitePath() throws(ConfigurationError) -> String {
        switch self {
        case .sqlite(let path):
            return path
        case .postgres(let location):
            throw ConfigurationError(
                setting: WorkerConfiguration.Key.storeURL.rawValue,
                message: "'\(location)' is a PostgreSQL store, not a SQLite file")
        }
    }

    /// Parses `STORE_URL`. Errors never echo a password.
    public init(url text: String) throws(ConfigurationError) {
        func fail(_ message: String) -> ConfigurationError {
            ConfigurationError(setting: WorkerConfiguration.Key.storeURL.rawValue, message: message)
        }
        let shown = Self.redact(text)
        if text.lowercased().hasPrefix("sqlite:") {
            let path = String(text.dropFirst("sqlite:".count))
            guard !path.isEmpty else { throw fail("'\(shown)' has no path (expected sqlite:/abs/path.db)") }
            guard path.hasPrefix("/") else {
                throw fail("'\(shown)' has a relative path; the path must be absolute (sqlite:/abs/path.db)")
            }
            guard !path.hasSuffix("/") else { throw fail("'\(shown)' names a directory, not a database file (sqlite:/abs/path.db)") }
            self = .sqlite(path: path)
            return
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              scheme == "postgres" || scheme == "postgresql"
        else {
            throw fail("'\(shown)' is not \(Self.acceptedForm)")
        }
        guard let host = components.host, !host.isEmpty else { throw fail("'\(shown)' has no host (\(Self.acceptedForm))") }
        if let port = components.port, !(1...65535).contains(port) {
            throw fail("'\(shown)' has port \(port), not 1-65535")
        }
        var path = components.path
        if path.hasPrefix("/") { path.removeFirst() }
        guard !path.isEmpty, !path.contains("/") else {
            throw fail("'\(shown)' must name one database after the host (\(Self.acceptedForm))")
        }
        guard let user = components.user?.removingPercentEncoding, !user.isEmpty else {
            throw fail("'\(shown)' has no user (\(Self.acceptedForm))")
        }
        let (tls, caFile) = try Self.tlsParameters(components.queryItems ?? [], shown: shown, fail: fail)
        self = .postgres(PostgresLocation(
            host: host, port: components.port ?? 5432, user: user,
            password: components.password?.removingPercentEncoding, database: path, tls: tls, caFile: caFile))
    }

    private static let tlsParameterNames: Set = ["sslmode", "sslrootcert"]

    /// `text` as errors show it: `redactURL`, and the value of any query parameter but `sslmode`
    /// and `sslrootcert` (libpq's `password=` would be one) replaced by `***`.
    private static func redact(_ text: String) -> String {
        guard var components = URLComponents(string: text), let items = components.queryItems,
              items.contains(where: { !tlsParameterNames.contains($0.name) && $0.value != nil })
        else { return redactURL(text) }
        components.queryItems = items.map { tlsParameterNames.contains($0.name) || $0.value == nil ? $0 : URLQueryItem(name: $0.name, value: "***") }
        return components.string.map(redactURL) ?? "(unparseable URL)"
    }

    /// `sslmode` and `sslrootcert`, with libpq's meanings; anything else is an error, so that a
    /// typo never quietly leaves the connection less protected than meant.
    private static func tlsParameters(
        _ items: [URLQueryItem], shown: String, fail: (String) -> ConfigurationError
    ) throws(ConfigurationError) -> (PostgresStoreConfiguration.TLSMode, String?) {
        typealias TLSMode = PostgresStoreConfiguration.TLSMode
        let modes = TLSMode.allCases.map(\.sslmode)
        var values: [String: String] = [:]
        for item in items {
            guard tlsParameterNames.contains(item.name) else {
                throw fail("'\(shown)' has the unknown parameter '\(item.name)' (accepted: sslmode, sslrootcert)")
            }
            guard values[item.name] == nil else { throw fail("'\(shown)' has the parameter '\(item.name)' twice") }
            values[item.name] = item.value ?? ""
        }
        var mode: TLSMode?
        if let text = values["sslmode"] {
            guard let parsed = TLSMode(rawValue: text) else {
                throw fail("'\(shown)' has sslmode '\(text)', not one of \(modes.joined(separator: ", "))")
            }
            mode = parsed
        }
        guard let root = values["sslrootcert"] else { return (mode ?? .prefer, nil) }
        if root == "system" {
            // libpq 16: the system's trust roots, which only make sense with the host name checked.
            guard mode == nil || mode == .verifyFull else {
                throw fail("'\(shown)' has sslrootcert=system, which needs sslmode=verify-full (or no sslmode)")
            }
            return (.verifyFull, nil)
        }
        guard root.hasPrefix("/") else {
            throw fail("'\(shown)' has sslrootcert '\(root)', not an absolute path to a PEM file of CA certificates")
        }
        guard let mode, ![.disable, .prefer].contains(mode) else {
            throw fail("'\(shown)' has sslrootcert but \(mode.map { "sslmode=\($0.sslmode)" } ?? "no sslmode"): "
                + "set sslmode=verify-full (or verify-ca, require) for the server's certificate to be checked")
        }
        return (mode, root)
    }

    /// `sqlite:/path` or `postgres://user@host:port/db`: never the password.
    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .postgres(let location): location.description
        }
    }
}

/// A PostgreSQL store's address. Its description never shows the password.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    /// `sslmode`: `prefer` when the URL does not say, as libpq.
    public var tls: PostgresStoreConfiguration.TLSMode
    /// `sslrootcert`: the CA certificates that verify the server; nil: the system's trust roots.
    public var caFile: String?

    public init(
        host: String, port: Int = 5432, user: String, password: String?, database: String,
        tls: PostgresStoreConfiguration.TLSMode = .prefer, caFile: String? = nil
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
        self.caFile = caFile
    }

    public var description: String {
        "postgres://\(user)@\(host):\(port)/\(database)" + PostgresStoreConfiguration.query(tls: tls, caFile: caFile)
    }
    public var debugDescription: String { description }
}

/// `text` with any URL password replaced by `***`; unparseable text is returned only when it
/// cannot hold credentials (no `@`).
func redactURL(_ text: String) -> String {
    if let components = URLComponents(string: text) {
        guard components.password != nil else { return text }
        var redacted = components
        redacted.password = "***"
        return redacted.string ?? "(unparseable URL)"
    }
    return text.contains("@") ? "(unparseable URL)" : text
}

extension StoreLocation {
    /// Opens the store (creating and migrating it when needed): what every executable that reads
    /// `STORE_URL` calls. Errors are one line naming `STORE_URL`.
    /// For a short-lived command: the store runs what it needs itself; call `close()` at the end.
    public func open(logger: Logger) async throws -> any WorkerStore {
        try await open(logger: logger, lifetime: .ownTask)
    }

    /// For a long-running process: the store, and the service that keeps it (a PostgreSQL
    /// store's connection pool runs in it) and closes it at its graceful shutdown. Put the
    /// service in the process's `ServiceGroup` before every service that uses the store.
    /// Before the group runs, `close()` on the store releases it.
    func openForService(logger: Logger) async throws -> (store: any WorkerStore, service: any Service) {
        let store = try await open(logger: logger, lifetime: .runByCaller)
        if let postgres = store as? PostgresWorkerStore {
            return (store, PostgresClientService(store: postgres))
        }
        return (store, ClosingService("store(\(self))") { await store.close() })
    }

    private func open(logger: Logger, lifetime: PostgresWorkerStore.ClientLifetime) async throws -> any WorkerStore {
        switch self {
        case .sqlite(let path):
            do {
                return try await SQLiteWorkerStore(path: path, logger: logger)
            } catch {
                throw ConfigurationError(
                    setting: WorkerConfiguration.Key.storeURL.rawValue, message: "cannot open the SQLite store \(path): \(error)")
            }
        case .postgres(let location):
            do {
                return try await PostgresWorkerStore(configuration: location.storeConfiguration, logger: logger, clientLifetime: lifetime)
            } catch {
                throw ConfigurationError(
                    setting: WorkerConfiguration.Key.storeURL.rawValue,
                    message: "cannot open the PostgreSQL store \(location): \(error)")
            }
        }
    }
}

extension PostgresLocation {
    /// How `PostgresWorkerStore` connects: TLS as `sslmode` and `sslrootcert` say.
    public var storeConfiguration: PostgresStoreConfiguration {
        PostgresStoreConfiguration(
            host: host, port: port, username: user, password: password, database: database, tls: tls, caFile: caFile)
    }
}
