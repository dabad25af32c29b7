import AMQPClient
import Foundation
import Logging
import WarehouseSyncCore
import WarehouseSyncLogging

/// Reads settings the way every executable does: flags (`overrides`, by variable name) win over
/// the environment, empty values count as unset, and every unusable setting is collected so that
/// ``finish()`` reports them all at once, one line each naming the variable. Secrets are never
/// echoed.
public struct SettingsReader {
    public let environment: [String: String]
    public let overrides: [String: String]
    public private(set) var problems: [ConfigurationError.Problem] = []

    public init(environment: [String: String], overrides: [String: String]) {
        self.environment = environment
        self.overrides = overrides
    }

    public func value(_ name: String) -> String? {
        let text = overrides[name] ?? environment[name]
        return text.flatMap { $0.isEmpty ? nil : $0 }
    }

    public mutating func fail(_ name: String, _ message: String) {
        problems.append(.init(setting: name, message: message))
    }

    public mutating func integer(_ name: String, default fallback: Int, in range: ClosedRange<Int>, accepted: String) -> Int {
        guard let text = value(name) else { return fallback }
        guard let number = Int(text), range.contains(number) else {
            fail(name, "'\(text)' is not \(accepted)")
            return fallback
        }
        return number
    }

    /// A duration such as `30s` or `5m`, at least `minimum` (`accepted` words that bound).
    public mutating func duration(_ name: String, default fallback: Duration, atLeast minimum: Duration, accepted: String) -> Duration {
        guard let text = value(name) else { return fallback }
        do throws(DurationParseError) {
            let parsed = try parseDuration(text)
            guard parsed >= minimum else {
                fail(name, "'\(text)' is not \(accepted) (expected \(DurationParser.acceptedForm))")
                return fallback
            }
            return parsed
        } catch {
            fail(name, "'\(text)' is not a duration (expected \(DurationParser.acceptedForm))")
            return fallback
        }
    }

    public mutating func bool(_ name: String, default fallback: Bool) -> Bool {
        guard let text = value(name) else { return fallback }
        switch text.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default:
            fail(name, "'\(text)' is not true or false")
            return fallback
        }
    }

    /// A size in bytes: `262144`, `256KiB` or `4MiB`, within `range`.
    public mutating func byteCount(_ name: String, default fallback: Int, in range: ClosedRange<Int>) -> Int {
        guard let text = value(name) else { return fallback }
        let units: [(suffix: String, factor: Int)] = [("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1), ("", 1)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let number = Int(text.dropLast(suffix.count)) {
                let (bytes, overflow) = number.multipliedReportingOverflow(by: factor)
                if !overflow, range.contains(bytes) { return bytes }
            }
            break
        }
        fail(name, "'\(text)' is not a size in \(range.lowerBound)-\(range.upperBound) bytes (e.g. 262144, 256KiB, 4MiB)")
        return fallback
    }

    /// `AMQP_URL`, required; with `AMQP_PASSWORD_FILE` the password is that file's content
    /// (surrounding white space trimmed) instead of the URL's, so the URL can name the role's
    /// broker user and the password stay in a mounted secret.
    public mutating func amqp(_ name: String = "AMQP_URL", passwordFile: String = "AMQP_PASSWORD_FILE") -> AMQPConfiguration? {
        guard let text = value(name) else {
            fail(name, "not set (expected amqp://user:pass@host:port/vhost or amqps://…)")
            return nil
        }
        do throws(AMQPError) {
            var configuration = try AMQPConfiguration(url: text)
            if let password = secretFile(passwordFile) {
                configuration.password = String(decoding: password, as: UTF8.self)
            }
            return configuration
        } catch {
            // AMQPError's message already redacts the password and names what is accepted.
            fail(name, error.message)
            return nil
        }
    }

    public mutating func logLevel(_ name: String = "LOG_LEVEL", default fallback: Logger.Level) -> Logger.Level {
        guard let text = value(name) else { return fallback }
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            fail(name, "'\(text)' is not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
            return fallback
        }
        return level
    }

    public mutating func logFormat(_ name: String = "LOG_FORMAT", default fallback: LogFormat) -> LogFormat {
        guard let text = value(name) else { return fallback }
        guard let format = LogFormat(rawValue: text.lowercased()) else {
            fail(name, "'\(text)' is not json or text")
            return fallback
        }
        return format
    }

    /// The built-in status table extended by `STATUS_MAP`.
    public mutating func statusMapping(_ name: String = "STATUS_MAP") -> StatusMapping {
        guard let text = value(name) else { return .default }
        do {
            return try StatusMapping.default.merging(StatusMapping(parsing: text))
        } catch {
            fail(name, "\(error)")
            return .default
        }
    }

    /// The content of the file the setting names, for a secret: surrounding white space trimmed,
    /// at least `minimumLength` bytes. The problem lines name the path, never the content.
    public mutating func secretFile(_ name: String, minimumLength: Int = 1) -> [UInt8]? {
        guard let path = value(name) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            fail(name, "cannot read '\(path)'")
            return nil
        }
        let trimmed = SecretFile.contents(data)
        guard trimmed.count >= minimumLength else {
            fail(name, "'\(path)' holds \(trimmed.isEmpty ? "nothing" : "fewer than \(minimumLength) bytes")")
            return nil
        }
        return trimmed
    }

    public func finish() throws(ConfigurationError) {
        guard problems.isEmpty else { throw ConfigurationError(problems) }
    }
}

/// How a secret file's content is read (the gateway's token and HMAC secret; clients that sign
/// for it read theirs the same way).
public enum SecretFile {
    /// The bytes as they are (a secret may be binary); only ASCII white space around them goes.
    public static func contents(_ data: Data) -> [UInt8] {
        let whitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C]
        var trimmed = Array(data)[...]
        while let first = trimmed.first, whitespace.contains(first) { trimmed.removeFirst() }
        while let last = trimmed.last, whitespace.contains(last) { trimmed.removeLast() }
        return Array(trimmed)
    }
}
