import Foundation
import PostgresNIO
import Testing
import WarehouseSyncCore
import WarehouseSyncPostgres
import WarehouseSyncStore
import WarehouseSyncStoreConformance
import WarehouseSyncTesting

/// The test server's TLS material (./scripts/test starts it with `scripts/postgres --tls`).
/// Without it every test here fails: it never skips.
private enum TestTLS {
    static func env(_ name: String) throws -> String {
        try TestEnvironment.require(
            name,
            hint: "run ./scripts/test (it starts a throwaway PostgreSQL with TLS), or "
                + "`scripts/postgres start DIR --tls` and export it from DIR/postgres.env (POSTGRES_TLS_*)")
    }

    /// The CA that signed the server's certificate (for localhost and 127.0.0.1).
    static func ca() throws -> String { try env("WHSYNC_TEST_POSTGRES_TLS_CA") }
    /// A CA that signed nothing the server uses.
    static func rogueCA() throws -> String { try env("WHSYNC_TEST_POSTGRES_TLS_DIR") + "/rogue-ca.pem" }
    /// An address of the server that its certificate does not name.
    static func unnamedHost() throws -> String { try env("WHSYNC_TEST_POSTGRES_UNNAMED_HOST") }
}

/// Runs `body` with the configuration of a fresh database, changed by `change`; drops the database.
private func withDatabase(
    _ change: (inout PostgresStoreConfiguration) throws -> Void,
    _ body: (PostgresStoreConfiguration) async throws -> Void
) async throws {
    var configuration = try await TestServer.freshDatabase()
    let fresh = configuration
    do {
        try change(&configuration)
        try await body(configuration)
    } catch {
        await TestServer.drop(fresh)
        throw error
    }
    await TestServer.drop(fresh)
}

/// Opens a store, commits one decision and reads it back; returns whether the store's connections
/// to the database use TLS (`pg_stat_ssl`, asked over a connection of the test's own).
private func openCommitAndSnapshot(_ configuration: PostgresStoreConfiguration) async throws -> Bool {
    let store = try await PostgresWorkerStore(configuration: configuration, logger: TestServer.logger)
    do {
        let conflicts = await WorkerStoreConformance.incrementUntilCommitted(store, key: "WH1/TLS", eventId: "tls-1")
        #expect(conflicts == 0)
        let snapshot = try await store.snapshot(stream: .inventory, key: "WH1/TLS", eventId: "tls-1")
        #expect(snapshot.state == KeyState(nextExpected: 1))
        #expect(snapshot.version == 1)
        let database = configuration.database
        let sessions = try await TestServer.withMaintenanceConnection { connection in
            try await connection.query(
                """
                SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                WHERE a.datname = \(database) AND a.application_name = 'whsync'
                """,
                logger: TestServer.logger
            ).collect().map { try $0.decode(Bool.self) }
        }
        await store.close()
        #expect(!sessions.isEmpty, "the store keeps a connection open after an operation")
        return !sessions.isEmpty && sessions.allSatisfy { $0 }
    } catch {
        await store.close()
        throw error
    }
}

/// Opening fails; returns the error and how long it took.
private func openFailure(_ configuration: PostgresStoreConfiguration) async throws -> (StoreError, Duration) {
    let start = ContinuousClock.now
    do {
        let store = try await PostgresWorkerStore(configuration: configuration, logger: TestServer.logger)
        await store.close()
    } catch {
        return (error, ContinuousClock.now - start)
    }
    throw StoreError(code: .unavailable, message: "the store opened with \(configuration)")
}

@Suite("PostgreSQL TLS (sslmode, sslrootcert)", .serialized, .timeLimit(.minutes(2)))
struct PostgresTLSTests {
    struct Mode: Sendable, CustomTestStringConvertible {
        let tls: PostgresStoreConfiguration.TLSMode
        let withCA: Bool
        let host: String?
        let encrypted: Bool
        var testDescription: String {
            "sslmode=\(tls.sslmode)\(withCA ? " with the CA" : "") on \(host ?? "the URL's host") → \(encrypted ? "TLS" : "plain")"
        }
    }

    @Test("each mode connects as it should and the store works", arguments: [
        Mode(tls: .disable, withCA: false, host: nil, encrypted: false),
        Mode(tls: .prefer, withCA: false, host: nil, encrypted: true),
        Mode(tls: .require, withCA: false, host: nil, encrypted: true),
        Mode(tls: .require, withCA: true, host: nil, encrypted: true),
        Mode(tls: .verifyCA, withCA: true, host: nil, encrypted: true),
        Mode(tls: .verifyFull, withCA: true, host: nil, encrypted: true),
        Mode(tls: .verifyFull, withCA: true, host: "localhost", encrypted: true),
    ])
    func modeConnects(_ mode: Mode) async throws {
        let ca = try TestTLS.ca()
        try await withDatabase({ configuration in
            configuration.tls = mode.tls
            configuration.caFile = mode.withCA ? ca : nil
            if let host = mode.host { configuration.host = host }
        }) { configuration in
            let encrypted = try await openCommitAndSnapshot(configuration)
            #expect(encrypted == mode.encrypted)
        }
    }

