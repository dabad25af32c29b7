import ArgumentParser
import WarehouseSyncOps
import WarehouseSyncSettings
import WarehouseSyncWorker

/// The flags of `replay-worker`: the workers' flags (``WorkerOptions``) plus its policy
/// (``AutoReplaySettings``: automatic replay, retention), each overriding its environment variable.
public struct ReplayWorkerOptions: ParsableArguments {
    @OptionGroup var worker: WorkerOptions
    @OptionGroup var console: ConsoleOptions

    @Option(help: "Replay retries-exhausted letters by itself (true/false). Default: $AUTO_REPLAY, else true")
    var autoReplay: String?
    @Option(help: "Replays per letter before it waits for a person. Default: $AUTO_REPLAY_MAX, else 3")
    var autoReplayMax: String?
    @Option(help: "Letters replayed per second at most. Default: $AUTO_REPLAY_RATE, else 20")
    var autoReplayRate: String?
    @Option(help: "Least time since a letter's last failure before it is replayed. Default: $AUTO_REPLAY_DELAY, else 60s")
    var autoReplayDelay: String?
    @Option(help: "How often to check the ERP and look for letters. Default: $AUTO_REPLAY_INTERVAL, else 10s")
    var autoReplayInterval: String?
    @Option(help: "How long replayed and purged letters stay in the store. Default: $DEAD_LETTER_RETENTION, else 720h")
    var deadLetterRetention: String?

    public init() {}

    /// The flags given, keyed by the environment variable they override.
    public var overrides: [String: String] {
        let values: [AutoReplaySettings.Key: String?] = [
            .enabled: autoReplay, .maxReplays: autoReplayMax, .rate: autoReplayRate, .delay: autoReplayDelay,
            .interval: autoReplayInterval, .retention: deadLetterRetention,
        ]
        var overrides = worker.overrides.merging(console.overrides) { _, console in console }
        for case let (key, value?) in values { overrides[key.rawValue] = value }
        return overrides
    }

    public static func commandConfiguration(executable: String) -> CommandConfiguration {
        CommandConfiguration(
            commandName: executable,
            abstract: "Drains the dead-letter queue into the store and replays retries-exhausted letters once the ERP is back.",
            discussion: """
                Every flag overrides the environment variable named in its help (README, Configuration). \
                Runs until SIGTERM or SIGINT, then stops gracefully and exits 0. docs/replay.md describes the policy.
                """)
    }
}
