import Foundation
import Logging
import WarehouseSyncLogging
import WarehouseSyncCore

/// Everything the reference ERP needs to start. ``load(environment:overrides:currentDirectory:)``
/// reads it from the environment, with flags (passed as `overrides`, by the same names) winning.
public struct ReferenceERPConfiguration: Sendable {
    /// The address to listen on. Default `127.0.0.1`: only this machine can reach the ERP
    /// unless told otherwise.
    public var host: String
    public var port: Int
    /// The SQLite ledger file.
    public var databasePath: String
    public var masterData: MasterData
    /// Required on every request but `GET /health` when set.
    public var token: BearerToken?
    public var faults: FaultSettings
    /// 422 for a posting that would take an available balance below zero. Default off: the
    /// ledger goes negative, as WMS and ERP often disagree for a while.
    public var strictStock: Bool
    /// The largest request body accepted (413 beyond). Events are at most 256 KiB.
    public var maxBodyBytes: Int
    /// The most items a batch request may carry (DESIGN §3a).
    public var maxBatchItems = PostingBatch.maxItems
    /// The largest batch request body accepted: room for `maxBatchItems` documents.
    public var maxBatchBodyBytes = 16 << 20

    public init(
        host: String = "127.0.0.1",
        port: Int = 8081,
        databasePath: String,
        masterData: MasterData,
        token: BearerToken? = nil,
        faults: FaultSettings = FaultSettings(),
        strictStock: Bool = false,
        maxBodyBytes: Int = 1 << 20
    ) {
        self.host = host
        self.port = port
        self.databasePath = databasePath
        self.masterData = masterData
        self.token = token
        self.faults = faults
        self.strictStock = strictStock
        self.maxBodyBytes = maxBodyBytes
    }
}

/// The settings of the executable: the ERP's configuration and how to log.
public struct ReferenceERPSettings: Sendable {
    public var configuration: ReferenceERPConfiguration
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    /// `true` when ``ReferenceERPConfiguration/databasePath`` is a new temporary file.
    public var temporaryDatabase: Bool
}

/// A setting that cannot be used.
public typealias ConfigurationError = SettingError

extension ReferenceERPConfiguration {
    /// The settings read, each an environment variable; the executable's flags override them
    /// under the same names.
    public enum Key: String, CaseIterable, Sendable {
        case host = "ERP_HOST"
        case port = "ERP_PORT"
        case database = "ERP_DB"
        case seedFile = "ERP_SEED_FILE"
        case tokenFile = "ERP_TOKEN_FILE"
        case latency = "ERP_LATENCY_MS"
        case errorRate = "ERP_ERROR_RATE"
        case errorStatuses = "ERP_ERROR_STATUSES"
        case lostResponseRate = "ERP_LOST_RESPONSE_RATE"
        case retryAfter = "ERP_RETRY_AFTER"
        case outageWindows = "ERP_OUTAGE_WINDOWS"
        case faultSeed = "ERP_FAULT_SEED"
        case strictStock = "ERP_STRICT_STOCK"
        case logLevel = "LOG_LEVEL"
        case logFormat = "LOG_FORMAT"
    }

    /// The seed file used when `ERP_SEED_FILE` is not set, relative to the working directory.
    public static let defaultSeedFile = "deploy/reference-erp/seed.json"

    /// Reads the settings: `overrides` (flags) first, then `environment`, then defaults. Empty
    /// values count as unset. Throws the first unusable setting.
    public static func load(
        environment: [String: String],
        overrides: [Key: String] = [:],
        currentDirectory: String = FileManager.default.currentDirectoryPath
    ) throws(ConfigurationError) -> ReferenceERPSettings {
        func value(_ key: Key) -> String? {
            let text = overrides[key] ?? environment[key.rawValue]
            return text.flatMap { $0.isEmpty ? nil : $0 }
        }
        func fail(_ key: Key, _ message: String) -> ConfigurationError {
            ConfigurationError(setting: key.rawValue, message: message)
        }

        let host = value(.host) ?? "127.0.0.1"
        var port = 8081
        if let text = value(.port) {
            guard let number = Int(text), (0...65535).contains(number) else {
                throw fail(.port, "'\(text)' is not a port number (0-65535; 0 picks a free one)")
            }
            port = number
        }

        var temporaryDatabase = false
        let databasePath: String
        if let path = value(.database) {
            databasePath = Self.absolute(path, in: currentDirectory)
            let directory = (databasePath as NSString).deletingLastPathComponent
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw fail(.database, "the directory \(directory) does not exist")
            }
        } else {
            temporaryDatabase = true
            databasePath = (NSTemporaryDirectory() as NSString).appendingPathComponent(
                "reference-erp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max)).db")
        }

