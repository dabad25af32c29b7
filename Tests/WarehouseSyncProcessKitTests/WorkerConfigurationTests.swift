import Foundation
import Logging
import Testing
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncGateway
import WarehouseSyncLogging
import WarehouseSyncOperations
import WarehouseSyncOps
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncWorker

private let required: [String: String] = [
    "AMQP_URL": "amqp://whsync:amqp-Secret-1@broker:5672/%2F",
    "STORE_URL": "sqlite:/var/lib/whsync/worker.db",
    "ERP_BASE_URL": "http://erp:8081",
]

private func environment(_ changes: [String: String]) -> [String: String] {
    required.merging(changes) { _, new in new }
}

private func problems(_ environment: [String: String], overrides: [String: String] = [:]) -> [String] {
    do {
        _ = try WorkerConfiguration(environment: environment, overrides: overrides)
        return []
    } catch {
        return error.problems.map(\.description)
    }
}

@Suite struct WorkerConfigurationTests {
    @Test func defaults() throws {
        let configuration = try WorkerConfiguration(environment: required)
        #expect(configuration.amqp.host == "broker")
        #expect(configuration.amqp.password == "amqp-Secret-1")
        #expect(configuration.store == .sqlite(path: "/var/lib/whsync/worker.db"))
        #expect(try configuration.store.sqlitePath() == "/var/lib/whsync/worker.db")
        #expect(configuration.erp.baseURL == "http://erp:8081")
        #expect(configuration.erp.token == nil)
        #expect(configuration.metricsPort == 9090)
        #expect(configuration.prefetch == 100)
        #expect(configuration.gapTimeout == .seconds(900))
        #expect(configuration.retryMaxAttempts == 5)
        #expect(configuration.logLevel == .info)
        #expect(configuration.logFormat == .text)
        #expect(configuration.description == "amqp=amqp://whsync@broker:5672/%2F store=sqlite:/var/lib/whsync/worker.db erp=http://erp:8081 erpToken=none metricsPort=9090 prefetch=100 gapTimeout=15m retryMaxAttempts=5 erpBatchMax=0 roundMax=256 logLevel=info logFormat=text topology=auto acceptFirstSequence=false dedupRetention=336h metricsHost=127.0.0.1 metricsMaxWarehouses=200")
        #expect(configuration.topologyFile == nil)
        #expect(configuration.acceptFirstSequence == false)
        #expect(configuration.dedupRetention == .seconds(14 * 86_400))
        #expect(configuration.metricsHost == "127.0.0.1")
        #expect(configuration.metricsMaxWarehouses == 200)
    }

    @Test func everyVariableSet() throws {
        let configuration = try WorkerConfiguration(environment: environment([
            "METRICS_PORT": "0", "PREFETCH": "65535", "GAP_TIMEOUT": "30s", "RETRY_MAX_ATTEMPTS": "1",
            "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json", "ERP_BASE_URL": "https://erp.example/api/",
            "TOPOLOGY_FILE": "/etc/whsync/topology.json", "STATUS_MAP": "inventory.BLOCKED=quality-hold",
            "ACCEPT_FIRST_SEQUENCE": "yes", "DEDUP_RETENTION": "48h", "METRICS_HOST": "0.0.0.0",
            "METRICS_MAX_WAREHOUSES": "12",
        ]))
        #expect(configuration.metricsMaxWarehouses == 12)
        #expect(configuration.topologyFile == "/etc/whsync/topology.json")
        #expect(configuration.statusMapping.description.contains("inventory.BLOCKED=quality-hold"))
        #expect(configuration.acceptFirstSequence)
        #expect(configuration.dedupRetention == .seconds(48 * 3600))
        #expect(configuration.metricsHost == "0.0.0.0")
        #expect(configuration.metricsPort == 0)
        #expect(configuration.prefetch == 65535)
        #expect(configuration.gapTimeout == .seconds(30))
        #expect(configuration.retryMaxAttempts == 1)
        #expect(configuration.logLevel == .debug)
        #expect(configuration.logFormat == .json)
        #expect(configuration.erp.baseURL == "https://erp.example/api")
    }

    @Test func emptyValuesCountAsUnset() throws {
        let configuration = try WorkerConfiguration(environment: environment(["PREFETCH": "", "LOG_FORMAT": ""]))
        #expect(configuration.prefetch == 100)
        #expect(configuration.logFormat == .text)
    }

