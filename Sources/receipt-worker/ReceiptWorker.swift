import ArgumentParser
import WarehouseSyncCore
import WarehouseSyncProcessKit

/// `receipt-worker`: consumes receipt events and posts them to the ERP (DESIGN §1). Thin: everything
/// but the stream is shared with the other workers (WorkerLauncher).
@main
struct ReceiptWorker: AsyncParsableCommand {
    static let configuration = WorkerOptions.commandConfiguration(executable: "receipt-worker", stream: .receipt)

    @OptionGroup var options: WorkerOptions

    func run() async throws {
        await WorkerLauncher.main(stream: .receipt, executable: "receipt-worker", overrides: options.overrides)
    }
}
