import ArgumentParser
import WarehouseSyncCore
import WarehouseSyncProcessKit

/// `shipment-worker`: consumes shipment events and posts them to the ERP (DESIGN §1). Thin: everything
/// but the stream is shared with the other workers (WorkerLauncher).
@main
struct ShipmentWorker: AsyncParsableCommand {
    static let configuration = WorkerOptions.commandConfiguration(executable: "shipment-worker", stream: .shipment)

    @OptionGroup var options: WorkerOptions

    func run() async throws {
        await WorkerLauncher.main(stream: .shipment, executable: "shipment-worker", overrides: options.overrides)
    }
}
