import Foundation
import Logging
import Synchronization
import WarehouseSyncCore

/// Writes each log record as one line to standard error: `text` for people, `json` (one object
/// per line: `timestamp`, `level`, `label`, `message`, then the metadata) for collectors.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let format: LogFormat

    /// Serialises writes, so lines of concurrent requests never interleave.
    private static let output = Mutex(FileHandle.standardError)

    public init(label: String, format: LogFormat, level: Logger.Level) {
        self.label = label
        self.format = format
        self.logLevel = level
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
        let timestamp = Timestamp(Date(), fractionDigits: 3).text
        let line: String
        switch format {
        case .json:
            var members: [(String, JSONValue)] = [
                ("timestamp", .string(timestamp)), ("level", .string(event.level.rawValue)),
                ("label", .string(label)), ("message", .string(event.message.description)),
            ]
            for (key, value) in merged.sorted(by: { $0.key < $1.key })
            where !["timestamp", "level", "label", "message"].contains(key) {
                members.append((key, Self.json(value)))
            }
            line = JSONValue.object(JSONObject(uniqueKeysWithValues: members)).serialized()
        case .text:
            let fields = merged.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            line = "\(timestamp) \(event.level) \(label): \(event.message)" + (fields.isEmpty ? "" : " " + fields)
        }
        Self.output.withLock { $0.write(Data((line + "\n").utf8)) }
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
