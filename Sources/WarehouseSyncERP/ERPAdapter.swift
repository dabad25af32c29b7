import Logging
import WarehouseSyncCore

/// An adapter of the ERP port as a process holds it: the port (``ERPClient``), the balances for
/// reconciliation, and ``shutdown()`` for its connections. `ERP_KIND` picks which (DESIGN §9).
public protocol ERPAdapter: ERPClient {
    /// The ERP's stock balances of one warehouse, per SKU and status.
    func balances(warehouse: String) async throws -> [StockBalance]
    /// Closes the adapter's connections; call it before dropping the adapter.
    func shutdown() async throws
}

extension HTTPERPClient: ERPAdapter {}
extension TrytonERPClient: ERPAdapter {}

/// The adapter `ERP_KIND` names: Tryton when its settings are given, else the HTTP contract.
public func makeERPAdapter(http: ERPClientConfiguration, tryton: TrytonConfiguration?, logger: Logger) -> any ERPAdapter {
    if let tryton { return TrytonERPClient(configuration: tryton, logger: logger) }
    return HTTPERPClient(configuration: http, logger: logger)
}
