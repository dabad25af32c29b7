import AMQPClient
import Logging
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncLogging
import WarehouseSyncOps
import WarehouseSyncSettings
import WarehouseSyncWorker

/// Everything a worker needs to start (DESIGN section 9). A plain struct with defaults; the
/// reading is ``init(environment:overrides:)``, and only the executable's `main` decides the
/// order: flags (`overrides`, by variable name) > environment > defaults.
public struct WorkerConfiguration: Sendable, CustomStringConvertible {
    /// The variables read: those of DESIGN section 9, then optional ones of our own.
    public enum Key: String, Sendable, CaseIterable {
        case amqpURL = "AMQP_URL"
        case storeURL = "STORE_URL"
        case erpBaseURL = "ERP_BASE_URL"
        case erpTokenFile = "ERP_TOKEN_FILE"
        case metricsPort = "METRICS_PORT"
        case prefetch = "PREFETCH"
        case gapTimeout = "GAP_TIMEOUT"
        case retryMaxAttempts = "RETRY_MAX_ATTEMPTS"
        case erpBatchMax = "ERP_BATCH_MAX"
        case logLevel = "LOG_LEVEL"
        case logFormat = "LOG_FORMAT"
        // Beyond section 9 (all optional).
        case topologyFile = "TOPOLOGY_FILE"
        case statusMap = "STATUS_MAP"
        case acceptFirstSequence = "ACCEPT_FIRST_SEQUENCE"
        case roundMax = "ROUND_MAX"
        case dedupRetention = "DEDUP_RETENTION"
        case metricsHost = "METRICS_HOST"
        case metricsMaxWarehouses = "METRICS_MAX_WAREHOUSES"
        // The ERP adapter (DESIGN §9): `ERP_KIND=tryton` reads the other two.
        case erpKind = "ERP_KIND"
        case erpUser = "ERP_USER"
        case erpPasswordFile = "ERP_PASSWORD_FILE"
    }

    public static let defaultMetricsPort = 9090
    public static let defaultPrefetch = 100
    public static let defaultGapTimeout: Duration = .seconds(900)
    public static let defaultRetryMaxAttempts = 5
    public static let defaultLogLevel: Logger.Level = .info
    public static let defaultLogFormat: LogFormat = .text
    public static let defaultDedupRetention: Duration = .seconds(14 * 86_400)

    /// `AMQP_URL` (required): `amqp://` or `amqps://`.
    public var amqp: AMQPConfiguration
    /// `STORE_URL` (required).
    public var store: StoreLocation
    /// `ERP_BASE_URL` (required) and `ERP_TOKEN_FILE` (optional).
    public var erp: ERPClientConfiguration
    /// `ERP_KIND=tryton`: Tryton's JSON-RPC at `ERP_BASE_URL` (http://host:8000/<database>/) as
    /// `ERP_USER` with `ERP_PASSWORD_FILE`; `nil`: the HTTP contract (`ERP_KIND=http`, default).
    public var tryton: TrytonConfiguration?
    /// `METRICS_PORT`: 0-65535, 0 picks a free port.
    public var metricsPort: Int
    /// `PREFETCH`: unacknowledged deliveries per consumer, 1-65535.
    public var prefetch: Int
    /// `GAP_TIMEOUT`: how long a sequencing gap is held before it is reported.
    public var gapTimeout: Duration
    /// `RETRY_MAX_ATTEMPTS`: posting attempts before `retries-exhausted`, at least 1.
    public var retryMaxAttempts: Int
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    /// `TOPOLOGY_FILE`: the topology the worker consumes by; `nil` looks for
    /// `topology/topology.json` in the working directory and its parents.
    public var topologyFile: String?
    /// `STATUS_MAP`: WMS status codes beyond the built-in table, e.g. `inventory.QC=quality-hold`.
    public var statusMapping: StatusMapping = .default
    /// `ACCEPT_FIRST_SEQUENCE`: a key with no history starts at the first sequence it sees
    /// (onboarding a WMS that has numbered for years) instead of 1.
    public var acceptFirstSequence = false
    /// `DEDUP_RETENTION`: how long posted eventIds are remembered as duplicates.
    public var dedupRetention: Duration = defaultDedupRetention
    /// `METRICS_HOST`: the address the operations endpoint listens on (containers: 0.0.0.0).
    public var metricsHost: String = OpsServer.defaultHost
    /// `ERP_BATCH_MAX`: 0 (the default) posts on the single routes; 1…1000 gathers postings into
    /// requests of the ERP's batch route (DESIGN §3a) of at most that many items.
    public var erpBatchMax = 0
    /// `ROUND_MAX`: the most decisions the worker commits in one store round (one transaction).
    public var roundMax = WorkerService.defaultRoundMax
    /// `METRICS_MAX_WAREHOUSES`: distinct `warehouse` label values per worker before the rest
    /// count as `(other)` (docs/operations-endpoints.md, "Cardinality").
    public var metricsMaxWarehouses: Int = WarehouseLabels.defaultLimit

