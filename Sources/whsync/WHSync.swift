import AMQPClient
import ArgumentParser
import Foundation
import Logging
import WarehouseSyncCore
import WarehouseSyncOperations
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncWorker

@main
struct WHSync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whsync",
        abstract: "Operate WarehouseSync: topology, publishing, dead letters, gaps, status and reconciliation.",
        version: "0.1.0",
        subcommands: [
            TopologyCommand.self, PublishCommand.self, DLQCommand.self, GapsCommand.self, StatusCommand.self,
            ReconcileCommand.self, TraceCommand.self,
        ]
    )
}

/// Options every command that talks to the broker shares. Flags override the environment.
struct BrokerOptions: ParsableArguments {
    @Option(name: .customLong("amqp-url"), help: "Broker URL (amqp:// or amqps://). Default: $AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/")
    var amqpURL: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error. Default: $LOG_LEVEL, else warning")
    var logLevel: String?

    @Option(name: .customLong("amqp-password-file"), help: "File holding the broker password, instead of the URL's. Default: $AMQP_PASSWORD_FILE")
    var amqpPasswordFile: String?

    func configuration(connectionName: String) throws -> AMQPConfiguration {
        let url = amqpURL ?? environmentValue("AMQP_URL") ?? "amqp://guest:guest@127.0.0.1:5672/"
        var configuration = try AMQPConfiguration(url: url, connectionName: connectionName)
        if let path = amqpPasswordFile ?? environmentValue("AMQP_PASSWORD_FILE") {
            guard let data = FileManager.default.contents(atPath: path), !SecretFile.contents(data).isEmpty else {
                throw ValidationError("AMQP_PASSWORD_FILE: cannot read '\(path)', or it is empty")
            }
            configuration.password = String(decoding: SecretFile.contents(data), as: UTF8.self)
        }
        return configuration
    }

    func logger() throws -> Logger {
        try commandLogger(level: logLevel)
    }

    /// Runs `body` with a connection and closes it gracefully whatever happens. Publishing
    /// connections reconnect by themselves; one-shot admin connections fail fast instead.
    func withConnection<T>(name: String, confirms: Bool = false, _ body: (AMQPConnection) async throws -> T) async throws -> T {
        let connection = try await AMQPConnection.connect(
            configuration(connectionName: name),
            options: .init(publisherConfirms: confirms, reconnect: confirms ? .default : nil),
            logger: logger())
        return try await using(connection, close: { await $0.close() }, body)
    }
}

/// The logger of a command, on stderr: at `level` (a flag), else `$LOG_LEVEL`, else `warning`.
func commandLogger(level: String?) throws -> Logger {
    let text = level ?? environmentValue("LOG_LEVEL") ?? "warning"
    guard let level = Logger.Level(rawValue: text.lowercased()) else {
        throw ValidationError("LOG_LEVEL: '\(text)' is not one of trace, debug, info, notice, warning, error, critical")
    }
    var logger = Logger(label: "whsync") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = level
    return logger
}

/// The environment variable `name`; `nil` when unset or empty.
func environmentValue(_ name: String) -> String? {
    ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
}

/// Runs `body` with `resource`, then `close`s it, whether `body` threw or not.
func using<Resource, T>(
    _ resource: Resource, close: (Resource) async -> Void, _ body: (Resource) async throws -> T
) async throws -> T {
    do {
        let result = try await body(resource)
        await close(resource)
        return result
    } catch {
        await close(resource)
        throw error
    }
}

/// The file at `path` for reading, or stdin for `-`.
func openInput(_ path: String) throws -> FileHandle {
    if path == "-" { return .standardInput }
    guard let file = FileHandle(forReadingAtPath: path) else {
        throw ValidationError("cannot open \(path) for reading")
    }
    return file
}

/// Writes to stderr, where progress and diagnostics go so stdout stays clean for data.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
