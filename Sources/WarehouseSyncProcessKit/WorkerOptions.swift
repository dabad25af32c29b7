import ArgumentParser
import WarehouseSyncCore
import WarehouseSyncOps
import WarehouseSyncSettings
import WarehouseSyncWorker

/// The flags of every worker executable: one per ``WorkerConfiguration/Key``, each overriding
/// its environment variable (DESIGN §8: environment for containers, flags on top).
public struct WorkerOptions: ParsableArguments {
    @Option(name: .customLong("amqp-url"), help: "Broker URL, amqp:// or amqps://. Default: $AMQP_URL (required)")
    var amqpURL: String?
    @Option(name: .customLong("store-url"), help: "sqlite:/abs/path.db or postgres://… Default: $STORE_URL (required)")
    var storeURL: String?
    @Option(name: .customLong("erp-base-url"), help: "The ERP's base URL. Default: $ERP_BASE_URL (required)")
    var erpBaseURL: String?
    @Option(help: "File holding the ERP bearer token. Default: $ERP_TOKEN_FILE, else no token")
    var erpTokenFile: String?
    @Option(help: "The ERP adapter: http (DESIGN §3) or tryton. Default: $ERP_KIND, else http")
    var erpKind: String?
    @Option(help: "The Tryton user (ERP_KIND=tryton). Default: $ERP_USER")
    var erpUser: String?
    @Option(help: "File holding the Tryton user's password (ERP_KIND=tryton). Default: $ERP_PASSWORD_FILE")
    var erpPasswordFile: String?
    @Option(help: "Port of /healthz, /readyz, /metrics (0 picks one). Default: $METRICS_PORT, else 9090")
    var metricsPort: String?
    @Option(help: "Address of the operations endpoint. Default: $METRICS_HOST, else 127.0.0.1")
    var metricsHost: String?
    @Option(help: "Distinct warehouse label values before the rest count as (other). Default: $METRICS_MAX_WAREHOUSES, else 200")
    var metricsMaxWarehouses: String?
    @Option(help: "Unacknowledged deliveries per consumer. Default: $PREFETCH, else 100")
    var prefetch: String?
    @Option(help: "How long a sequence gap waits before its key parks (30s, 10m). Default: $GAP_TIMEOUT, else 15m")
    var gapTimeout: String?
    @Option(help: "Posting attempts before retries-exhausted. Default: $RETRY_MAX_ATTEMPTS, else 5")
    var retryMaxAttempts: String?
    @Option(help: "Topology file. Default: $TOPOLOGY_FILE, else topology/topology.json here or in a parent")
    var topologyFile: String?
    @Option(help: "Extra WMS status codes, e.g. inventory.QC=quality-hold. Default: $STATUS_MAP")
    var statusMap: String?
    @Option(help: "New keys start at the first sequence seen (true/false). Default: $ACCEPT_FIRST_SEQUENCE, else false")
    var acceptFirstSequence: String?
    @Option(help: "How long posted eventIds count as duplicates (e.g. 336h). Default: $DEDUP_RETENTION, else 14 days")
    var dedupRetention: String?
    @Option(help: "trace, debug, info, notice, warning, error, critical. Default: $LOG_LEVEL, else info")
    var logLevel: String?
    @Option(help: "text or json. Default: $LOG_FORMAT, else text")
    var logFormat: String?

    public init() {}

    /// The flags given, keyed by the environment variable they override.
    public var overrides: [String: String] {
        let values: [WorkerConfiguration.Key: String?] = [
            .amqpURL: amqpURL, .storeURL: storeURL, .erpBaseURL: erpBaseURL, .erpTokenFile: erpTokenFile,
            .metricsPort: metricsPort, .metricsHost: metricsHost, .prefetch: prefetch, .gapTimeout: gapTimeout,
            .retryMaxAttempts: retryMaxAttempts, .topologyFile: topologyFile, .statusMap: statusMap,
            .acceptFirstSequence: acceptFirstSequence, .dedupRetention: dedupRetention, .logLevel: logLevel,
            .logFormat: logFormat, .metricsMaxWarehouses: metricsMaxWarehouses, .erpKind: erpKind, .erpUser: erpUser,
            .erpPasswordFile: erpPasswordFile,
        ]
        return Dictionary(uniqueKeysWithValues: values.compactMap { key, value in value.map { (key.rawValue, $0) } })
    }

    public static func commandConfiguration(executable: String, stream: EventStream) -> CommandConfiguration {
        CommandConfiguration(
            commandName: executable,
            abstract: "Consumes \(stream) events and posts them to the ERP exactly once in effect.",
            discussion: """
                Every flag overrides the environment variable named in its help (README, Configuration). \
                Runs until SIGTERM or SIGINT, then stops gracefully and exits 0. docs/worker.md describes the pipeline.
                """)
    }
}
