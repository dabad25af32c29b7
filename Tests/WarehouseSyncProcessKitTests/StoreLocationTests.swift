import Testing
import WarehouseSyncPostgres
import WarehouseSyncCore
import WarehouseSyncProcessKit

private let base = "postgres://whsync:pg-Secret-7@db:5432/whsync"

private func location(_ query: String) throws -> PostgresLocation {
    guard case .postgres(let location) = try StoreLocation(url: base + query) else {
        throw ConfigurationError(setting: "test", message: "not a PostgreSQL location")
    }
    return location
}

/// The one line `WorkerConfiguration` reports for `STORE_URL` = `base + query`.
private func problem(_ query: String) -> String? {
    do {
        _ = try StoreLocation(url: base + query)
        return nil
    } catch {
        #expect(error.problems.count == 1)
        return error.description
    }
}

@Suite("STORE_URL: sslmode and sslrootcert")
struct StoreLocationTLSTests {
    @Test("no query: sslmode=prefer, as libpq")
    func defaultIsPrefer() throws {
        let parsed = try location("")
        #expect(parsed.tls == .prefer && parsed.caFile == nil)
        #expect(parsed.description == "postgres://whsync@db:5432/whsync")
        #expect(parsed.storeConfiguration.tls == .prefer && parsed.storeConfiguration.caFile == nil)
    }

    @Test("every sslmode, with and without sslrootcert where it applies", arguments: [
        ("?sslmode=disable", PostgresStoreConfiguration.TLSMode.disable, nil),
        ("?sslmode=prefer", .prefer, nil),
        ("?sslmode=require", .require, nil),
        ("?sslmode=require&sslrootcert=/etc/whsync/ca.pem", .require, "/etc/whsync/ca.pem"),
        ("?sslmode=verify-ca", .verifyCA, nil),
        ("?sslmode=verify-ca&sslrootcert=/etc/whsync/ca.pem", .verifyCA, "/etc/whsync/ca.pem"),
        ("?sslmode=verify-full", .verifyFull, nil),
        ("?sslrootcert=/etc/whsync/ca.pem&sslmode=verify-full", .verifyFull, "/etc/whsync/ca.pem"),
        ("?sslmode=verify-full&sslrootcert=/etc/my%20certs/ca.pem", .verifyFull, "/etc/my certs/ca.pem"),
        ("?sslrootcert=system", .verifyFull, nil),
        ("?sslmode=verify-full&sslrootcert=system", .verifyFull, nil),
    ] as [(String, PostgresStoreConfiguration.TLSMode, String?)])
    func modeIsParsed(_ query: String, _ tls: PostgresStoreConfiguration.TLSMode, _ caFile: String?) throws {
        let parsed = try location(query)
        #expect(parsed.tls == tls)
        #expect(parsed.caFile == caFile)
        #expect(parsed.password == "pg-Secret-7")
        let store = parsed.storeConfiguration
        #expect(store.tls == tls && store.caFile == caFile)
        // What logs and errors show: the mode and the CA file, never the password.
        #expect(store.description == parsed.description)
        #expect(parsed.description.hasPrefix("postgres://whsync@db:5432/whsync"))
        #expect(parsed.description.contains("sslmode=\(tls.sslmode)") == (tls != .prefer))
        #expect(!parsed.description.contains("pg-Secret-7"))
    }

    @Test("unknown parameters, bad values and contradictions: one line naming STORE_URL and the parameter", arguments: [
        ("?sslmod=verify-full", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmod=***' has the unknown parameter 'sslmod' (accepted: sslmode, sslrootcert)"),
        ("?sslmode=verify-full&password=pg-Secret-7", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmode=verify-full&password=***' has the unknown parameter 'password' (accepted: sslmode, sslrootcert)"),
        ("?sslmode=verify-full&connect_timeout=10", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmode=verify-full&connect_timeout=***' has the unknown parameter 'connect_timeout' (accepted: sslmode, sslrootcert)"),
        ("?sslmode=verify_full", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmode=verify_full' has sslmode 'verify_full', not one of disable, prefer, require, verify-ca, verify-full"),
        ("?sslmode=VERIFY-FULL", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmode=VERIFY-FULL' has sslmode 'VERIFY-FULL', not one of disable, prefer, require, verify-ca, verify-full"),
        ("?sslmode=allow", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmode=allow' has sslmode 'allow', not one of disable, prefer, require, verify-ca, verify-full"),
        ("?sslmode=", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmode=' has sslmode '', not one of disable, prefer, require, verify-ca, verify-full"),
        ("?sslmode=require&sslmode=disable", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmode=require&sslmode=disable' has the parameter 'sslmode' twice"),
        ("?sslmode=verify-full&sslrootcert=", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmode=verify-full&sslrootcert=' has sslrootcert '', not an absolute path to a PEM file of CA certificates"),
        ("?sslmode=verify-full&sslrootcert=ca.pem", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmode=verify-full&sslrootcert=ca.pem' has sslrootcert 'ca.pem', not an absolute path to a PEM file of CA certificates"),
        ("?sslrootcert=/etc/ca.pem", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslrootcert=/etc/ca.pem' has sslrootcert but no sslmode: set sslmode=verify-full (or verify-ca, require) for the server's certificate to be checked"),
        ("?sslmode=prefer&sslrootcert=/etc/ca.pem", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmode=prefer&sslrootcert=/etc/ca.pem' has sslrootcert but sslmode=prefer: set sslmode=verify-full (or verify-ca, require) for the server's certificate to be checked"),
        ("?sslmode=disable&sslrootcert=/etc/ca.pem", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmode=disable&sslrootcert=/etc/ca.pem' has sslrootcert but sslmode=disable: set sslmode=verify-full (or verify-ca, require) for the server's certificate to be checked"),
        ("?sslmode=verify-ca&sslrootcert=system", "STORE_URL: 'postgres://whsync:***@db:5432/whsync?sslmode=verify-ca&sslrootcert=system' has sslrootcert=system, which needs sslmode=verify-full (or no sslmode)"),
    ])
    func badQueryIsRefused(_ query: String, _ expected: String) {
        let line = problem(query)
        #expect(line == expected)
        #expect(line?.contains("pg-Secret-7") == false)
        #expect(line?.contains("\n") == false)
    }
}
