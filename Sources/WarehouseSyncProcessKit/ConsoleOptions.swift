import ArgumentParser
import WarehouseSyncConsole

/// The dead-letter console's flags on `replay-worker` (docs/console.md), each overriding its
/// environment variable (``ConsoleConfiguration/Key``).
public struct ConsoleOptions: ParsableArguments {
    @Option(help: "Port of the dead-letter console (0 picks one). Default: $CONSOLE_PORT, else no console")
    var consolePort: String?
    @Option(help: "Address of the dead-letter console. Default: $CONSOLE_HOST, else 127.0.0.1")
    var consoleHost: String?
    @Option(help: "File holding the console's read token (required with a port). Default: $CONSOLE_TOKEN_FILE")
    var consoleTokenFile: String?
    @Option(help: "File holding the console's write token: edit and replay. Default: $CONSOLE_WRITE_TOKEN_FILE, else read-only")
    var consoleWriteTokenFile: String?

    public init() {}

    /// The flags given, keyed by the environment variable they override.
    public var overrides: [String: String] {
        let values: [ConsoleConfiguration.Key: String?] = [
            .port: consolePort, .host: consoleHost, .tokenFile: consoleTokenFile, .writeTokenFile: consoleWriteTokenFile,
        ]
        var overrides: [String: String] = [:]
        for case let (key, value?) in values { overrides[key.rawValue] = value }
        return overrides
    }
}
