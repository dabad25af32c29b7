import ArgumentParser
import WarehouseSyncCore
import WarehouseSyncProcessKit

/// `inventory-worker`: consumes inventory events and posts them to the ERP (DESIGN §1). Thin: everything
/// but the stream is shared with the other workers (WorkerLauncher).
@main
struct InventoryWorker: AsyncParsableCommand {
    static let configuration = WorkerOptions.commandConfiguration(executable: "inventory-worker", stream: .inventory)

    @OptionGroup var options: WorkerOptions

    func run() async throws {
        await WorkerLauncher.main(stream: .inventory, executable: "inventory-worker", overrides: options.overrides)
    }
}
