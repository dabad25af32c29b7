import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ProcessMemory
import ReferenceERP
import ServiceLifecycle
import WarehouseSyncLogging

/// `reference-erp`: the ERP stand-in a team runs until its real ERP is connected. Thin:
/// configuration, logging, lifecycle. See docs/reference-erp.md.
@main
struct ReferenceERPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reference-erp",
        abstract: "An ERP HTTP API (DESIGN section 3) with its own SQLite ledger and fault injection.",
        discussion: "Every flag overrides the environment variable named in its help. SIGTERM or SIGINT stops it gracefully."
    )

    @Option(help: "Address to listen on. Default: $ERP_HOST, else 127.0.0.1")
    var host: String?
    @Option(help: "Port (0 picks a free one). Default: $ERP_PORT, else 8081")
    var port: String?
    @Option(help: "SQLite ledger file. Default: $ERP_DB, else a new temporary file")
    var db: String?
    @Option(help: "Master data (warehouses, SKUs). Default: $ERP_SEED_FILE, else deploy/reference-erp/seed.json")
    var seedFile: String?
    @Option(help: "File holding the bearer token clients must send. Default: $ERP_TOKEN_FILE, else no token")
    var tokenFile: String?
    @Option(help: "Injected latency in ms, fixed ('50') or a range ('10-200'). Default: $ERP_LATENCY_MS")
    var latencyMs: String?
    @Option(help: "Fraction (0-1) of postings answered with an injected error. Default: $ERP_ERROR_RATE, else 0")
    var errorRate: String?
    @Option(help: "Statuses injected errors pick from, e.g. 503,500,429. Default: $ERP_ERROR_STATUSES, else 503")
    var errorStatuses: String?
    @Option(help: "Fraction (0-1) of postings committed but answered 503. Default: $ERP_LOST_RESPONSE_RATE, else 0")
    var lostResponseRate: String?
    @Option(help: "Retry-After seconds on injected 429/503. Default: $ERP_RETRY_AFTER, else none")
    var retryAfter: String?
    @Option(help: "Outages as START+DURATION seconds after start, e.g. 10+5,60+30 ('30+' = until cleared). Default: $ERP_OUTAGE_WINDOWS")
    var outageWindows: String?
    @Option(help: "Seed for the fault draws (repeatable runs). Default: $ERP_FAULT_SEED, else random")
    var faultSeed: String?
    @Option(help: "Reject postings that take available stock below zero (true/false). Default: $ERP_STRICT_STOCK, else false")
    var strictStock: String?
    @Option(help: "trace, debug, info, notice, warning, error, critical. Default: $LOG_LEVEL, else info")
    var logLevel: String?
    @Option(help: "text or json. Default: $LOG_FORMAT, else text")
    var logFormat: String?

    func run() async throws {
        let overrides: [ReferenceERPConfiguration.Key: String?] = [
            .host: host, .port: port, .database: db, .seedFile: seedFile, .tokenFile: tokenFile,
            .latency: latencyMs, .errorRate: errorRate, .errorStatuses: errorStatuses,
            .lostResponseRate: lostResponseRate, .retryAfter: retryAfter, .outageWindows: outageWindows,
            .faultSeed: faultSeed, .strictStock: strictStock, .logLevel: logLevel, .logFormat: logFormat,
        ]
        let settings: ReferenceERPSettings
        do {
            settings = try ReferenceERPConfiguration.load(
                environment: ProcessInfo.processInfo.environment, overrides: overrides.compactMapValues { $0 })
        } catch {
            Self.fail("reference-erp: \(error)")
        }

        let format = settings.logFormat
        let level = settings.logLevel
        ProcessMemory.configureAllocator(environment: ProcessInfo.processInfo.environment)
        LoggingSystem.bootstrap(LogHandlerFactory.make(format: format, level: level))
        let logger = Logger(label: "reference-erp")

        let configuration = settings.configuration
        let server: ReferenceERPServer
        do {
            server = try await ReferenceERPServer.start(configuration: configuration, logger: logger)
        } catch {
            Self.fail("reference-erp: ERP_DB: cannot open the ledger \(configuration.databasePath): \(error)")
        }
        logger.notice("starting", metadata: [
            "erp.db": "\(configuration.databasePath)\(settings.temporaryDatabase ? " (temporary)" : "")",
            "erp.warehouses": "\(configuration.masterData.warehouses.count)",
            "erp.skus": "\(configuration.masterData.skus.count)",
            "erp.auth": "\(configuration.token == nil ? "none" : "bearer token")",
        ])

        let group = ServiceGroup(configuration: .init(
            services: [server.application()],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch {
            // A port in use, for one: the server never started, so its ledger is still open.
            await server.close()
            Self.fail("reference-erp: \(error)")
        }
        if settings.temporaryDatabase {
            for suffix in ["", "-wal", "-shm"] {
                try? FileManager.default.removeItem(atPath: configuration.databasePath + suffix)
            }
        }
        logger.notice("stopped")
    }

    /// One line on standard error, exit status 1.
    static func fail(_ line: String) -> Never {
        FileHandle.standardError.write(Data((line + "\n").utf8))
        Foundation.exit(1)
    }
}
