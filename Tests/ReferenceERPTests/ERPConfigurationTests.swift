import Foundation
import Testing

@testable import ReferenceERP

@Suite("Reference ERP: configuration")
struct ERPConfigurationTests {
    @Test("the repository's seed file has WH1…WH5 and a catalogue of SKUs with units of measure")
    func seedFile() {
        #expect(Set(testMasterData.warehouses.keys) == ["WH1", "WH2", "WH3", "WH4", "WH5"])
        #expect(testMasterData.skus.count >= 50)
        #expect(testMasterData.skus["SKU-0001"]?.uom == "EA")
        #expect(testMasterData.skus.values.allSatisfy { !$0.uom.isEmpty })
    }

    @Test("defaults: 127.0.0.1:8081, a temporary ledger, no token, no faults")
    func defaults() throws {
        let settings = try ReferenceERPConfiguration.load(environment: ["ERP_SEED_FILE": repositorySeedFile])
        let configuration = settings.configuration
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8081)
        #expect(settings.temporaryDatabase)
        #expect(configuration.databasePath.hasPrefix(NSTemporaryDirectory()) || configuration.databasePath.hasPrefix("/tmp"))
        #expect(configuration.token == nil)
        #expect(configuration.faults == FaultSettings())
        #expect(settings.logLevel == .info)
        #expect(settings.logFormat == .text)
    }

    @Test("flags override the environment; faults and the token are read")
    func overrides() throws {
        try withTemporaryFiles { directory in
            let tokenFile = (directory as NSString).appendingPathComponent("token")
            try "  abc123\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let settings = try ReferenceERPConfiguration.load(
                environment: [
                    "ERP_PORT": "9000", "ERP_SEED_FILE": repositorySeedFile, "ERP_TOKEN_FILE": tokenFile,
                    "ERP_ERROR_RATE": "0.25", "ERP_LATENCY_MS": "5-10", "ERP_OUTAGE_WINDOWS": "10+5",
                    "ERP_FAULT_SEED": "9", "ERP_RETRY_AFTER": "3", "ERP_ERROR_STATUSES": "500,503",
                    "ERP_DB": "ledger.db", "LOG_FORMAT": "JSON", "LOG_LEVEL": "debug",
                ],
                overrides: [.port: "9001", .host: "0.0.0.0", .strictStock: "true"],
                currentDirectory: directory)
            let configuration = settings.configuration
            #expect(configuration.port == 9001)
            #expect(configuration.host == "0.0.0.0")
            #expect(configuration.strictStock)
            #expect(configuration.databasePath == (directory as NSString).appendingPathComponent("ledger.db"))
            #expect(!settings.temporaryDatabase)
            #expect(configuration.token?.matches(authorization: "Bearer abc123") == true)
            #expect(configuration.faults == FaultSettings(
                latencyMilliseconds: 5...10, errorRate: 0.25, errorStatuses: [500, 503], retryAfterSeconds: 3,
                outageWindows: [.init(startSeconds: 10, durationSeconds: 5)], seed: 9))
            #expect(settings.logFormat == .json)
            #expect(settings.logLevel == .debug)
        }
    }

    @Test(
        "a bad setting fails with one line naming it",
        arguments: [
            ("ERP_PORT", "http"), ("ERP_PORT", "70000"), ("ERP_ERROR_RATE", "2"), ("ERP_LATENCY_MS", "fast"),
            ("ERP_ERROR_STATUSES", "418"), ("ERP_OUTAGE_WINDOWS", "soon"), ("ERP_FAULT_SEED", "-3"),
            ("ERP_RETRY_AFTER", "x"), ("ERP_STRICT_STOCK", "maybe"), ("LOG_LEVEL", "loud"), ("LOG_FORMAT", "xml"),
            ("ERP_SEED_FILE", "/nonexistent/seed.json"), ("ERP_TOKEN_FILE", "/nonexistent/token"),
            ("ERP_DB", "/nonexistent/dir/ledger.db"),
        ]
    )
    func badSetting(name: String, value: String) throws {
        var environment = ["ERP_SEED_FILE": repositorySeedFile]
        environment[name] = value
        let error = #expect(throws: ConfigurationError.self) {
            try ReferenceERPConfiguration.load(environment: environment)
        }
        #expect(error?.setting == name)
        #expect(error?.description.hasPrefix("\(name): ") == true)
        #expect(error?.description.contains("\n") == false)
    }

    @Test("an empty token file is refused without showing its content")
    func emptyToken() throws {
        try withTemporaryFiles { directory in
            let tokenFile = (directory as NSString).appendingPathComponent("token")
            try "\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let error = #expect(throws: ConfigurationError.self) {
                try ReferenceERPConfiguration.load(environment: ["ERP_SEED_FILE": repositorySeedFile, "ERP_TOKEN_FILE": tokenFile])
            }
            #expect(error?.setting == "ERP_TOKEN_FILE")
        }
    }

    @Test(
        "seed files with mistakes are refused, naming the entry",
        arguments: [
            (#"{"warehouses": [], "skus": []}"#, "no warehouses"),
            (#"{"warehouses": [{"code": "WH 1"}], "skus": []}"#, "warehouses[0].code"),
            (#"{"warehouses": [{"code": "WH1"}, {"code": "WH1"}], "skus": []}"#, "listed twice"),
            (#"{"warehouses": [{"code": "WH1"}], "skus": [{"sku": "A"}]}"#, "skus[0].uom"),
            (#"{"warehouses": [{"code": "WH1"}]}"#, "'skus'"),
            ("not json", "not valid JSON"),
        ]
    )
    func badSeed(seed: String, fragment: String) {
        let error = #expect(throws: MasterDataError.self) {
            try MasterData(seedJSON: Array(seed.utf8))
        }
        #expect(error?.message.contains(fragment) == true)
    }
}

func withTemporaryFiles(_ body: (String) throws -> Void) throws {
    let directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("reference-erp-config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try body(directory)
}
