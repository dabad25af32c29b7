import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncProcessKit
import WarehouseSyncStore
import WarehouseSyncStoreConformance

/// `STORE_URL` with `sslmode` and `sslrootcert`, opened as every executable opens it, against the
/// test PostgreSQL server (./scripts/test starts it with TLS).
@Suite struct PostgresTLSIntegrationTests {
    @Test func verifyFullWithTheServersCAOpensTheStoreAndCommits() async throws {
        let ca = try TestBroker.env("WHSYNC_TEST_POSTGRES_TLS_CA")
        let url = try await WorkerSystem.makePostgresDatabase() + "?sslmode=verify-full&sslrootcert=\(ca)"
        let store = try await StoreLocation(url: url).open(logger: TestBroker.logger)
        let conflicts = await WorkerStoreConformance.incrementUntilCommitted(store, key: "WH1/TLS", eventId: "tls-1")
        let snapshot = try await store.snapshot(stream: .inventory, key: "WH1/TLS", eventId: "tls-1")
        await store.close()
        #expect(conflicts == 0)
        #expect(snapshot.state == KeyState(nextExpected: 1))
    }

    @Test func aCAThatDidNotSignTheServerFailsInOneLineNamingStoreURLAndTheFile() async throws {
        let rogue = try TestBroker.env("WHSYNC_TEST_POSTGRES_TLS_DIR") + "/rogue-ca.pem"
        let server = try TestBroker.env("WHSYNC_TEST_POSTGRES_URL")
        let password = try #require(URLComponents(string: server)?.password)
        let error = await #expect(throws: ConfigurationError.self) {
            _ = try await StoreLocation(url: server + "?sslmode=verify-full&sslrootcert=\(rogue)").open(logger: TestBroker.logger)
        }
        let line = try #require(error?.description)
        #expect(line.hasPrefix("STORE_URL: cannot open the PostgreSQL store postgres://"), "\(line)")
        #expect(line.contains("sslmode=verify-full&sslrootcert=\(rogue)"), "\(line)")
        #expect(line.contains("certificate does not verify against the trusted CAs"), "\(line)")
        #expect(!line.contains(password))
        #expect(!line.contains("\n"))
    }

    @Test func aMissingCAFileFailsOpeningNamingTheFile() async throws {
        let server = try TestBroker.env("WHSYNC_TEST_POSTGRES_URL")
        let missing = "/nonexistent/whsync-\(UUID().uuidString)/ca.pem"
        let error = await #expect(throws: ConfigurationError.self) {
            _ = try await StoreLocation(url: server + "?sslmode=verify-ca&sslrootcert=\(missing)").open(logger: TestBroker.logger)
        }
        let line = try #require(error?.description)
        #expect(line.hasPrefix("STORE_URL: cannot open the PostgreSQL store postgres://"), "\(line)")
        #expect(line.contains("the CA file \(missing) (sslrootcert) does not exist"), "\(line)")
    }
}
