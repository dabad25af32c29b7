import ArgumentParser
import WarehouseSyncProcessKit

/// `replay-worker`: drains the dead-letter queue into the store and replays what is safe to
/// replay (DESIGN §1, §6). Thin: everything lives in ReplayWorkerLauncher.
@main
struct ReplayWorker: AsyncParsableCommand {
    static let configuration = ReplayWorkerOptions.commandConfiguration(executable: "replay-worker")

    @OptionGroup var options: ReplayWorkerOptions

    func run() async throws {
        await ReplayWorkerLauncher.main(executable: "replay-worker", overrides: options.overrides)
    }
}