    @Test(arguments: [
        ("AMQP_URL", "http://broker", "AMQP_URL: invalid AMQP URL http://broker: the scheme must be amqp:// or amqps://"),
        ("AMQP_URL", "amqp://broker/a/b", "AMQP_URL: invalid AMQP URL amqp://broker/a/b: the path must be one segment, the virtual host (write '/' as %2F)"),
        ("AMQP_URL", "amqp://broker?heartbeat=x", "AMQP_URL: invalid AMQP URL amqp://broker?heartbeat=x: heartbeat must be an integer in 0...3600"),
        ("STORE_URL", "sqlite:data/worker.db", "STORE_URL: 'sqlite:data/worker.db' has a relative path; the path must be absolute (sqlite:/abs/path.db)"),
        ("STORE_URL", "sqlite:", "STORE_URL: 'sqlite:' has no path (expected sqlite:/abs/path.db)"),
        ("STORE_URL", "sqlite:/var/lib/", "STORE_URL: 'sqlite:/var/lib/' names a directory, not a database file (sqlite:/abs/path.db)"),
        ("STORE_URL", "mysql://db/x", "STORE_URL: 'mysql://db/x' is not sqlite:/abs/path.db or postgres://user:pass@host:port/db"),
        ("STORE_URL", "/var/lib/worker.db", "STORE_URL: '/var/lib/worker.db' is not sqlite:/abs/path.db or postgres://user:pass@host:port/db"),
        ("STORE_URL", "postgres://user@db:5432", "STORE_URL: 'postgres://user@db:5432' must name one database after the host (sqlite:/abs/path.db or postgres://user:pass@host:port/db)"),
        ("STORE_URL", "postgres://db:5432/whsync", "STORE_URL: 'postgres://db:5432/whsync' has no user (sqlite:/abs/path.db or postgres://user:pass@host:port/db)"),
        ("ERP_BASE_URL", "ftp://erp", "ERP_BASE_URL: scheme 'ftp' is not http or https"),
        ("ERP_BASE_URL", "http://erp:8081/?x=1", "ERP_BASE_URL: 'http://erp:8081/?x=1' must not have a query or fragment"),
        ("ERP_TOKEN_FILE", "/nonexistent/erp-token", "ERP_TOKEN_FILE: cannot read '/nonexistent/erp-token'"),
        ("METRICS_PORT", "70000", "METRICS_PORT: '70000' is not a port number (0-65535; 0 picks a free one)"),
        ("METRICS_PORT", "-1", "METRICS_PORT: '-1' is not a port number (0-65535; 0 picks a free one)"),
        ("METRICS_PORT", "http", "METRICS_PORT: 'http' is not a port number (0-65535; 0 picks a free one)"),
        ("PREFETCH", "0", "PREFETCH: '0' is not an integer in 1-65535"),
        ("PREFETCH", "65536", "PREFETCH: '65536' is not an integer in 1-65535"),
        ("PREFETCH", "ten", "PREFETCH: 'ten' is not an integer in 1-65535"),
        ("GAP_TIMEOUT", "10 minutes", "GAP_TIMEOUT: '10 minutes' is not a duration (expected a whole number followed by ms, s, m or h (for example 500ms, 30s, 5m, 1h))"),
        ("GAP_TIMEOUT", "1m30s", "GAP_TIMEOUT: '1m30s' is not a duration (expected a whole number followed by ms, s, m or h (for example 500ms, 30s, 5m, 1h))"),
        ("GAP_TIMEOUT", "600", "GAP_TIMEOUT: '600' is not a duration (expected a whole number followed by ms, s, m or h (for example 500ms, 30s, 5m, 1h))"),
        ("GAP_TIMEOUT", "0s", "GAP_TIMEOUT: '0s' is not more than zero (expected a whole number followed by ms, s, m or h (for example 500ms, 30s, 5m, 1h))"),
        ("RETRY_MAX_ATTEMPTS", "0", "RETRY_MAX_ATTEMPTS: '0' is not an integer ≥ 1"),
        ("RETRY_MAX_ATTEMPTS", "many", "RETRY_MAX_ATTEMPTS: 'many' is not an integer ≥ 1"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL: 'verbose' is not one of trace, debug, info, notice, warning, error, critical"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: 'xml' is not json or text"),
        ("ACCEPT_FIRST_SEQUENCE", "maybe", "ACCEPT_FIRST_SEQUENCE: 'maybe' is not true or false"),
        ("DEDUP_RETENTION", "0h", "DEDUP_RETENTION: '0h' is not more than zero (expected a whole number followed by ms, s, m or h (for example 500ms, 30s, 5m, 1h))"),
        ("DEDUP_RETENTION", "forever", "DEDUP_RETENTION: 'forever' is not a duration (expected a whole number followed by ms, s, m or h (for example 500ms, 30s, 5m, 1h))"),
    ])
    func badValue(variable: String, value: String, message: String) {
        #expect(problems(environment([variable: value])) == [message])
    }

