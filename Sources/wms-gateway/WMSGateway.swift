import ArgumentParser
import WarehouseSyncProcessKit

/// `wms-gateway`: the HTTP ingress for WMS products that cannot speak AMQP (docs/gateway.md).
/// Thin: everything lives in GatewayLauncher.
@main
struct WMSGateway: AsyncParsableCommand {
    static let configuration = GatewayOptions.commandConfiguration

    @OptionGroup var options: GatewayOptions

    func run() async throws {
        await GatewayLauncher.main(overrides: options.overrides)
    }
}
