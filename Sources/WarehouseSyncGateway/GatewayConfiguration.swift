import AMQPClient
import Logging
import WarehouseSyncCore
import WarehouseSyncLogging
import WarehouseSyncOps
import WarehouseSyncSettings

/// Everything `wms-gateway` needs to start (docs/gateway.md). Read like the workers'
/// configuration: flags (`overrides`, by variable name) > environment > defaults.
public struct GatewayConfiguration: Sendable, CustomStringConvertible {
    public enum Key: String, Sendable, CaseIterable {
        case amqpURL = "AMQP_URL"
        case host = "GATEWAY_HOST"
        case port = "GATEWAY_PORT"
        case tokenFile = "GATEWAY_TOKEN_FILE"
        case hmacSecretFile = "GATEWAY_HMAC_SECRET_FILE"
        case hmacWindow = "GATEWAY_HMAC_WINDOW"
        case allowAnonymous = "GATEWAY_ALLOW_ANONYMOUS"
        case maxBodyBytes = "GATEWAY_MAX_BODY"
        case maxBatchEvents = "GATEWAY_MAX_BATCH"
        case maxConcurrentRequests = "GATEWAY_MAX_CONCURRENCY"
        case confirmTimeout = "GATEWAY_CONFIRM_TIMEOUT"
        case statusMap = "STATUS_MAP"
        case logLevel = "LOG_LEVEL"
        case logFormat = "LOG_FORMAT"
    }

    public static let defaultPort = 8080
    public static let defaultHMACWindow: Duration = .seconds(300)
    public static let defaultMaxBodyBytes = 4 << 20
    public static let defaultMaxBatchEvents = 1000
    public static let defaultMaxConcurrentRequests = 64
    public static let defaultConfirmTimeout: Duration = .seconds(10)
    /// The shortest HMAC secret accepted: 32 bytes, the size of the SHA-256 output (RFC 2104 §3).
    public static let minimumHMACSecretLength = 32

    /// `AMQP_URL` (required).
    public var amqp: AMQPConfiguration
    /// `GATEWAY_HOST`: loopback by default; containers set `0.0.0.0`.
    public var host: String
    /// `GATEWAY_PORT`: 0-65535, 0 picks a free port.
    public var port: Int
    /// `GATEWAY_TOKEN_FILE` / `GATEWAY_HMAC_SECRET_FILE` / `GATEWAY_HMAC_WINDOW` /
    /// `GATEWAY_ALLOW_ANONYMOUS`.
    public var authentication: GatewayAuthentication
    /// `GATEWAY_MAX_BODY`: the largest request body; larger ones get 413. A single event is also
    /// held to the contract's 256 KiB.
    public var maxBodyBytes: Int
    /// `GATEWAY_MAX_BATCH`: the most events in one `/events:batch` request; more get 413.
    public var maxBatchEvents: Int
    /// `GATEWAY_MAX_CONCURRENCY`: requests to `/events` handled at once; beyond it 503 at once.
    public var maxConcurrentRequests: Int
    /// `GATEWAY_CONFIRM_TIMEOUT`: the longest a request waits for the broker's confirms.
    public var confirmTimeout: Duration
    /// `STATUS_MAP`: WMS status codes beyond the built-in table (as the workers read them).
    public var statusMapping: StatusMapping
    public var logLevel: Logger.Level
    public var logFormat: LogFormat

    public init(
        amqp: AMQPConfiguration, authentication: GatewayAuthentication, host: String = OpsServer.defaultHost,
        port: Int = defaultPort, maxBodyBytes: Int = defaultMaxBodyBytes, maxBatchEvents: Int = defaultMaxBatchEvents,
        maxConcurrentRequests: Int = defaultMaxConcurrentRequests, confirmTimeout: Duration = defaultConfirmTimeout,
        statusMapping: StatusMapping = .default, logLevel: Logger.Level = .info, logFormat: LogFormat = .text
    ) {
        self.amqp = amqp
        self.authentication = authentication
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.maxBatchEvents = maxBatchEvents
        self.maxConcurrentRequests = maxConcurrentRequests
        self.confirmTimeout = confirmTimeout
        self.statusMapping = statusMapping
        self.logLevel = logLevel
        self.logFormat = logFormat
    }

