import Foundation
import Logging
import PostgresNIO
import WarehouseSyncPostgres
import WarehouseSyncStore
import WarehouseSyncStoreConformance
import WarehouseSyncTesting

/// The PostgreSQL server of the test run: `WHSYNC_TEST_POSTGRES_URL`
/// (postgres://user:pass@127.0.0.1:PORT/db), which ./scripts/test starts. Without it every
/// test here fails: it never skips.
enum TestServer {
    struct Malformed: Error, CustomStringConvertible {
        var description: String { "WHSYNC_TEST_POSTGRES_URL is not postgres://user:pass@host:port/db" }
    }

    /// The server's configuration, for its own database (the one the URL names).
    static func configuration() throws -> PostgresStoreConfiguration {
        let text = try TestEnvironment.require(
            "WHSYNC_TEST_POSTGRES_URL",
            hint: "run ./scripts/test (it starts a throwaway PostgreSQL), or `scripts/postgres start DIR` "
                + "and export WHSYNC_TEST_POSTGRES_URL=$POSTGRES_URL from DIR/postgres.env")
        guard let url = URLComponents(string: text), ["postgres", "postgresql"].contains(url.scheme ?? ""),
              let host = url.host, let user = url.user?.removingPercentEncoding
        else { throw Malformed() }
        let database = String(url.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty else { throw Malformed() }
        var configuration = PostgresStoreConfiguration(
            host: host, port: url.port ?? 5432, username: user, password: url.password?.removingPercentEncoding,
            database: database, tls: .disable
        )
        configuration.maximumConnections = 4
        return configuration
    }

    static let logger: Logger = {
        var logger = Logger(label: "whsync.store.test")
        logger.logLevel = .warning
        return logger
    }()

    /// Runs `body` on a connection of its own to the URL's database.
    static func withMaintenanceConnection<T: Sendable>(
        _ body: @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let server = try configuration()
        var options = PostgresConnection.Configuration(
            host: server.host, port: server.port, username: server.username, password: server.password,
            database: server.database, tls: .disable
        )
        options.options.additionalStartupParameters = [("application_name", "whsync-test-maintenance")]
        let connection = try await PostgresConnection.connect(configuration: options, id: 0, logger: logger)
        do {
            let result = try await body(connection)
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// A new empty database; the configuration to reach it.
    static func freshDatabase() async throws -> PostgresStoreConfiguration {
        var configuration = try configuration()
        let name = "whsync_t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await withMaintenanceConnection { connection in
            _ = try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger).collect()
        }
        configuration.database = name
        return configuration
    }

    /// Drops a database made by ``freshDatabase()``, whoever is still connected.
    static func drop(_ configuration: PostgresStoreConfiguration) async {
        let name = configuration.database
        guard name.hasPrefix("whsync_t_") else { return }
        _ = try? await withMaintenanceConnection { connection in
            _ = try await connection.query(
                PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger
            ).collect()
        }
    }

    /// Terminates the store connections (`application_name` whsync) to `database`; returns how many.
    @discardableResult
    static func terminateStoreConnections(database: String) async throws -> Int {
        try await withMaintenanceConnection { connection in
            let rows = try await connection.query(
                """
                SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
                WHERE datname = \(database) AND application_name = 'whsync' AND pid <> pg_backend_pid()
                """,
                logger: logger
            ).collect()
            return rows.count
        }
    }
}

/// A fresh database per fixture; every ``open()`` opens a store on it.
struct PostgresStoreFixture: WorkerStoreFixture {
    let configuration: PostgresStoreConfiguration

    static func make() async throws -> PostgresStoreFixture {
        PostgresStoreFixture(configuration: try await TestServer.freshDatabase())
    }

    func open() async throws -> any WorkerStore {
        try await openPostgres()
    }

    func openPostgres() async throws -> PostgresWorkerStore {
        try await PostgresWorkerStore(configuration: configuration, logger: TestServer.logger)
    }

    func remove() async {
        await TestServer.drop(configuration)
    }
}