    @Test func requiredVariablesMissing() {
        #expect(problems([:]) == [
            "AMQP_URL: not set (expected amqp://user:pass@host:port/vhost or amqps://…)",
            "STORE_URL: not set (expected sqlite:/abs/path.db or postgres://user:pass@host:port/db)",
            "ERP_BASE_URL: not set (expected the ERP's http:// or https:// URL)",
        ])
    }

    @Test("ROUND_MAX and ERP_BATCH_MAX: read within their ranges, refused outside with the range")
    func roundAndBatchLimits() throws {
        let configuration = try WorkerConfiguration(environment: environment(["ROUND_MAX": "64", "ERP_BATCH_MAX": "100"]))
        #expect(configuration.roundMax == 64)
        #expect(configuration.workerSettings.roundMax == 64)
        #expect(configuration.erpBatchMax == 100)
        #expect(problems(environment(["ROUND_MAX": "0", "ERP_BATCH_MAX": "1001"])) == [
            "ERP_BATCH_MAX: '1001' is not 0 (single routes) or the most items per batch request, 1-1000",
            "ROUND_MAX: '0' is not an integer in 1-10000",
        ])
    }

    @Test func everyErrorIsReportedOncePerLine() throws {
        do {
            _ = try WorkerConfiguration(environment: environment([
                "STORE_URL": "sqlite:worker.db", "PREFETCH": "0", "LOG_FORMAT": "yaml", "GAP_TIMEOUT": "soon",
            ]))
            Issue.record("expected an error")
        } catch {
            #expect(error.problems.map(\.setting) == ["STORE_URL", "PREFETCH", "GAP_TIMEOUT", "LOG_FORMAT"])
            let lines = error.description.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.count == 4)
            #expect(lines.map(\.description) == error.problems.map(\.description))
        }
    }

    @Test(arguments: [
        ("AMQP_URL", "amqp://whsync:hunter2-amqp@/vhost"),
        ("AMQP_URL", "amqp://whsync:hunter2-amqp@broker?bogus=1"),
        ("STORE_URL", "postgres://whsync:hunter2-pg@db:5432"),
        ("STORE_URL", "postgres://whsync:hunter2-pg@:5432/whsync"),
        ("STORE_URL", "mysql://whsync:hunter2-my@db/whsync"),
        ("ERP_BASE_URL", "http://whsync:hunter2-erp@erp:8081"),
        ("ERP_BASE_URL", "ftp://whsync:hunter2-erp@erp"),
    ])
    func secretsNeverInErrors(variable: String, value: String) {
        let lines = problems(environment([variable: value]))
        #expect(lines.count == 1)
        #expect(lines.first?.hasPrefix(variable + ": ") == true)
        #expect(!lines.joined().contains("hunter2"))
    }

    @Test func secretsNeverInDescription() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("whsync-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenFile = directory.appendingPathComponent("token").path
        try "erp-token-Secret-9\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)

        let configuration = try WorkerConfiguration(environment: environment([
            "STORE_URL": "postgres://whsync:pg-Secret-7@db:5433/whsync", "ERP_TOKEN_FILE": tokenFile,
        ]))
        #expect(configuration.erp.token != nil)
        let texts = [configuration.description, String(describing: configuration.store), String(reflecting: configuration.store)]
        for text in texts {
            #expect(!text.contains("amqp-Secret-1"))
            #expect(!text.contains("pg-Secret-7"))
            #expect(!text.contains("erp-token-Secret-9"))
        }
        #expect(configuration.description.contains("store=postgres://whsync@db:5433/whsync"))
        #expect(configuration.description.contains("erpToken=set"))
    }

    @Test func postgresIsParsed() throws {
        let configuration = try WorkerConfiguration(environment: environment([
            "STORE_URL": "postgresql://whsync:pg-Secret-7@db/whsync",
        ]))
        let location = PostgresLocation(host: "db", port: 5432, user: "whsync", password: "pg-Secret-7", database: "whsync")
        #expect(configuration.store == .postgres(location))
        #expect(throws: ConfigurationError(
            setting: "STORE_URL", message: "'postgres://whsync@db:5432/whsync' is a PostgreSQL store, not a SQLite file"
        )) {
            try configuration.store.sqlitePath()
        }
        // What the workers open it with; its description never shows the password.
        let store = location.storeConfiguration
        #expect(store.host == "db" && store.port == 5432 && store.username == "whsync" && store.database == "whsync")
        #expect(store.password == "pg-Secret-7")
        #expect(store.tls == .prefer)
        #expect(store.description == "postgres://whsync@db:5432/whsync")
    }

    @Test func overridesWinOverEnvironment() throws {
        let configuration = try WorkerConfiguration(
            environment: environment(["PREFETCH": "7", "LOG_FORMAT": "xml", "STORE_URL": "sqlite:relative.db"]),
            overrides: ["PREFETCH": "9", "LOG_FORMAT": "json", "STORE_URL": "sqlite:/data/override.db"])
        #expect(configuration.prefetch == 9)
        #expect(configuration.logFormat == .json)
        #expect(configuration.store == .sqlite(path: "/data/override.db"))
        // A bad override is reported with the override's value.
        #expect(problems(environment(["PREFETCH": "7"]), overrides: ["PREFETCH": "0"]) == [
            "PREFETCH: '0' is not an integer in 1-65535",
        ])
    }
}
