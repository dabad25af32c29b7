import ArgumentParser
import Foundation
import Logging
import WarehouseSyncCore
import WarehouseSyncOperations
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncStore
import WarehouseSyncWorker

/// Options of the commands that read the workers' store (`dlq`, `gaps`, `status`).
struct StoreOptions: ParsableArguments {
    @Option(
        name: .customLong("store-url"),
        help: "The workers' store: sqlite:/abs/path.db or postgres://user:pass@host:port/db. Default: $STORE_URL")
    var storeURL: String?

    var url: String? { storeURL ?? environmentValue("STORE_URL") }

    /// Runs `body` with the store open and closes it whatever happens.
    func withStore<T>(logger: Logger, _ body: (any WorkerStore) async throws -> T) async throws -> T {
        guard let url else {
            throw ValidationError("STORE_URL: not set (pass --store-url sqlite:/abs/path.db or postgres://user:pass@host:port/db)")
        }
        let store = try await StoreLocation(url: url).open(logger: logger)
        return try await using(store, close: { await $0.close() }, body)
    }
}

/// Who is acting, for the audit trail: `--actor`, else the OS user at this host.
struct ActorOptions: ParsableArguments {
    @Option(help: "Who does this, for the audit trail. Default: $USER@host")
    var actor: String?

    var name: String {
        if let actor, !actor.isEmpty { return actor }
        let user = environmentValue("USER") ?? NSUserName()
        return "\(user)@\(ProcessInfo.processInfo.hostName)"
    }
}

/// Prints `value` as JSON alone on stdout: sorted keys, one document.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    FileHandle.standardOutput.write(try encoder.encode(value) + Data("\n".utf8))
}

/// RFC 3339 with milliseconds, UTC: how every time is shown.
func formatTime(_ date: Date) -> String {
    Timestamp(date).text
}

/// Parses `--since`: an RFC 3339 time, or a duration back from now (`30m`, `2h`).
func parseSince(_ text: String) throws -> Date {
    if let stamp = Timestamp(parsing: text) {
        return Date(timeIntervalSince1970: Double(stamp.secondsSince1970) + Double(stamp.nanosecond) / 1e9)
    }
    do {
        return Date().addingTimeInterval(-(try DurationParser.parse(text)).timeInterval)
    } catch {
        throw ValidationError("--since: '\(text)' is neither an RFC 3339 time nor a duration (\(DurationParser.acceptedForm))")
    }
}

extension EventStream: ExpressibleByArgument {}
extension DeadLetterReason: ExpressibleByArgument {}
extension DeadLetterStatus: ExpressibleByArgument {}