    @Test("verify-full with a CA that did not sign the server's certificate fails at once, saying so")
    func verifyFullWithAnotherCAFails() async throws {
        let rogue = try TestTLS.rogueCA()
        try await withDatabase({ configuration in
            configuration.tls = .verifyFull
            configuration.caFile = rogue
        }) { configuration in
            let (error, elapsed) = try await openFailure(configuration)
            #expect(error.code == .unavailable)
            #expect(error.message.contains("certificate does not verify against the trusted CAs"), "\(error.message)")
            #expect(error.message.contains("sslrootcert=\(rogue)"), "\(error.message)")
            #expect(elapsed < .seconds(5), "not retried for openTimeout")
        }
    }

    @Test("verify-full against an address the certificate does not name fails; verify-ca passes")
    func hostNameIsCheckedByVerifyFullOnly() async throws {
        let ca = try TestTLS.ca()
        let unnamed = try TestTLS.unnamedHost()
        try await withDatabase({ configuration in
            configuration.tls = .verifyFull
            configuration.caFile = ca
            configuration.host = unnamed
        }) { configuration in
            let (error, elapsed) = try await openFailure(configuration)
            #expect(error.message.contains("does not name the host connected to"), "\(error.message)")
            #expect(elapsed < .seconds(5), "not retried for openTimeout")
            var verifyCA = configuration
            verifyCA.tls = .verifyCA
            let encrypted = try await openCommitAndSnapshot(verifyCA)
            #expect(encrypted)
        }
    }

    @Test("verify-full with the system's trust roots refuses the test CA's certificate")
    func systemTrustRootsDoNotTrustTheTestCA() async throws {
        try await withDatabase({ configuration in
            configuration.tls = .verifyFull
            configuration.host = "localhost"
        }) { configuration in
            let (error, _) = try await openFailure(configuration)
            #expect(error.message.contains("certificate does not verify against the trusted CAs"), "\(error.message)")
        }
    }

    @Test("a CA file that is missing, empty or not PEM fails opening, naming the file", arguments: [
        ("missing", nil, "does not exist"),
        ("empty", "", "holds no PEM certificate"),
        ("garbage", "not a certificate\n", "holds no PEM certificate"),
    ] as [(String, String?, String)])
    func unusableCAFile(_ name: String, _ contents: String?, _ problem: String) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("whsync-ca-\(UUID().uuidString)-\(name).pem").path
        if let contents { try contents.write(toFile: path, atomically: true, encoding: .utf8) }
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await withDatabase({ configuration in
            configuration.tls = .verifyFull
            configuration.caFile = path
        }) { configuration in
            let (error, elapsed) = try await openFailure(configuration)
            #expect(error.message.contains("the CA file \(path) (sslrootcert)"), "\(error.message)")
            #expect(error.message.contains(problem), "\(error.message)")
            #expect(elapsed < .seconds(5), "not retried for openTimeout")
        }
    }

    @Test("the TLS configuration follows the mode")
    func tlsConfigurationFollowsTheMode() throws {
        let ca = try TestTLS.ca()
        func verification(_ tls: PostgresStoreConfiguration.TLSMode, _ caFile: String?) throws -> CertificateVerification? {
            let configuration = PostgresStoreConfiguration(
                host: "db", username: "u", password: "p", database: "d", tls: tls, caFile: caFile)
            let built = try configuration.tlsConfiguration()
            #expect(built?.certificateVerification == configuration.certificateVerification)
            if let caFile, let built, built.certificateVerification != .none {
                #expect(built.trustRoots == .certificates(try NIOSSLCertificate.fromPEMFile(caFile)))
            } else if let built {
                #expect(built.trustRoots == .default)
            }
            return built?.certificateVerification
        }
        #expect(try verification(.disable, nil) == nil)
        #expect(try verification(.prefer, nil) == CertificateVerification.none)
        #expect(try verification(.require, nil) == CertificateVerification.none)
        #expect(try verification(.require, ca) == .noHostnameVerification)
        #expect(try verification(.verifyCA, ca) == .noHostnameVerification)
        #expect(try verification(.verifyCA, nil) == .noHostnameVerification)
        #expect(try verification(.verifyFull, ca) == .fullVerification)
        #expect(try verification(.verifyFull, nil) == .fullVerification)
    }
}