    public init(
        amqp: AMQPConfiguration, store: StoreLocation, erp: ERPClientConfiguration,
        metricsPort: Int = defaultMetricsPort, prefetch: Int = defaultPrefetch,
        gapTimeout: Duration = defaultGapTimeout, retryMaxAttempts: Int = defaultRetryMaxAttempts,
        logLevel: Logger.Level = defaultLogLevel, logFormat: LogFormat = defaultLogFormat
    ) {
        self.amqp = amqp
        self.store = store
        self.erp = erp
        self.metricsPort = metricsPort
        self.prefetch = prefetch
        self.gapTimeout = gapTimeout
        self.retryMaxAttempts = retryMaxAttempts
        self.logLevel = logLevel
        self.logFormat = logFormat
    }

    /// Reads every variable of ``Key``: `overrides` (flags, keyed by variable name) win over
    /// `environment`; empty values count as unset. Throws every unusable setting at once.
    public init(environment: [String: String], overrides: [String: String] = [:]) throws(ConfigurationError) {
        var reader = SettingsReader(environment: environment, overrides: overrides)
        let amqp = reader.amqp(Key.amqpURL.rawValue)

        var store: StoreLocation?
        if let text = reader.value(Key.storeURL.rawValue) {
            do throws(ConfigurationError) {
                store = try StoreLocation(url: text)
            } catch {
                for problem in error.problems { reader.fail(problem.setting, problem.message) }
            }
        } else {
            reader.fail(Key.storeURL.rawValue, "not set (expected \(StoreLocation.acceptedForm))")
        }

        var token: ERPToken?
        if let path = reader.value(Key.erpTokenFile.rawValue) {
            do throws(ERPClientConfigurationError) {
                token = try ERPClientConfiguration.readToken(path: path)
            } catch {
                reader.fail(Key.erpTokenFile.rawValue, error.message)
            }
        }
        var erp: ERPClientConfiguration?
        if let text = reader.value(Key.erpBaseURL.rawValue) {
            do throws(ERPClientConfigurationError) {
                erp = try ERPClientConfiguration(baseURL: text, token: token)
            } catch {
                // The ERP client's messages may quote the URL: never with its password.
                let redacted = redactURL(text)
                reader.fail(
                    Key.erpBaseURL.rawValue,
                    redacted == text ? error.message : error.message.replacingOccurrences(of: text, with: redacted))
            }
        } else {
            reader.fail(Key.erpBaseURL.rawValue, "not set (expected the ERP's http:// or https:// URL)")
        }

        let tryton = Self.readTryton(&reader)

        let metricsPort = reader.integer(
            Key.metricsPort.rawValue, default: Self.defaultMetricsPort, in: 0...65535,
            accepted: "a port number (0-65535; 0 picks a free one)")
        let prefetch = reader.integer(
            Key.prefetch.rawValue, default: Self.defaultPrefetch, in: 1...65535, accepted: "an integer in 1-65535")
        let retryMaxAttempts = reader.integer(
            Key.retryMaxAttempts.rawValue, default: Self.defaultRetryMaxAttempts, in: 1...Int.max, accepted: "an integer ≥ 1")
        let gapTimeout = reader.duration(
            Key.gapTimeout.rawValue, default: Self.defaultGapTimeout, atLeast: .nanoseconds(1), accepted: "more than zero")
        let logLevel = reader.logLevel(Key.logLevel.rawValue, default: Self.defaultLogLevel)
        let logFormat = reader.logFormat(Key.logFormat.rawValue, default: Self.defaultLogFormat)
        let statusMapping = reader.statusMapping(Key.statusMap.rawValue)
        let acceptFirstSequence = reader.bool(Key.acceptFirstSequence.rawValue, default: false)
        let erpBatchMax = reader.integer(
            Key.erpBatchMax.rawValue, default: 0, in: 0...PostingBatch.maxItems,
            accepted: "0 (single routes) or the most items per batch request, 1-\(PostingBatch.maxItems)")
        let roundMax = reader.integer(
            Key.roundMax.rawValue, default: WorkerService.defaultRoundMax, in: WorkerService.roundMaxRange,
            accepted: "an integer in \(WorkerService.roundMaxRange.lowerBound)-\(WorkerService.roundMaxRange.upperBound)")
        let dedupRetention = reader.duration(
            Key.dedupRetention.rawValue, default: Self.defaultDedupRetention, atLeast: .nanoseconds(1), accepted: "more than zero")
        let metricsMaxWarehouses = reader.integer(
            Key.metricsMaxWarehouses.rawValue, default: WarehouseLabels.defaultLimit, in: 0...100_000,
            accepted: "an integer in 0-100000")

        try reader.finish()
        guard let amqp, let store, let erp else {
            throw ConfigurationError(setting: Key.amqpURL.rawValue, message: "not read")  // unreachable: each nil failed above
        }
        self.init(
            amqp: amqp, store: store, erp: erp, metricsPort: metricsPort, prefetch: prefetch, gapTimeout: gapTimeout,
            retryMaxAttempts: retryMaxAttempts, logLevel: logLevel, logFormat: logFormat)
        self.topologyFile = reader.value(Key.topologyFile.rawValue)
        self.statusMapping = statusMapping
        self.acceptFirstSequence = acceptFirstSequence
        self.dedupRetention = dedupRetention
        self.erpBatchMax = erpBatchMax
        self.roundMax = roundMax
        self.metricsHost = reader.value(Key.metricsHost.rawValue) ?? OpsServer.defaultHost
        self.metricsMaxWarehouses = metricsMaxWarehouses
        self.tryton = tryton
    }

