import Logging
import WarehouseSyncCore

/// An adapter of the ERP port as a process holds it: the port (``ERPClient``), the balances and
/// documents for reconciliation, and ``shutdown()`` for its connections. `ERP_KIND` picks which
/// (DESIGN §9).
public protocol ERPAdapter: ERPClient {
    /// The ERP's stock balances of one warehouse, per SKU and status.
    func balances(warehouse: String) async throws -> [StockBalance]
    /// The latest status of each shipment or receipt of `kinds` that the ERP booked for
    /// `warehouse` (docs/reconciliation.md).
    func documentStatuses(warehouse: String, kinds: Set<DocumentStatus.Kind>) async throws -> [DocumentStatus]
    /// Whether a WMS status and a status this ERP answers for a document of `kind` mean the same.
    func documentStatusesAgree(_ kind: DocumentStatus.Kind, wms: String, erp: String) -> Bool
    /// Closes the adapter's connections; call it before dropping the adapter.
    func shutdown() async throws
}

extension ERPAdapter {
    /// Equal statuses agree: the generic contract books every canonical status.
    public func documentStatusesAgree(_ kind: DocumentStatus.Kind, wms: String, erp: String) -> Bool { wms == erp }
}

extension HTTPERPClient: ERPAdapter {}
extension TrytonERPClient: ERPAdapter {}

/// The adapter `ERP_KIND` names: Tryton when its settings are given, else the HTTP contract.
public func makeERPAdapter(http: ERPClientConfiguration, tryton: TrytonConfiguration?, logger: Logger) -> any ERPAdapter {
    if let tryton { return TrytonERPClient(configuration: tryton, logger: logger) }
    return HTTPERPClient(configuration: http, logger: logger)
}
