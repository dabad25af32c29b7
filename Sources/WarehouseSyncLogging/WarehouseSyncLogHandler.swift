import Foundation
import Logging
import Synchronization
import WarehouseSyncCore

/// How log lines are written.
public enum LogFormat: String, Sendable, CaseIterable {
    case text
    case json
}

/// Writes each log record as one line to standard error: `text` for people, `json` (one object
/// per line: `timestamp`, `level`, `label`, `message`, then the metadata) for collectors.
/// Timestamps are ISO 8601 UTC with milliseconds.
public struct WarehouseSyncLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public let label: String
    public let format: LogFormat

    /// Serialises writes, so lines of concurrent tasks never interleave.
    private static let output = Mutex(FileHandle.standardError)

    public init(label: String, format: LogFormat, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() {
            merged.merge(provided) { _, new in new }
        }
        if let extra = event.metadata {
            merged.merge(extra) { _, new in new }
        }
        let line = Self.line(
            format: format, timestamp: Date(), level: event.level, label: label,
            message: event.message.description, metadata: merged)
        Self.output.withLock { $0.write(Data((line + "\n").utf8)) }
    }

    /// One record as the line written (without the newline). Metadata keys are sorted; in
    /// JSON, keys that would shadow `timestamp`, `level`, `label` or `message` are dropped.
    public static func line(
        format: LogFormat, timestamp date: Date, level: Logger.Level, label: String, message: String,
        metadata: Logger.Metadata
    ) -> String {
        let timestamp = Timestamp(date, fractionDigits: 3).text
        switch format {
        case .json:
            var members: [(String, JSONValue)] = [
                ("timestamp", .string(timestamp)), ("level", .string(level.rawValue)),
                ("label", .string(label)), ("message", .string(message)),
            ]
            for (key, value) in metadata.sorted(by: { $0.key < $1.key })
            where !["timestamp", "level", "label", "message"].contains(key) {
                members.append((key, json(value)))
            }
            return JSONValue.object(JSONObject(uniqueKeysWithValues: members)).serialized()
        case .text:
            let fields = metadata.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "\(timestamp) \(level) \(label): \(message)" + (fields.isEmpty ? "" : " " + fields)
        }
    }

    private static func json(_ value: Logger.MetadataValue) -> JSONValue {
        switch value {
        case .string(let text): .string(text)
        case .stringConvertible(let value): .string(value.description)
        case .array(let values): .array(values.map(json))
        case .dictionary(let dictionary):
            .object(JSONObject(uniqueKeysWithValues: dictionary.sorted { $0.key < $1.key }.map { ($0.key, json($0.value)) }))
        }
    }
}

/// Builds the handler factory an executable's `main` passes to `LoggingSystem.bootstrap`.
/// Libraries never bootstrap; they take a `Logger`.
public enum LogHandlerFactory {
    public static func make(
        format: LogFormat, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil
    ) -> @Sendable (String) -> any LogHandler {
        { label in WarehouseSyncLogHandler(label: label, format: format, level: level, metadataProvider: metadataProvider) }
    }
}

/// The metadata keys the pipeline logs, all under one prefix so they never collide with a
/// library's keys. Use `logger.info("…", metadata: [LogMetadataKey.eventId.rawValue: "\(id)"])`
/// or the `Logger.Metadata` subscript below.
public enum LogMetadataKey: String, Sendable, CaseIterable {
    case eventId = "whsync.eventId"
    case correlationId = "whsync.correlationId"
    /// The sequencing key.
    case key = "whsync.key"
    case sequence = "whsync.sequence"
    case stream = "whsync.stream"
    case reason = "whsync.reason"

    /// The prefix every key carries.
    public static let prefix = "whsync."
}

extension Logger.Metadata {
    public subscript(key: LogMetadataKey) -> Logger.MetadataValue? {
        get { self[key.rawValue] }
        set { self[key.rawValue] = newValue }
    }
}
