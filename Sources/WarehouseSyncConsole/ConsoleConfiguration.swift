import WarehouseSyncCore
import WarehouseSyncOps
import WarehouseSyncSettings

/// The dead-letter console's settings (docs/console.md), read with the replay worker's: off
/// unless `CONSOLE_PORT` is set; then `CONSOLE_TOKEN_FILE` is required (reading), and
/// `CONSOLE_WRITE_TOKEN_FILE` adds editing and replaying. Flags (`overrides`, by variable name)
/// win over the environment; every unusable setting is reported at once.
public struct ConsoleConfiguration: Sendable, CustomStringConvertible {
    public enum Key: String, Sendable, CaseIterable {
        case port = "CONSOLE_PORT"
        case host = "CONSOLE_HOST"
        case tokenFile = "CONSOLE_TOKEN_FILE"
        case writeTokenFile = "CONSOLE_WRITE_TOKEN_FILE"
    }

    /// The shortest token accepted: 16 bytes (`openssl rand -hex 16` writes 32).
    public static let minimumTokenLength = 16

    /// `CONSOLE_HOST`: loopback by default, as the operations endpoint and the gateway.
    public var host: String
    /// `CONSOLE_PORT`: 0-65535, 0 picks a free port (logged as `console.address`).
    public var port: Int
    public var access: ConsoleAccess

    public init(host: String = OpsServer.defaultHost, port: Int, access: ConsoleAccess) {
        self.host = host
        self.port = port
        self.access = access
    }

    /// The console's settings, or `nil` when `CONSOLE_PORT` is not set (the console is off).
    public static func read(environment: [String: String], overrides: [String: String] = [:]) throws(ConfigurationError) -> ConsoleConfiguration? {
        var reader = SettingsReader(environment: environment, overrides: overrides)
        guard reader.value(Key.port.rawValue) != nil else {
            for key in [Key.host, .tokenFile, .writeTokenFile] where reader.value(key.rawValue) != nil {
                reader.fail(key.rawValue, "is set, but \(Key.port.rawValue) is not: the console is off unless it has a port")
            }
            try reader.finish()
            return nil
        }
        let port = reader.integer(Key.port.rawValue, default: 0, in: 0...65535, accepted: "a port number (0-65535; 0 picks a free one)")
        let readToken = reader.secretFile(Key.tokenFile.rawValue, minimumLength: minimumTokenLength)
        let writeToken = reader.secretFile(Key.writeTokenFile.rawValue, minimumLength: minimumTokenLength)
        if reader.value(Key.tokenFile.rawValue) == nil {
            reader.fail(Key.tokenFile.rawValue, "not set: the console (\(Key.port.rawValue)) needs a token file for reading")
        }
        if let readToken, let writeToken, readToken == writeToken {
            reader.fail(Key.writeTokenFile.rawValue, "holds the same token as \(Key.tokenFile.rawValue): the write token must be a different one")
        }
        try reader.finish()
        guard let readToken else { throw ConfigurationError(setting: Key.tokenFile.rawValue, message: "not read") }  // failed above
        return ConsoleConfiguration(
            host: reader.value(Key.host.rawValue) ?? OpsServer.defaultHost, port: port,
            access: ConsoleAccess(readToken: readToken, writeToken: writeToken))
    }

    /// For the start-up line: the address and whether writing is on, never a token.
    public var description: String {
        "console=\(host):\(port) consoleWrite=\(access.allowsWriting)"
    }
}