    /// Reads every variable of ``Key``; throws every unusable setting at once.
    public init(environment: [String: String], overrides: [String: String] = [:]) throws(ConfigurationError) {
        var reader = SettingsReader(environment: environment, overrides: overrides)
        let amqp = reader.amqp(Key.amqpURL.rawValue)
        let port = reader.integer(
            Key.port.rawValue, default: Self.defaultPort, in: 0...65535, accepted: "a port number (0-65535; 0 picks a free one)")
        let token = reader.secretFile(Key.tokenFile.rawValue)
        let secret = reader.secretFile(Key.hmacSecretFile.rawValue, minimumLength: Self.minimumHMACSecretLength)
        let window = reader.duration(
            Key.hmacWindow.rawValue, default: Self.defaultHMACWindow, atLeast: .seconds(1), accepted: "at least 1s")
        let allowAnonymous = reader.bool(Key.allowAnonymous.rawValue, default: false)
        let tokenSet = reader.value(Key.tokenFile.rawValue) != nil
        let secretSet = reader.value(Key.hmacSecretFile.rawValue) != nil
        if !tokenSet && !secretSet && !allowAnonymous {
            reader.fail(
                "\(Key.tokenFile.rawValue)/\(Key.hmacSecretFile.rawValue)",
                "neither is set: the gateway needs a bearer token or an HMAC secret (or \(Key.allowAnonymous.rawValue)=true for a trial on loopback)")
        }
        if (tokenSet || secretSet) && allowAnonymous {
            reader.fail(Key.allowAnonymous.rawValue, "cannot be true while a token or an HMAC secret is set")
        }
        let maxBody = reader.byteCount(Key.maxBodyBytes.rawValue, default: Self.defaultMaxBodyBytes, in: 1024...(64 << 20))
        let maxBatch = reader.integer(
            Key.maxBatchEvents.rawValue, default: Self.defaultMaxBatchEvents, in: 1...100_000, accepted: "an integer in 1-100000")
        let maxConcurrent = reader.integer(
            Key.maxConcurrentRequests.rawValue, default: Self.defaultMaxConcurrentRequests, in: 1...10_000,
            accepted: "an integer in 1-10000")
        let confirmTimeout = reader.duration(
            Key.confirmTimeout.rawValue, default: Self.defaultConfirmTimeout, atLeast: .milliseconds(100), accepted: "at least 100ms")
        let statusMapping = reader.statusMapping(Key.statusMap.rawValue)
        let logLevel = reader.logLevel(Key.logLevel.rawValue, default: .info)
        let logFormat = reader.logFormat(Key.logFormat.rawValue, default: .text)
        try reader.finish()
        guard let amqp else { throw ConfigurationError(setting: Key.amqpURL.rawValue, message: "not set") }

        self.init(
            amqp: amqp,
            authentication: GatewayAuthentication(bearerToken: token, hmacSecret: secret, hmacWindow: window),
            host: reader.value(Key.host.rawValue) ?? OpsServer.defaultHost, port: port, maxBodyBytes: maxBody,
            maxBatchEvents: maxBatch, maxConcurrentRequests: maxConcurrent, confirmTimeout: confirmTimeout,
            statusMapping: statusMapping, logLevel: logLevel, logFormat: logFormat)
    }

    /// One line for the start-up log; secrets appear as set or not, never their content.
    public var description: String {
        [
            "amqp=\(amqp.redactedURL)",
            "address=\(host):\(port)",
            "auth=\(authentication)",
            "maxBody=\(maxBodyBytes)",
            "maxBatch=\(maxBatchEvents)",
            "maxConcurrency=\(maxConcurrentRequests)",
            "confirmTimeout=\(DurationParser.format(confirmTimeout))",
            "logLevel=\(logLevel.rawValue)",
            "logFormat=\(logFormat.rawValue)",
        ].joined(separator: " ")
    }
}