        let seedPath = Self.absolute(value(.seedFile) ?? Self.defaultSeedFile, in: currentDirectory)
        let masterData: MasterData
        do throws(MasterDataError) {
            masterData = try MasterData(contentsOfFile: seedPath)
        } catch {
            let hint = value(.seedFile) == nil ? " (set ERP_SEED_FILE or --seed-file)" : ""
            throw fail(.seedFile, error.message + hint)
        }

        let token = try value(.tokenFile).map { path throws(ConfigurationError) in
            try BearerToken(contentsOfFile: Self.absolute(path, in: currentDirectory))
        }

        var faults = FaultSettings()
        if let text = value(.latency) {
            guard let range = FaultSettings.parseLatency(text) else {
                throw fail(.latency, "'\(text)' is not milliseconds ('50') or a range ('10-200'), at most 600000")
            }
            faults.latencyMilliseconds = range
        }
        if let text = value(.errorRate) {
            guard let rate = FaultSettings.parseRate(text) else { throw fail(.errorRate, "'\(text)' is not a fraction in 0…1") }
            faults.errorRate = rate
        }
        if let text = value(.errorStatuses) {
            guard let statuses = FaultSettings.parseStatuses(text) else {
                throw fail(.errorStatuses, "'\(text)' is not a comma-separated list of 429, 500, 502, 503, 504")
            }
            faults.errorStatuses = statuses
        }
        if let text = value(.lostResponseRate) {
            guard let rate = FaultSettings.parseRate(text) else {
                throw fail(.lostResponseRate, "'\(text)' is not a fraction in 0…1")
            }
            faults.lostResponseRate = rate
        }
        if let text = value(.retryAfter) {
            guard let seconds = Int(text), seconds >= 0 else { throw fail(.retryAfter, "'\(text)' is not whole seconds ≥ 0") }
            faults.retryAfterSeconds = seconds
        }
        if let text = value(.outageWindows) {
            guard let windows = FaultSettings.parseOutageWindows(text) else {
                throw fail(.outageWindows, "'\(text)' is not START+DURATION seconds, comma-separated ('10+5,60+30'; '30+' = until cleared)")
            }
            faults.outageWindows = windows
        }
        if let text = value(.faultSeed) {
            guard let seed = UInt64(text) else { throw fail(.faultSeed, "'\(text)' is not an integer ≥ 0") }
            faults.seed = seed
        }

        var strictStock = false
        if let text = value(.strictStock) {
            guard let flag = Self.flag(text) else { throw fail(.strictStock, "'\(text)' is not true or false") }
            strictStock = flag
        }

        let levelText = value(.logLevel) ?? "info"
        guard let logLevel = Logger.Level(rawValue: levelText.lowercased()) else {
            throw fail(.logLevel, "'\(levelText)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        let formatText = value(.logFormat) ?? "text"
        guard let logFormat = LogFormat(rawValue: formatText.lowercased()) else {
            throw fail(.logFormat, "'\(formatText)' is not json or text")
        }

        let configuration = ReferenceERPConfiguration(
            host: host, port: port, databasePath: databasePath, masterData: masterData, token: token,
            faults: faults, strictStock: strictStock)
        return ReferenceERPSettings(
            configuration: configuration, logLevel: logLevel, logFormat: logFormat, temporaryDatabase: temporaryDatabase)
    }

    static func absolute(_ path: String, in directory: String) -> String {
        path.hasPrefix("/") ? path : (directory as NSString).appendingPathComponent(path)
    }

    static func flag(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "1", "true", "yes", "on": true
        case "0", "false", "no", "off": false
        default: nil
        }
    }
}
