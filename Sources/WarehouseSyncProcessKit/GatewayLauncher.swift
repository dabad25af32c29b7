import ArgumentParser
import Foundation
import Logging
import ProcessMemory
import ServiceLifecycle
import WarehouseSyncGateway
import WarehouseSyncLogging
import WarehouseSyncOps
import WarehouseSyncPublisher
import WarehouseSyncSettings
import WarehouseSyncWorker

/// The whole `main` of `wms-gateway`: configuration (flags over environment), logging, metrics,
/// the publisher connection, and the server until SIGTERM/SIGINT.
public enum GatewayLauncher {
    public static func main(overrides: [String: String]) async -> Never {
        let executable = "wms-gateway"
        let configuration: GatewayConfiguration
        do {
            configuration = try GatewayConfiguration(environment: ProcessInfo.processInfo.environment, overrides: overrides)
        } catch {
            WorkerLauncher.fail("\(executable): \(error)")
        }
        ProcessMemory.configureAllocator(environment: ProcessInfo.processInfo.environment)
        LoggingSystem.bootstrap(LogHandlerFactory.make(format: configuration.logFormat, level: configuration.logLevel))
        let logger = Logger(label: executable)
        do {
            try await run(configuration: configuration, logger: logger)
            exit(0)
        } catch {
            logger.critical("stopped on an error", metadata: ["error": "\(error)"])
            WorkerLauncher.fail("\(executable): \(error)")
        }
    }

    static func run(configuration: GatewayConfiguration, logger: Logger) async throws {
        logger.notice("starting", metadata: ["configuration": "\(configuration)"])
        if configuration.authentication.isAnonymous {
            logger.warning("GATEWAY_ALLOW_ANONYMOUS=true: anyone who reaches the port can publish events")
        }
        let registry = OpsMetrics.bootstrap()
        try ProcessTracing.bootstrap(serviceName: "wms-gateway", logger: logger)
        var amqp = configuration.amqp
        amqp.connectionName = amqp.connectionName ?? "wms-gateway"
        let publisher: EventPublisher
        do {
            publisher = try await EventPublisher.connect(
                .init(
                    amqp: amqp, confirmTimeout: configuration.confirmTimeout,
                    decoder: EventDecoder(statusMapping: configuration.statusMapping)),
                logger: logger)
        } catch {
            throw WorkerStartError("AMQP_URL: \(error.message)")
        }
        do throws(PublishError) {
            try await publisher.checkExchange()
        } catch {
            await publisher.close()
            throw WorkerStartError(error.message)
        }
        // The publisher connection first: the group stops the server (which finishes the
        // requests in hand) before it closes the connection.
        let server = GatewayServer(configuration: configuration, publisher: publisher, registry: registry, logger: logger)
        try await ProcessGroup.make(
            resources: [ClosingService("AMQP publisher connection") { await publisher.close() }],
            engine: server, operations: nil, logger: logger
        ).run()
        logger.notice("stopped")
    }
}

/// The flags of `wms-gateway`, each overriding its environment variable.
public struct GatewayOptions: ParsableArguments {
    @Option(name: .customLong("amqp-url"), help: "Broker URL, amqp:// or amqps://. Default: $AMQP_URL (required)")
    var amqpURL: String?
    @Option(help: "Address to listen on. Default: $GATEWAY_HOST, else 127.0.0.1 (containers: 0.0.0.0)")
    var host: String?
    @Option(help: "Port to listen on (0 picks one). Default: $GATEWAY_PORT, else 8080")
    var port: String?
    @Option(help: "File holding the bearer token clients send. Default: $GATEWAY_TOKEN_FILE")
    var tokenFile: String?
    @Option(help: "File holding the HMAC-SHA256 secret (≥ 32 bytes). Default: $GATEWAY_HMAC_SECRET_FILE")
    var hmacSecretFile: String?
    @Option(help: "How far a signed request's timestamp may be from now (e.g. 5m). Default: $GATEWAY_HMAC_WINDOW, else 5m")
    var hmacWindow: String?
    @Option(help: "true to accept requests without credentials (trials on loopback only). Default: $GATEWAY_ALLOW_ANONYMOUS, else false")
    var allowAnonymous: String?
    @Option(help: "Largest request body (e.g. 4MiB). Default: $GATEWAY_MAX_BODY, else 4MiB")
    var maxBody: String?
    @Option(help: "Most events in one batch. Default: $GATEWAY_MAX_BATCH, else 1000")
    var maxBatch: String?
    @Option(help: "Requests handled at once; more get 503. Default: $GATEWAY_MAX_CONCURRENCY, else 64")
    var maxConcurrency: String?
    @Option(help: "Longest wait for the broker's confirms (e.g. 10s). Default: $GATEWAY_CONFIRM_TIMEOUT, else 10s")
    var confirmTimeout: String?
    @Option(help: "Extra WMS status codes, e.g. inventory.QC=quality-hold. Default: $STATUS_MAP")
    var statusMap: String?
    @Option(help: "trace, debug, info, notice, warning, error, critical. Default: $LOG_LEVEL, else info")
    var logLevel: String?
    @Option(help: "text or json. Default: $LOG_FORMAT, else text")
    var logFormat: String?

    public init() {}

    /// The flags given, keyed by the environment variable they override.
    public var overrides: [String: String] {
        let values: [GatewayConfiguration.Key: String?] = [
            .amqpURL: amqpURL, .host: host, .port: port, .tokenFile: tokenFile, .hmacSecretFile: hmacSecretFile,
            .hmacWindow: hmacWindow, .allowAnonymous: allowAnonymous, .maxBodyBytes: maxBody, .maxBatchEvents: maxBatch,
            .maxConcurrentRequests: maxConcurrency, .confirmTimeout: confirmTimeout, .statusMap: statusMap,
            .logLevel: logLevel, .logFormat: logFormat,
        ]
        return Dictionary(uniqueKeysWithValues: values.compactMap { key, value in value.map { (key.rawValue, $0) } })
    }

    public static let commandConfiguration = CommandConfiguration(
        commandName: "wms-gateway",
        abstract: "Takes WMS events over HTTP (webhooks) and publishes them to wms.events with broker confirms.",
        discussion: """
            POST /events (one event) and POST /events:batch (a JSON array or JSON lines). Every flag \
            overrides the environment variable named in its help. Runs until SIGTERM or SIGINT, then \
            finishes the requests in hand and exits 0. docs/gateway.md is the integrator's guide.
            """)
}