    /// `ERP_KIND` and, for `tryton`, `ERP_USER` and `ERP_PASSWORD_FILE` (with `ERP_BASE_URL`).
    static func readTryton(_ reader: inout SettingsReader) -> TrytonConfiguration? {
        guard let kind = ERPKind(setting: reader.value(Key.erpKind.rawValue)) else {
            reader.fail(Key.erpKind.rawValue, "expected one of \(ERPKind.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        guard kind == .tryton else { return nil }
        let user = reader.value(Key.erpUser.rawValue)
        if user == nil { reader.fail(Key.erpUser.rawValue, "not set (ERP_KIND=tryton logs in as this user)") }
        var password: TrytonPassword?
        if let path = reader.value(Key.erpPasswordFile.rawValue) {
            do throws(ERPClientConfigurationError) {
                password = try TrytonConfiguration.readPassword(path: path)
            } catch {
                reader.fail(Key.erpPasswordFile.rawValue, error.message)
            }
        } else {
            reader.fail(Key.erpPasswordFile.rawValue, "not set (a file holding ERP_USER's password)")
        }
        guard let user, let password, let url = reader.value(Key.erpBaseURL.rawValue) else { return nil }
        do throws(ERPClientConfigurationError) {
            return try TrytonConfiguration(baseURL: url, user: user, password: password)
        } catch {
            reader.fail(error.setting, error.message)
            return nil
        }
    }

    /// One line for the start-up log: every setting, secrets redacted (no passwords, no token).
    /// What the worker engine takes of it.
    public var workerSettings: WorkerService.Settings {
        WorkerService.Settings(
            prefetch: prefetch, gapTimeout: gapTimeout, retryMaxAttempts: retryMaxAttempts,
            acceptFirstSequence: acceptFirstSequence, dedupRetention: dedupRetention, statusMapping: statusMapping,
            erpBatchMax: erpBatchMax, roundMax: roundMax)
    }

    public var description: String {
        [
            "amqp=\(amqp.redactedURL)",
            "store=\(store)",
            "erp=\(redactURL(erp.baseURL))",
            "erpToken=\(erp.token == nil ? "none" : "set")",
            "metricsPort=\(metricsPort)",
            "prefetch=\(prefetch)",
            "gapTimeout=\(DurationParser.format(gapTimeout))",
            "retryMaxAttempts=\(retryMaxAttempts)",
            "erpBatchMax=\(erpBatchMax)",
            "roundMax=\(roundMax)",
            "logLevel=\(logLevel.rawValue)",
            "logFormat=\(logFormat.rawValue)",
            "topology=\(topologyFile ?? "auto")",
            "acceptFirstSequence=\(acceptFirstSequence)",
            "dedupRetention=\(DurationParser.format(dedupRetention))",
            "metricsHost=\(metricsHost)",
            "metricsMaxWarehouses=\(metricsMaxWarehouses)",
        ].joined(separator: " ") + (tryton.map { " erpKind=tryton erpUser=\($0.user)" } ?? "")
    }
}
